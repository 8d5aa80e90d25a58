//! Placeholder for the ECVRF module (being written separately); types only.
#![allow(missing_docs, dead_code)]
use bincode::{Decode, Encode};
pub const SUITE: u8 = 0x03;
#[derive(Clone)]
pub struct VrfSecretKey([u8; 32]);
impl VrfSecretKey {
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        VrfSecretKey(*seed)
    }
    pub fn public_key(&self) -> VrfPublicKey {
        VrfPublicKey(blake3::hash(&self.0).into())
    }
}
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Encode, Decode)]
pub struct VrfPublicKey(pub [u8; 32]);
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Encode, Decode)]
pub struct VrfProof(pub [u8; 80]);
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Encode, Decode)]
pub struct VrfOutput(pub [u8; 64]);
