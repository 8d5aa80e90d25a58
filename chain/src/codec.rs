//! The one place where klero turns values into bytes and back.
//!
//! Everything on the wire, in the store and under a hash goes through
//! [`encode`] and the `decode_*` functions here, with one fixed bincode 2
//! configuration: little-endian, fixed-width integers (so a header's length
//! does not depend on its values, and golden vectors in `tests/` freeze the
//! format), and a hard size limit on every decode. Trailing bytes are an
//! error: one value, one encoding.
//!
//! # Format
//!
//! ```text
//! u8/u16/u32/u64    little-endian, fixed width
//! [u8; N]           N raw bytes, no length
//! Vec<T>            u64 length, then the elements
//! Option<T>         u8 tag (0 = None, 1 = Some), then T
//! enum              u32 variant index, then the fields
//! struct            the fields in declaration order
//! ```

use bincode::config::{Configuration, Fixint, LittleEndian, NoLimit};
use bincode::{Decode, Encode};

use crate::types::{Block, Header, SignedHeader, Tx};

/// Largest encoded block accepted from anywhere (gossip, sync, disk).
pub const MAX_BLOCK_BYTES: usize = 1 << 20;
/// Largest encoded header.
pub const MAX_HEADER_BYTES: usize = 1024;
/// Largest encoded signed header: a header and a 64-byte signature.
pub const MAX_SIGNED_HEADER_BYTES: usize = MAX_HEADER_BYTES + 64;
/// Largest encoded transaction (an equivocation evidence carries two headers).
pub const MAX_TX_BYTES: usize = 4 * 1024;

/// Why bytes did not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// The input is larger than the limit for its kind.
    #[error("{kind} of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// What was being decoded.
        kind: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a valid encoding.
    #[error("malformed {kind}: {reason}")]
    Malformed {
        /// What was being decoded.
        kind: &'static str,
        /// The decoder's explanation.
        reason: String,
    },
    /// A valid value was followed by more bytes.
    #[error("{kind} has {extra} trailing bytes")]
    TrailingBytes {
        /// What was being decoded.
        kind: &'static str,
        /// How many bytes were left over.
        extra: usize,
    },
}

type Config = Configuration<LittleEndian, Fixint, NoLimit>;

const fn config() -> Config {
    bincode::config::standard().with_fixed_int_encoding()
}

/// Encodes `value` with klero's configuration.
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    // Encoding into a Vec cannot fail for klero's types: they hold no
    // collections that refuse to serialize and a Vec writer never runs out.
    bincode::encode_to_vec(value, config()).unwrap_or_default()
}

/// Decodes exactly one `T` from `bytes`, refusing inputs over `MAX` bytes.
///
/// The limit is checked before decoding starts, and bincode's own limit
/// stops any length prefix inside from claiming more than the input holds,
/// so a hostile length can never make this allocate beyond `MAX`.
///
/// # Errors
///
/// [`CodecError`] if the input is too large, malformed or has trailing bytes.
pub fn decode<T: Decode<()>, const MAX: usize>(bytes: &[u8], kind: &'static str) -> Result<T, CodecError> {
    if bytes.len() > MAX {
        return Err(CodecError::TooLarge {
            kind,
            len: bytes.len(),
            max: MAX,
        });
    }
    let limited = config().with_limit::<MAX>();
    let (value, read) = bincode::decode_from_slice(bytes, limited).map_err(|e| CodecError::Malformed {
        kind,
        reason: e.to_string(),
    })?;
    if read != bytes.len() {
        return Err(CodecError::TrailingBytes {
            kind,
            extra: bytes.len() - read,
        });
    }
    Ok(value)
}

/// Decodes a block (gossip, sync responses, the store).
pub fn decode_block(bytes: &[u8]) -> Result<Block, CodecError> {
    decode::<_, MAX_BLOCK_BYTES>(bytes, "block")
}

/// Decodes a header.
pub fn decode_header(bytes: &[u8]) -> Result<Header, CodecError> {
    decode::<_, MAX_HEADER_BYTES>(bytes, "header")
}

/// The signed header an encoded block starts with, its transactions left
/// unread (a sync server answering for headers from stored blocks).
pub fn decode_block_header(block: &[u8]) -> Result<SignedHeader, CodecError> {
    const KIND: &str = "block's signed header";
    let front = &block[..block.len().min(MAX_SIGNED_HEADER_BYTES)];
    let limited = config().with_limit::<MAX_SIGNED_HEADER_BYTES>();
    bincode::decode_from_slice(front, limited)
        .map(|(signed, _)| signed)
        .map_err(|e| CodecError::Malformed {
            kind: KIND,
            reason: e.to_string(),
        })
}

/// Decodes a transaction (gossip, `POST /txs`).
pub fn decode_tx(bytes: &[u8]) -> Result<Tx, CodecError> {
    decode::<_, MAX_TX_BYTES>(bytes, "transaction")
}

/// Decodes a transaction from lower- or upper-case hex (`POST /txs`),
/// whitespace around it ignored; text longer than any transaction's hex is
/// refused before it is decoded.
///
/// # Errors
///
/// [`CodecError`] if the text is too long, not hex, or not a transaction.
pub fn decode_tx_hex(text: &str) -> Result<Tx, CodecError> {
    const KIND: &str = "transaction hex";
    let text = text.trim();
    if text.len() > 2 * MAX_TX_BYTES {
        return Err(CodecError::TooLarge {
            kind: KIND,
            len: text.len(),
            max: 2 * MAX_TX_BYTES,
        });
    }
    let bytes = hex::decode(text).map_err(|e| CodecError::Malformed {
        kind: KIND,
        reason: e.to_string(),
    })?;
    decode_tx(&bytes)
}
