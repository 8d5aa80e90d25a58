//! The sync protocol's messages and their bounded wire codec.
//!
//! One request and one response per stream, each the whole rest of its
//! half of the stream (the writer closes after writing). The reader takes
//! at most the message's byte limit plus one, so a peer can never make us
//! buffer more than the limit; anything longer, malformed, or breaking a
//! count limit is an `InvalidData` error, which libp2p reports as a failed
//! request and never as a panic.
//!
//! The messages themselves, their format and limits are
//! [`klero_chain::sync_wire`]'s (pure, and fuzzed there).

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use klero_chain::codec;
use klero_chain::sync_wire::{self, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES};
pub use klero_chain::sync_wire::{MAX_SYNC_BLOCKS, MAX_SYNC_HEADERS, SyncRequest, SyncResponse};
use libp2p::StreamProtocol;
use libp2p::request_response;

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
        sync_wire::decode_request(&bytes).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        let bytes = read_bounded(io, MAX_RESPONSE_BYTES).await?;
        sync_wire::decode_response(&bytes).map_err(invalid)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: SyncRequest) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        // Checked on the way out too: our own bad request fails here, with
        // a clear reason, rather than as an opaque error from the peer.
        req.check().map_err(invalid)?;
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
        resp.check().map_err(invalid)?;
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
    use klero_chain::codec::MAX_BLOCK_BYTES;
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

    /// The dev PoW chain's genesis, signed header only.
    fn genesis_header() -> klero_chain::types::SignedHeader {
        let spec = klero_chain::ChainSpec::from_toml(include_str!("../../testnet/pow.toml")).expect("spec");
        spec.genesis().0.block().signed.clone()
    }

    #[test]
    fn a_blocks_signed_header_is_read_without_its_transactions() {
        let spec = klero_chain::ChainSpec::from_toml(include_str!("../../testnet/pow.toml")).expect("spec");
        let mut block = spec.genesis().0.into_block();
        let signed = block.signed.clone();
        let empty = codec::encode(&block);
        assert_eq!(codec::decode_block_header(&empty).unwrap(), signed);
        // Transactions after it are not read: garbage there changes nothing.
        let mut garbage = empty.clone();
        garbage.truncate(codec::encode(&signed).len());
        garbage.extend([0xff; 100]);
        assert_eq!(codec::decode_block_header(&garbage).unwrap(), signed);
        block.signed.header.height = 1;
        assert_ne!(
            codec::decode_block_header(&codec::encode(&block)).unwrap(),
            signed
        );
        assert!(
            codec::decode_block_header(&empty[..40]).is_err(),
            "a truncated header decoded"
        );
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
        let headers = SyncRequest::Headers {
            from_height: 7,
            count: 512,
        };
        let bytes = codec::encode(&headers);
        assert_eq!(bytes, [2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0]);
        assert_eq!(read_request(&bytes).await.unwrap(), headers);
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
            SyncResponse::Headers(vec![genesis_header(); 3]),
            SyncResponse::Headers(Vec::new()),
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
    async fn an_answer_claiming_too_many_entries_is_refused_before_they_are_read() {
        // Only the tag and the claimed count: were the entries decoded
        // first, the error would be the missing bytes, not the count. The
        // tag comes from the encoder, so a reordered enum that left the
        // pre-check's tags behind fails here.
        for (empty, count, what) in [
            (SyncResponse::Blocks(Vec::new()), MAX_SYNC_BLOCKS + 1, "blocks"),
            (SyncResponse::Headers(Vec::new()), MAX_SYNC_HEADERS + 1, "headers"),
        ] {
            let mut bytes = codec::encode(&empty);
            assert_eq!(bytes.len(), 12, "a tag and a u64 count");
            bytes[4..].copy_from_slice(&u64::from(count).to_le_bytes());
            let error = read_response(&bytes).await.expect_err("decoded");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            let over = format!("{count} {what}, over {}", count - 1);
            assert!(error.to_string().contains(&over), "{error}");
        }
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

        for count in [0, MAX_SYNC_HEADERS + 1] {
            let req = SyncRequest::Headers {
                from_height: 0,
                count,
            };
            assert_invalid(read_request(&codec::encode(&req)).await);
            let mut out = Cursor::new(Vec::new());
            assert_invalid(SyncCodec.write_request(&protocol(), &mut out, req).await);
        }
        let most = SyncResponse::Headers(vec![genesis_header(); MAX_SYNC_HEADERS as usize]);
        assert_eq!(
            read_response(&written_response(most.clone()).await.unwrap())
                .await
                .unwrap(),
            most
        );
        let too_many = SyncResponse::Headers(vec![genesis_header(); MAX_SYNC_HEADERS as usize + 1]);
        assert_invalid(written_response(too_many.clone()).await);
        assert_invalid(read_response(&codec::encode(&too_many)).await);
    }
}
