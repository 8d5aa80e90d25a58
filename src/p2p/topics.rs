//! Names on the wire: the gossip topics and stream protocols, all scoped by
//! chain id so that nodes of different chains never mix traffic, gossip
//! meshes or routing tables.
//!
//! # Format
//!
//! ```text
//! /klero/<chain-id>/blocks/1   gossipsub topic: encoded blocks
//! /klero/<chain-id>/txs/1      gossipsub topic: encoded transactions
//! /klero/<chain-id>/sync/1     request-response: SyncRequest -> SyncResponse
//! /klero/<chain-id>/kad/1      kademlia
//! /klero/id/1                  identify's protocol version string
//! ```

use klero_chain::codec::MAX_TX_BYTES;
use libp2p::StreamProtocol;
use libp2p::gossipsub::{IdentTopic, TopicHash};

use super::{MAX_GOSSIP_BYTES, P2pError};

/// What identify announces as our protocol family.
pub(crate) const IDENTIFY_PROTOCOL_VERSION: &str = "/klero/id/1";

/// What a gossip topic carries.
/// The two gossip topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// New blocks.
    Block,
    /// New transactions.
    Tx,
}

impl TopicKind {
    /// Largest payload published or accepted: anything bigger cannot decode.
    pub(crate) fn max_bytes(self) -> usize {
        match self {
            TopicKind::Block => MAX_GOSSIP_BYTES,
            TopicKind::Tx => MAX_TX_BYTES,
        }
    }

    /// "block" or "transaction", for logs.
    pub fn name(self) -> &'static str {
        match self {
            TopicKind::Block => "block",
            TopicKind::Tx => "transaction",
        }
    }
}

/// Every chain-scoped name, built once from the chain id.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub(crate) blocks: IdentTopic,
    pub(crate) txs: IdentTopic,
    pub(crate) sync: StreamProtocol,
    pub(crate) kad: StreamProtocol,
}

impl Names {
    /// # Errors
    ///
    /// [`P2pError::InvalidChainId`] if the id would break a protocol name
    /// (the chain spec allows only `a-z`, `0-9` and `-`; this is the
    /// network's own, looser guard).
    pub(crate) fn new(chain_id: &str) -> Result<Names, P2pError> {
        let valid = !chain_id.is_empty()
            && chain_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return Err(P2pError::InvalidChainId(chain_id.to_owned()));
        }
        let protocol = |name: &str| {
            StreamProtocol::try_from_owned(format!("/klero/{chain_id}/{name}/1"))
                .map_err(|_| P2pError::InvalidChainId(chain_id.to_owned()))
        };
        Ok(Names {
            blocks: IdentTopic::new(format!("/klero/{chain_id}/blocks/1")),
            txs: IdentTopic::new(format!("/klero/{chain_id}/txs/1")),
            sync: protocol("sync")?,
            kad: protocol("kad")?,
        })
    }

    pub(crate) fn topic(&self, kind: TopicKind) -> &IdentTopic {
        match kind {
            TopicKind::Block => &self.blocks,
            TopicKind::Tx => &self.txs,
        }
    }

    /// The kind of a topic we subscribe to; `None` for any other.
    pub(crate) fn kind(&self, topic: &TopicHash) -> Option<TopicKind> {
        if *topic == self.blocks.hash() {
            Some(TopicKind::Block)
        } else if *topic == self.txs.hash() {
            Some(TopicKind::Tx)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_scoped_by_chain_id() {
        let names = Names::new("klero-test").unwrap();
        assert_eq!(names.blocks.hash().as_str(), "/klero/klero-test/blocks/1");
        assert_eq!(names.txs.hash().as_str(), "/klero/klero-test/txs/1");
        assert_eq!(names.sync.as_ref(), "/klero/klero-test/sync/1");
        assert_eq!(names.kad.as_ref(), "/klero/klero-test/kad/1");
        assert_eq!(names.kind(&names.blocks.hash()), Some(TopicKind::Block));
        assert_eq!(names.kind(&names.txs.hash()), Some(TopicKind::Tx));
        let other = Names::new("other").unwrap();
        assert_eq!(names.kind(&other.blocks.hash()), None);
    }

    #[test]
    fn rejects_chain_ids_that_break_names() {
        for bad in ["", "a/b", "a b", "ü"] {
            assert!(
                matches!(Names::new(bad), Err(P2pError::InvalidChainId(id)) if id == bad),
                "{bad:?}"
            );
        }
    }
}
