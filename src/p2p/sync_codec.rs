//! The sync protocol's messages and their bounded wire codec.
//!
//! One request and one response per stream, each the whole rest of its
//! half of the stream (the writer closes after writing). The reader takes
//! at most the message's byte limit plus one, so a peer can never make us
//! buffer more than the limit; anything longer, malformed, or breaking a
//! count limit is an `InvalidData` error, which libp2p reports as a failed
//! request and never as a panic.
//!
//! # Format
//!
//! Bytes are `klero_chain::codec` (bincode 2, little-endian, fixed-width
//! integers, no trailing bytes):
//!
//! ```text
//! SyncRequest   u32 variant, then fields
//!   0 Status
//!   1 Blocks    from_height u64, count u32 (1..=MAX_SYNC_BLOCKS)
//! SyncResponse  u32 variant, then fields
//!   0 Status    height u64, head [u8; 32], genesis [u8; 32]
//!   1 Blocks    u64 n (<= MAX_SYNC_BLOCKS), then n x (u64 len, len bytes),
//!               each len <= MAX_BLOCK_BYTES
//!   2 Refused
//! ```

use std::io;

use bincode::{Decode, Encode};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use klero_chain::codec::{self, MAX_BLOCK_BYTES};
use libp2p::StreamProtocol;
use libp2p::request_response;

/// Most blocks one request may ask for, and one response may carry.
pub const MAX_SYNC_BLOCKS: u32 = 64;

/// Largest encoded request: a variant tag and two integers, with room to spare.
const MAX_REQUEST_BYTES: usize = 64;
/// Largest encoded response: a full `Blocks` answer (tag, count, then each
/// block with its length prefix).
const MAX_RESPONSE_BYTES: usize = 4 + 8 + MAX_SYNC_BLOCKS as usize * (8 + MAX_BLOCK_BYTES);

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
}

impl SyncRequest {
    fn check(&self) -> io::Result<()> {
        match self {
            SyncRequest::Blocks { count, .. } if *count == 0 || *count > MAX_SYNC_BLOCKS => Err(invalid(
                format!("sync request for {count} blocks, not 1..={MAX_SYNC_BLOCKS}"),
            )),
            _ => Ok(()),
        }
    }
}

impl SyncResponse {
    fn check(&self) -> io::Result<()> {
        let SyncResponse::Blocks(blocks) = self else {
            return Ok(());
        };
        if blocks.len() > MAX_SYNC_BLOCKS as usize {
            return Err(invalid(format!(
                "sync response with {} blocks, over {MAX_SYNC_BLOCKS}",
                blocks.len()
            )));
        }
        match blocks.iter().find(|b| b.len() > MAX_BLOCK_BYTES) {
            Some(b) => Err(invalid(format!(
                "sync response block of {} bytes, over {MAX_BLOCK_BYTES}",
                b.len()
            ))),
            None => Ok(()),
        }
    }
}

/// The request-response codec of `/klero/<chain-id>/sync/1`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SyncCodec;

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_bounded(io, MAX_REQUEST_BYTES).await?;
        let req: SyncRequest =
            codec::decode::<_, MAX_REQUEST_BYTES>(&bytes, "sync request").map_err(invalid)?;
        req.check()?;
        Ok(req)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_bounded(io, MAX_RESPONSE_BYTES).await?;
        let resp: SyncResponse =
            codec::decode::<_, MAX_RESPONSE_BYTES>(&bytes, "sync response").map_err(invalid)?;
        resp.check()?;
        Ok(resp)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: SyncRequest) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        // Checked on the way out too: our own bad request fails here, with
        // a clear reason, rather than as an opaque error from the peer.
        req.check()?;
        io.write_all(&codec::encode(&req)).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        resp: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        resp.check()?;
        io.write_all(&codec::encode(&resp)).await
    }
}

/// Reads the rest of the stream, failing once it exceeds `max` bytes.
async fn read_bounded<T: AsyncRead + Unpin>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io.take(max as u64 + 1).read_to_end(&mut bytes).await?;
    if bytes.len() > max {
        return Err(invalid(format!("sync message over {max} bytes")));
    }
    Ok(bytes)
}

fn invalid(reason: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;
    use libp2p::request_response::Codec;

    use super::*;

    fn protocol() -> StreamProtocol {
        StreamProtocol::new("/klero/test/sync/1")
    }

    async fn read_request(bytes: &[u8]) -> io::Result<SyncRequest> {
        SyncCodec.read_request(&protocol(), &mut Cursor::new(bytes)).await
    }

    async fn read_response(bytes: &[u8]) -> io::Result<SyncResponse> {
        SyncCodec
            .read_response(&protocol(), &mut Cursor::new(bytes))
            .await
    }

    async fn written_response(resp: SyncResponse) -> io::Result<Vec<u8>> {
        let mut out = Cursor::new(Vec::new());
        SyncCodec.write_response(&protocol(), &mut out, resp).await?;
        Ok(out.into_inner())
    }

    fn assert_invalid<T: std::fmt::Debug>(result: io::Result<T>) {
        match result {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}"),
            Ok(v) => panic!("decoded {v:?}"),
        }
    }

    #[tokio::test]
    async fn requests_roundtrip_with_golden_bytes() {
        let req = SyncRequest::Blocks {
            from_height: 7,
            count: 3,
        };
        let mut out = Cursor::new(Vec::new());
        SyncCodec
            .write_request(&protocol(), &mut out, req.clone())
            .await
            .unwrap();
        let bytes = out.into_inner();
        assert_eq!(bytes, [1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(read_request(&bytes).await.unwrap(), req);
        assert_eq!(read_request(&[0, 0, 0, 0]).await.unwrap(), SyncRequest::Status);
    }

    #[tokio::test]
    async fn responses_roundtrip() {
        for resp in [
            SyncResponse::Status {
                height: 9,
                head: [1; 32],
                genesis: [2; 32],
            },
            SyncResponse::Blocks(vec![vec![1, 2, 3], Vec::new(), vec![0; 1000]]),
            SyncResponse::Blocks(Vec::new()),
            SyncResponse::Refused,
        ] {
            let bytes = written_response(resp.clone()).await.unwrap();
            assert_eq!(read_response(&bytes).await.unwrap(), resp);
        }
    }

    #[tokio::test]
    async fn largest_blocks_response_fits_the_limit() {
        let full = vec![vec![0xab; MAX_BLOCK_BYTES]; MAX_SYNC_BLOCKS as usize];
        let bytes = written_response(SyncResponse::Blocks(full.clone()))
            .await
            .unwrap();
        assert_eq!(bytes.len(), MAX_RESPONSE_BYTES);
        assert_eq!(read_response(&bytes).await.unwrap(), SyncResponse::Blocks(full));
    }

    #[tokio::test]
    async fn rejects_oversized_frames() {
        assert_invalid(read_request(&[0; MAX_REQUEST_BYTES + 1]).await);
        assert_invalid(read_response(&vec![0; MAX_RESPONSE_BYTES + 1]).await);
    }

    #[tokio::test]
    async fn rejects_garbage_truncated_and_trailing_bytes() {
        assert_invalid(read_request(&[]).await);
        assert_invalid(read_request(&[0xff; 16]).await);
        assert_invalid(read_request(&[1, 0, 0, 0, 7]).await);
        assert_invalid(read_request(&[0, 0, 0, 0, 0]).await);
        assert_invalid(read_response(&[]).await);
        assert_invalid(read_response(&[9, 0, 0, 0]).await);
        assert_invalid(read_response(&[0, 0, 0, 0, 1, 2, 3]).await);
    }

    #[tokio::test]
    async fn rejects_hostile_length_prefixes() {
        // Blocks with a claimed 2^64-1 entries, then one entry claiming 4 GiB:
        // both must fail on the limit, not try to allocate.
        let mut huge_count = vec![1, 0, 0, 0];
        huge_count.extend(u64::MAX.to_le_bytes());
        assert_invalid(read_response(&huge_count).await);
        let mut huge_entry = vec![1, 0, 0, 0];
        huge_entry.extend(1u64.to_le_bytes());
        huge_entry.extend((4u64 << 30).to_le_bytes());
        assert_invalid(read_response(&huge_entry).await);
    }

    #[tokio::test]
    async fn enforces_count_limits_both_ways() {
        for count in [0, MAX_SYNC_BLOCKS + 1] {
            let req = SyncRequest::Blocks {
                from_height: 0,
                count,
            };
            let mut bytes = vec![1, 0, 0, 0];
            bytes.extend(0u64.to_le_bytes());
            bytes.extend(count.to_le_bytes());
            assert_invalid(read_request(&bytes).await);
            let mut out = Cursor::new(Vec::new());
            assert_invalid(SyncCodec.write_request(&protocol(), &mut out, req).await);
        }
        let too_many = SyncResponse::Blocks(vec![Vec::new(); MAX_SYNC_BLOCKS as usize + 1]);
        assert_invalid(written_response(too_many.clone()).await);
        // Hand-encoded, so the reader's own check is what refuses it.
        assert_invalid(read_response(&codec::encode(&too_many)).await);
        let too_big = SyncResponse::Blocks(vec![vec![0; MAX_BLOCK_BYTES + 1]]);
        assert_invalid(written_response(too_big.clone()).await);
        assert_invalid(read_response(&codec::encode(&too_big)).await);
    }
}
