//! Network faults on a running testnet: what `testnet.json` asks of each
//! node (the partition's groups, each node's link faults), and pushing it
//! to the nodes' admin APIs (every node runs with `--chaos`).
//!
//! The state file is the wish, the nodes' `GET /chaos` the fact: after a
//! node is (re)started or resumed, [`push`] tells it the wish again, so a
//! node restarted inside a partition stays in it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

use super::{NodeEntry, State, process};
use crate::api::chaos::LinkFaults;
use crate::api::client::ApiClient;

/// How long an admin call may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The partition's groups from the command line's (`node0,node1
/// node2,node3`): every name known and in one group at most; the nodes not
/// named form one more group together.
///
/// # Errors
///
/// An unknown or repeated name, or fewer than two groups in the end.
pub(crate) fn groups(all: &[String], named: &[String]) -> Result<Vec<Vec<String>>> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    for text in named {
        let group: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        if group.is_empty() {
            bail!("an empty group in {text:?}");
        }
        for name in &group {
            if !all.contains(name) {
                bail!("no node {name:?}; the testnet has {}", all.join(", "));
            }
            if groups.iter().flatten().any(|n| n == name) || group.iter().filter(|n| *n == name).count() > 1 {
                bail!("{name} is in more than one group");
            }
        }
        groups.push(group);
    }
    let rest: Vec<String> = all
        .iter()
        .filter(|n| !groups.iter().flatten().any(|g| g == *n))
        .cloned()
        .collect();
    if !rest.is_empty() {
        groups.push(rest);
    }
    if groups.len() < 2 {
        bail!("a partition needs at least two groups; every node is in one");
    }
    Ok(groups)
}

/// The nodes `name` must not talk to: those in another group. A node in
/// no group (added later, or `clear`ed) talks to everyone.
pub(crate) fn split_from<'a>(partition: &'a [Vec<String>], name: &str) -> Vec<&'a str> {
    let Some(mine) = partition.iter().find(|g| g.iter().any(|n| n == name)) else {
        return Vec::new();
    };
    partition
        .iter()
        .filter(|g| *g != mine)
        .flatten()
        .map(String::as_str)
        .collect()
}

/// Takes `name` out of the partition; a partition left with fewer than
/// two groups is over.
pub(crate) fn leave(partition: &mut Vec<Vec<String>>, name: &str) {
    for group in partition.iter_mut() {
        group.retain(|n| n != name);
    }
    partition.retain(|g| !g.is_empty());
    if partition.len() < 2 {
        partition.clear();
    }
}

/// The libp2p peer id at the end of a node's address.
///
/// # Errors
///
/// If the state file's address has none.
pub(crate) fn peer_id(node: &NodeEntry) -> Result<String> {
    let addr: Multiaddr = node
        .p2p
        .parse()
        .with_context(|| format!("{}'s address", node.name))?;
    addr.iter()
        .find_map(|p| match p {
            Protocol::P2p(id) => Some(id.to_string()),
            _ => None,
        })
        .with_context(|| format!("{}'s address {} has no peer id", node.name, node.p2p))
}

/// A client of the node's admin API.
///
/// # Errors
///
/// If the node has none (it was started before `--chaos` existed).
pub(crate) fn admin(node: &NodeEntry) -> Result<ApiClient> {
    let url = node.admin.as_deref().with_context(|| {
        format!(
            "{} has no admin API (started without --chaos); `klero testnet restart {0}` gives it one",
            node.name
        )
    })?;
    Ok(ApiClient::new(url, ADMIN_TIMEOUT)?)
}

/// What pushing the wish to a node came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// The node has the faults the state file asks for.
    Applied,
    /// Not running: it gets them when it starts.
    Stopped,
    /// Paused: it gets them when it resumes.
    Paused,
}

/// Tells a node the faults the state file asks of it: its block list (the
/// peer ids of the nodes it is split from) and its link faults.
///
/// # Errors
///
/// If the admin API is unreachable or refuses.
pub(crate) fn push(state: &State, node: &NodeEntry) -> Result<Pushed> {
    let Some(pid) = node.pid.filter(|p| process::alive(*p)) else {
        return Ok(Pushed::Stopped);
    };
    if process::paused(pid) {
        return Ok(Pushed::Paused);
    }
    let blocked = split_from(&state.partition, &node.name)
        .into_iter()
        .map(|name| {
            let other = state.nodes.iter().find(|n| n.name == name);
            other.map_or_else(
                || bail!("the partition names {name}, which the testnet lacks"),
                peer_id,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let client = admin(node)?;
    client
        .set_partition(blocked)
        .with_context(|| format!("setting {}'s partition", node.name))?;
    client
        .set_link(&node.link)
        .with_context(|| format!("setting {}'s link faults", node.name))?;
    Ok(Pushed::Applied)
}

/// A short description of link faults: `delay 300±50ms, loss 10%`.
pub(crate) fn describe(link: &LinkFaults) -> Vec<String> {
    let mut parts = Vec::new();
    if link.delay_ms > 0 || link.jitter_ms > 0 {
        parts.push(if link.jitter_ms > 0 {
            format!("delay {}±{}ms", link.delay_ms, link.jitter_ms)
        } else {
            format!("delay {}ms", link.delay_ms)
        });
    }
    if link.loss_ppm > 0 {
        parts.push(format!("loss {}%", f64::from(link.loss_ppm) / 10_000.0));
    }
    parts
}

/// Parses `10%`, `10` or `0.5%` into parts per million.
///
/// # Errors
///
/// Not a number, or outside 0 to 100.
pub(crate) fn parse_percent(text: &str) -> Result<u32> {
    let number = text.trim().trim_end_matches('%');
    let percent: f64 = number
        .parse()
        .ok()
        .filter(|p: &f64| p.is_finite())
        .with_context(|| format!("{text:?} is not a percentage (e.g. 10%)"))?;
    if !(0.0..=100.0).contains(&percent) {
        bail!("loss {text} is not between 0% and 100%");
    }
    // At most 10^6: the cast cannot truncate.
    Ok((percent * 10_000.0).round() as u32)
}

/// Parses `200ms`, `1.5s` or `2s` into milliseconds. Two units are all a
/// network delay needs; humantime would add a dependency for them.
///
/// # Errors
///
/// Another unit, or not a number.
pub(crate) fn parse_ms(text: &str) -> Result<u64> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1.0)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1000.0)
    } else {
        bail!("{text:?} needs a unit: 200ms or 0.2s");
    };
    let value: f64 = number
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0 && *v * scale < 1e12)
        .with_context(|| format!("{text:?} is not a duration (e.g. 200ms or 0.2s)"))?;
    // Below 10^12: the cast cannot truncate.
    Ok((value * scale).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node{i}")).collect()
    }

    fn args(groups: &[&str]) -> Vec<String> {
        groups.iter().map(|g| (*g).to_owned()).collect()
    }

    #[test]
    fn unnamed_nodes_form_their_own_group() {
        let all = names(5);
        let groups = groups(&all, &args(&["node0,node1", "node3"])).expect("groups");
        assert_eq!(
            groups,
            vec![
                vec!["node0".to_owned(), "node1".to_owned()],
                vec!["node3".to_owned()],
                vec!["node2".to_owned(), "node4".to_owned()],
            ]
        );
        assert_eq!(split_from(&groups, "node0"), ["node3", "node2", "node4"]);
        assert_eq!(split_from(&groups, "node3"), ["node0", "node1", "node2", "node4"]);
        assert!(split_from(&groups, "node9").is_empty());
    }

    #[test]
    fn bad_groups_are_refused() {
        let all = names(4);
        for bad in [
            &["node0,node1", "node1,node2"][..],
            &["node0,node0"],
            &["node7"],
            &["node0,node1,node2,node3"],
            &[","],
        ] {
            assert!(groups(&all, &args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn leaving_the_last_but_one_group_ends_the_partition() {
        let mut partition = groups(&names(3), &args(&["node0", "node1"])).expect("groups");
        leave(&mut partition, "node2");
        assert_eq!(partition.len(), 2);
        leave(&mut partition, "node1");
        assert!(partition.is_empty());
    }

    #[test]
    fn durations_and_percentages_parse() {
        assert_eq!(parse_ms("200ms").expect("ms"), 200);
        assert_eq!(parse_ms("1.5s").expect("s"), 1_500);
        assert!(parse_ms("200").is_err());
        assert!(parse_ms("-1ms").is_err());
        assert_eq!(parse_percent("10%").expect("%"), 100_000);
        assert_eq!(parse_percent("0.5").expect("%"), 5_000);
        assert_eq!(parse_percent("100%").expect("%"), 1_000_000);
        assert!(parse_percent("101%").is_err());
        assert!(parse_percent("NaN").is_err());
    }
}
