//! The testnet's ports: node i listens on `BASE + i` (libp2p) and
//! `BASE + 100 + i` (HTTP API). When the default range is taken (another
//! testnet runs there), `up` moves up in steps of [`STRIDE`] to the first
//! free range and says so; an explicit `--base-port` that is taken is an
//! error, and `--base-port 0` lets the OS choose every port.
//!
//! A range is checked by binding each port on 127.0.0.1 and letting go, so
//! two launchers started in the same instant could still pick the same one
//! (the second's nodes then fail to bind and `up` says so); one after the
//! other, as in a script or a test, they never do.

use std::net::TcpListener;

use anyhow::{Context, Result, bail};

/// `--base-port` when none is given.
pub(crate) const DEFAULT_BASE: u16 = 30400;
/// Between the ranges tried after the default: room for 64 nodes' two ports.
const STRIDE: u16 = 200;
/// Ranges tried after the default before the OS is left to choose.
const TRIES: u16 = 50;

/// The base port for `nodes` nodes, and a note for the user when it is not
/// the one asked for.
///
/// # Errors
///
/// If an explicit base's range is taken or does not fit below 65536.
pub(crate) fn choose(requested: Option<u16>, nodes: u16) -> Result<(u16, Option<String>)> {
    match requested {
        Some(0) => Ok((0, None)),
        Some(base) => {
            range_free(base, nodes).with_context(|| {
                format!("--base-port {base} is taken; choose another, or 0 to let the OS choose")
            })?;
            Ok((base, None))
        }
        None => {
            let taken = format!("ports {DEFAULT_BASE}.. are taken (another testnet?)");
            for k in 0..TRIES {
                let Some(base) = DEFAULT_BASE.checked_add(k * STRIDE) else {
                    break;
                };
                if range_free(base, nodes).is_ok() {
                    let note = (k > 0).then(|| format!("{taken}; using --base-port {base}"));
                    return Ok((base, note));
                }
            }
            Ok((
                0,
                Some(format!(
                    "{taken}, and so are the next {TRIES} ranges; the OS chooses"
                )),
            ))
        }
    }
}

/// Node `index`'s p2p and API ports: `base + index` and `base + 100 +
/// index`; with base 0, zeros for the OS to choose.
///
/// # Errors
///
/// If they do not fit below 65536.
pub(crate) fn of(base: u16, index: u16) -> Result<(u16, u16)> {
    if base == 0 {
        return Ok((0, 0));
    }
    let p2p = base.checked_add(index).context("--base-port too high")?;
    let rpc = base
        .checked_add(100)
        .and_then(|b| b.checked_add(index))
        .context("--base-port too high")?;
    Ok((p2p, rpc))
}

/// Checks that node `index`'s two ports are free.
///
/// # Errors
///
/// Naming the first port in use.
pub(crate) fn free(base: u16, index: u16) -> Result<(u16, u16)> {
    let (p2p, rpc) = of(base, index)?;
    if base != 0 {
        port_free(p2p)?;
        port_free(rpc)?;
    }
    Ok((p2p, rpc))
}

fn range_free(base: u16, nodes: u16) -> Result<()> {
    (0..nodes).try_for_each(|i| free(base, i).map(drop))
}

fn port_free(port: u16) -> Result<()> {
    match TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(()),
        Err(error) => bail!("port {port} on 127.0.0.1 is in use ({error})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_explicit_base_is_refused_and_zero_is_left_to_the_os() {
        let held = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = held.local_addr().expect("addr").port();
        let err = choose(Some(port), 1).expect_err("taken").to_string();
        assert!(err.contains("--base-port"), "{err}");
        assert_eq!(choose(Some(0), 4).expect("os"), (0, None));
        assert_eq!(of(0, 3).expect("zeros"), (0, 0));
        assert!(of(65_500, 0).is_err());
    }
}
