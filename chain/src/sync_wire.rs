//! The sync protocol's messages and their decoding, checked: pure, so that
//! they are fuzzed with the rest of the codec (the node's libp2p codec in
//! `src/p2p/sync_codec.rs` only frames them on a stream).
//!
//! # Format
//!
//! Bytes are [`codec`] (bincode 2, little-endian, fixed-width
//! integers, no trailing bytes):
//!
//! ```text
//! SyncRequest   u32 variant, then fields
//!   0 Status
//!   1 Blocks    from_height u64, count u32 (1..=MAX_SYNC_BLOCKS)
//!   2 Headers   from_height u64, count u32 (1..=MAX_SYNC_HEADERS)
//! SyncResponse  u32 variant, then fields
//!   0 Status    height u64, head [u8; 32], genesis [u8; 32]
//!   1 Blocks    u64 n (<= MAX_SYNC_BLOCKS), then n x (u64 len, len bytes),
//!               each len <= MAX_BLOCK_BYTES
//!   2 Refused
//!   3 Headers   u64 n (<= MAX_SYNC_HEADERS), then n x SignedHeader
//! ```

use bincode::{Decode, Encode};

use crate::codec::{self, CodecError, MAX_BLOCK_BYTES};
use crate::types::SignedHeader;

/// Most blocks one request may ask for, and one response may carry.
pub const MAX_SYNC_BLOCKS: u32 = 64;
/// Most signed headers one request may ask for, and one response may
/// carry (about 200 KiB of PoW headers).
pub const MAX_SYNC_HEADERS: u32 = 512;

/// Largest encoded request: a variant tag and two integers, with room to spare.
pub const MAX_REQUEST_BYTES: usize = 64;
/// Largest encoded response: a full `Blocks` answer (tag, count, then each
/// block with its length prefix).
pub const MAX_RESPONSE_BYTES: usize = 4 + 8 + MAX_SYNC_BLOCKS as usize * (8 + MAX_BLOCK_BYTES);

/// A question to a peer about its chain.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum SyncRequest {
    /// Its best chain: height, head and genesis ids.
    Status,
    /// Up to `count` encoded blocks of its best chain, starting at
    /// `from_height`. `count` is in `1..=MAX_SYNC_BLOCKS`.
    Blocks {
        /// Height of the first block wanted.
        from_height: u64,
        /// How many blocks, at most [`MAX_SYNC_BLOCKS`].
        count: u32,
    },
    /// Up to `count` signed headers of its best chain, starting at
    /// `from_height`: what headers-first sync checks a branch's work with
    /// before it downloads a body. `count` is in `1..=MAX_SYNC_HEADERS`.
    Headers {
        /// Height of the first header wanted.
        from_height: u64,
        /// How many headers, at most [`MAX_SYNC_HEADERS`].
        count: u32,
    },
}

/// A peer's answer to a [`SyncRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum SyncResponse {
    /// Answer to [`SyncRequest::Status`]; a different `genesis` means a
    /// different chain.
    Status {
        /// Height of its best block.
        height: u64,
        /// Id of its best block.
        head: [u8; 32],
        /// Id of its genesis block.
        genesis: [u8; 32],
    },
    /// Answer to [`SyncRequest::Blocks`]: consecutive encoded blocks from
    /// the requested height, fewer (or none) when its chain is shorter.
    /// At most [`MAX_SYNC_BLOCKS`] blocks of at most `MAX_BLOCK_BYTES` each.
    Blocks(Vec<Vec<u8>>),
    /// The peer will not answer (busy, or the request is out of range).
    Refused,
    /// Answer to [`SyncRequest::Headers`]: the signed headers of
    /// consecutive blocks from the requested height, fewer (or none) when
    /// its chain is shorter. At most [`MAX_SYNC_HEADERS`].
    Headers(Vec<SignedHeader>),
}

const REQUEST: &str = "sync request";
const RESPONSE: &str = "sync response";

fn malformed(kind: &'static str, reason: String) -> CodecError {
    CodecError::Malformed { kind, reason }
}

impl SyncRequest {
    /// Whether the request keeps the protocol's count limit.
    ///
    /// # Errors
    ///
    /// [`CodecError::Malformed`] for a count outside `1..=MAX_SYNC_BLOCKS`
    /// (blocks) or `1..=MAX_SYNC_HEADERS` (headers).
    pub fn check(&self) -> Result<(), CodecError> {
        let (count, max, what) = match self {
            SyncRequest::Status => return Ok(()),
            SyncRequest::Blocks { count, .. } => (*count, MAX_SYNC_BLOCKS, "blocks"),
            SyncRequest::Headers { count, .. } => (*count, MAX_SYNC_HEADERS, "headers"),
        };
        if count == 0 || count > max {
            return Err(malformed(
                REQUEST,
                format!("asks for {count} {what}, not 1..={max}"),
            ));
        }
        Ok(())
    }
}

impl SyncResponse {
    /// Whether the response keeps the protocol's count and size limits.
    ///
    /// # Errors
    ///
    /// [`CodecError::Malformed`] for too many blocks or headers, or a block
    /// too large.
    pub fn check(&self) -> Result<(), CodecError> {
        let blocks = match self {
            SyncResponse::Blocks(blocks) => blocks,
            SyncResponse::Headers(headers) => {
                return check_count(headers.len() as u64, MAX_SYNC_HEADERS, "headers");
            }
            _ => return Ok(()),
        };
        check_count(blocks.len() as u64, MAX_SYNC_BLOCKS, "blocks")?;
        match blocks.iter().find(|b| b.len() > MAX_BLOCK_BYTES) {
            Some(b) => Err(malformed(
                RESPONSE,
                format!("a block of {} bytes, over {MAX_BLOCK_BYTES}", b.len()),
            )),
            None => Ok(()),
        }
    }
}

fn check_count(count: u64, max: u32, what: &str) -> Result<(), CodecError> {
    if count > u64::from(max) {
        return Err(malformed(RESPONSE, format!("{count} {what}, over {max}")));
    }
    Ok(())
}

/// The count a `Blocks` or `Headers` answer claims in its first 12 bytes
/// (the variant tag, then the list's `u64` length), checked before any
/// entry is decoded: an answer claiming more than the protocol allows is
/// refused at the cost of reading 12 bytes, not after decoding up to
/// [`MAX_RESPONSE_BYTES`] of entries.
fn check_claimed_count(bytes: &[u8]) -> Result<(), CodecError> {
    let (Some(tag), Some(count)) = (
        bytes.first_chunk::<4>(),
        bytes.get(4..).and_then(<[u8]>::first_chunk::<8>),
    ) else {
        return Ok(());
    };
    let count = u64::from_le_bytes(*count);
    match u32::from_le_bytes(*tag) {
        1 => check_count(count, MAX_SYNC_BLOCKS, "blocks"),
        3 => check_count(count, MAX_SYNC_HEADERS, "headers"),
        _ => Ok(()),
    }
}

/// Decodes and checks a request.
///
/// # Errors
///
/// [`CodecError`] if it does not decode or breaks a limit.
pub fn decode_request(bytes: &[u8]) -> Result<SyncRequest, CodecError> {
    let req: SyncRequest = codec::decode::<_, MAX_REQUEST_BYTES>(bytes, REQUEST)?;
    req.check()?;
    Ok(req)
}

/// Decodes and checks a response.
///
/// # Errors
///
/// [`CodecError`] if it does not decode or breaks a limit; a `Blocks` or
/// `Headers` answer that claims too many entries is refused before its
/// entries are decoded.
pub fn decode_response(bytes: &[u8]) -> Result<SyncResponse, CodecError> {
    check_claimed_count(bytes)?;
    let resp: SyncResponse = codec::decode::<_, MAX_RESPONSE_BYTES>(bytes, RESPONSE)?;
    resp.check()?;
    Ok(resp)
}
