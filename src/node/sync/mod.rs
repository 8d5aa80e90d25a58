//! Sync over the request-response protocol of [`crate::p2p`]: the
//! [`client`] catches up with peers, the [`server`] answers their requests
//! from the store. A block received by sync that breaks a rule counts
//! against the peer that sent it, on the same strike path as gossip
//! ([`super::peers`]).

pub(crate) mod client;
pub(crate) mod server;

pub(crate) use self::client::Syncer;
pub(crate) use self::server::SyncServer;
