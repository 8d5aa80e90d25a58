//! The benchmarks behind `klero bench`: their measurements, statistics and
//! reports (the CLI only parses the arguments and calls in), and the kernel
//! calibration the miner runs at start.
//!
//! - [`hashrate`]: tries per second of the real nonce search per kernel and
//!   thread count, beside OpenSSL's SHA-256 rate and [`ceiling`], the SHA
//!   unit's own limit measured in the same run.
//! - [`calibrate`]: times the hash kernels and picks the fastest.
//! - [`fairness`]: both lotteries run for real, round after round;
//!   [`stats`]: the goodness-of-fit tests; [`fairness_report`]: the
//!   command that runs them and reports (table, JSON, SVG).
//! - [`store`]: a chain of real transfers imported through the node's
//!   block tree: store bytes per block, import rate, RSS, restart, reorg.

pub(crate) mod calibrate;
pub(crate) mod ceiling;
pub(crate) mod fairness;
pub(crate) mod fairness_report;
pub(crate) mod hashrate;
pub(crate) mod stats;
pub(crate) mod store;
