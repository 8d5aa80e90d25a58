//! Measurement code behind `klero bench` and the miner's start.
//!
//! - [`ceiling`]: the SHA unit's own limit, for `klero bench hashrate`.
//! - [`calibrate`]: times the hash kernels and picks the fastest.

pub mod calibrate;
pub mod ceiling;
