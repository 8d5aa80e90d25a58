//! `klero bench hashrate`: tries per second of the real nonce search, for
//! each hash kernel and thread count, beside OpenSSL's SHA-256 compression
//! rate and the SHA unit's ceiling ([`ceiling`]) measured in the same run.
//!
//! Each measurement runs [`klero_chain::pow::search`] (the miner's own
//! loop: rayon workers, chunks, stop flag) against an unreachable target and
//! stops it after `--seconds`; the figure is the median of `--runs`.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use klero_chain::pow::{self, Kernel, SearchOptions, SearchOutcome};
use serde::Serialize;

use crate::bench::calibrate;
use crate::bench::ceiling::{self, Ceiling};
use crate::bench::stats::median;

/// Time per chain count and mix of one ceiling probe (18 points).
const PROBE_POINT: Duration = Duration::from_millis(20);

/// `klero bench hashrate`
#[derive(Debug, Args)]
pub struct HashrateArgs {
    /// Thread counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Seconds per run.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Runs per kernel and thread count (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Kernel: auto (the fastest this CPU has, timed), portable, shani-x2,
    /// shani-x3, shani-x4 (armsha2-x… on aarch64), or all.
    #[arg(long, default_value = "all")]
    kernel: String,
    /// Skip the same-run OpenSSL reference.
    #[arg(long)]
    no_openssl: bool,
    /// Print JSON on stdout (an array, one object per kernel and thread count).
    #[arg(long)]
    json: bool,
}

/// One row of the report.
#[derive(Debug, Serialize)]
struct Row {
    kernel: &'static str,
    threads: usize,
    /// Median tries (= SHA-256 compressions) per second.
    hashes_per_sec: f64,
    /// Every run's figure.
    runs: Vec<f64>,
    /// Median over the 1-thread median of the same kernel, if measured.
    scaling: Option<f64>,
    /// `scaling / threads`.
    efficiency: Option<f64>,
    /// OpenSSL's single-core bulk SHA-256 rate in compressions per second.
    openssl_compressions_per_sec: Option<f64>,
    /// Tries per second per thread over OpenSSL's compressions per second.
    vs_openssl: Option<f64>,
    /// The SHA unit's ceiling: the median of the probes of the whole run.
    ceiling: Option<Ceiling>,
    /// The median over the runs of tries per second per thread over the
    /// ceiling probed right before that run.
    vs_ceiling: Option<f64>,
    /// The same over the probe's rate with a try's vector instructions
    /// ([`Ceiling::vector_tries_per_sec`]).
    vs_vector_ceiling: Option<f64>,
}

/// Runs the benchmark.
///
/// # Errors
///
/// Bad arguments (an unknown kernel, one this CPU lacks, no threads).
pub(crate) fn run(args: HashrateArgs) -> Result<()> {
    let kernels = kernels(&args.kernel)?;
    if args.threads.is_empty() || args.threads.contains(&0) || args.runs == 0 || args.seconds <= 0.0 {
        bail!("--threads needs counts ≥ 1, --runs ≥ 1 and --seconds > 0");
    }
    let per_run = Duration::from_secs_f64(args.seconds);
    let total = (kernels.len() * args.threads.len() * args.runs) as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:24} {bar:40} {pos}/{len} runs (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));

    bar.set_message("openssl speed sha256");
    let openssl = if args.no_openssl {
        None
    } else {
        match openssl_compressions_per_sec(args.seconds.ceil().max(1.0) as u64) {
            Ok(rate) => Some(rate),
            Err(err) => {
                bar.suspend(|| eprintln!("warning: no OpenSSL reference: {err:#}"));
                None
            }
        }
    };

    let mut rows = Vec::new();
    let mut probes = Vec::new();
    for kernel in kernels {
        for &threads in &args.threads {
            bar.set_message(format!("{} × {threads}", kernel.name()));
            // A short warm-up builds the worker pool and wakes the cores.
            measure(kernel, threads, Duration::from_millis(200));
            // Each run is paired with a probe of the SHA unit right before it,
            // so a change of the machine's load moves both.
            let (mut shares, mut vector_shares) = (Vec::new(), Vec::new());
            let runs: Vec<f64> = (0..args.runs)
                .map(|_| {
                    let probe = ceiling::measure(PROBE_POINT);
                    let rate = measure(kernel, threads, per_run);
                    if let Some(probe) = probe {
                        probes.push(probe);
                        shares.push(rate / threads as f64 / probe.tries_per_sec);
                        vector_shares.push(rate / threads as f64 / probe.vector_tries_per_sec);
                    }
                    bar.inc(1);
                    rate
                })
                .collect();
            let hashes_per_sec = median(&mut runs.clone());
            rows.push(Row {
                kernel: kernel.name(),
                threads,
                hashes_per_sec,
                runs,
                scaling: None,
                efficiency: None,
                openssl_compressions_per_sec: openssl,
                vs_openssl: openssl.map(|o| hashes_per_sec / threads as f64 / o),
                ceiling: None,
                vs_ceiling: (!shares.is_empty()).then(|| median(&mut shares)),
                vs_vector_ceiling: (!vector_shares.is_empty()).then(|| median(&mut vector_shares)),
            });
        }
    }
    bar.finish_and_clear();
    let ceiling = ceiling::median_of(&probes);
    for row in &mut rows {
        row.ceiling = ceiling;
    }
    for i in 0..rows.len() {
        let single = rows
            .iter()
            .find(|r| r.kernel == rows[i].kernel && r.threads == 1)
            .map(|r| r.hashes_per_sec);
        if let Some(single) = single {
            let scaling = rows[i].hashes_per_sec / single;
            rows[i].scaling = Some(scaling);
            rows[i].efficiency = Some(scaling / rows[i].threads as f64);
        }
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&rows, openssl, ceiling, args.seconds, args.runs);
    }
    Ok(())
}

fn kernels(choice: &str) -> Result<Vec<Kernel>> {
    match choice {
        "all" => return Ok(Kernel::available()),
        "auto" => return Ok(vec![calibrate::fastest_kernel(calibrate::MINER_BUDGET)]),
        _ => {}
    }
    let kernel: Kernel = choice.parse().with_context(|| format!("--kernel {choice}"))?;
    Ok(vec![kernel.ensure_supported()?])
}

/// Tries per second of one search stopped after `duration`.
fn measure(kernel: Kernel, threads: usize, duration: Duration) -> f64 {
    // Only a hash of 0 meets a zero target: the search runs until stopped.
    let target = [0u8; 32];
    let pre = *blake3::hash(b"klero bench hashrate").as_bytes();
    let stop = AtomicBool::new(false);
    let opts = SearchOptions {
        threads,
        kernel,
        ..SearchOptions::default()
    };
    let started = Instant::now();
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(duration);
            stop.store(true, Ordering::Relaxed);
        });
        pow::search(&pre, &target, 0, &opts, &stop)
    });
    let elapsed = started.elapsed().as_secs_f64();
    let tries = match outcome {
        SearchOutcome::Found { tries, .. }
        | SearchOutcome::Stopped { tries }
        | SearchOutcome::Exhausted { tries } => tries,
    };
    tries as f64 / elapsed
}

/// OpenSSL's single-core SHA-256 bulk rate, in compressions (64-byte
/// blocks) per second: `openssl speed -bytes 16384 sha256`.
fn openssl_compressions_per_sec(seconds: u64) -> Result<f64> {
    let output = Command::new("openssl")
        .args([
            "speed",
            "-seconds",
            &seconds.to_string(),
            "-bytes",
            "16384",
            "sha256",
        ])
        .output()
        .context("running `openssl speed` (is openssl installed?)")?;
    if !output.status.success() {
        bail!(
            "`openssl speed` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse_openssl_speed(&String::from_utf8_lossy(&output.stdout))
}

/// Reads the `sha256   1871102.45k` line (thousands of bytes per second).
fn parse_openssl_speed(stdout: &str) -> Result<f64> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("sha256"))
        .context("no sha256 line in `openssl speed` output")?;
    let field = line.split_whitespace().last().context("empty sha256 line")?;
    let kilobytes: f64 = field
        .trim_end_matches('k')
        .parse()
        .with_context(|| format!("unreadable `openssl speed` figure {field:?}"))?;
    Ok(kilobytes * 1000.0 / 64.0)
}

fn print_table(rows: &[Row], openssl: Option<f64>, ceiling: Option<Ceiling>, seconds: f64, runs: usize) {
    println!("PoW hashrate: median of {runs} runs of {seconds} s each (1 try = 1 SHA-256 compression)");
    if let Some(o) = openssl {
        println!(
            "OpenSSL sha256 bulk rate, 1 core: {:.2} M compressions/s",
            o / 1e6
        );
    }
    if let Some(c) = ceiling {
        println!(
            "SHA unit, 1 core: {:.0} M sha256rnds2/s alone ({} chains), {:.0} M/s with a try's msg1/msg2 ({} chains, {:.2}x)",
            c.rounds_only.rnds2_per_sec / 1e6,
            c.rounds_only.chains,
            c.with_schedule.rnds2_per_sec / 1e6,
            c.with_schedule.chains,
            c.schedule_cost,
        );
        println!(
            "                  {:.0} M/s with its paddd/pshufd/palignr too ({} chains, {:.2}x)",
            c.with_vector_ops.rnds2_per_sec / 1e6,
            c.with_vector_ops.chains,
            c.vector_ops_cost,
        );
        println!(
            "ceiling: {:.2} M tries/s per core (28 sha256rnds2 = 56 rounds per try); {:.2} M/s with the vector ops (vec)",
            c.tries_per_sec / 1e6,
            c.vector_tries_per_sec / 1e6,
        );
    }
    println!(
        "{:<11} {:>8} {:>12} {:>9} {:>11} {:>14} {:>14} {:>13}",
        "kernel",
        "threads",
        "MH/s",
        "scaling",
        "efficiency",
        "per core/ossl",
        "per core/ceil",
        "per core/vec"
    );
    let opt = |v: Option<f64>, suffix: &str| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}{suffix}"));
    for r in rows {
        println!(
            "{:<11} {:>8} {:>12.2} {:>9} {:>11} {:>14} {:>14} {:>13}",
            r.kernel,
            r.threads,
            r.hashes_per_sec / 1e6,
            opt(r.scaling, "x"),
            opt(r.efficiency.map(|e| e * 100.0), "%"),
            opt(r.vs_openssl, "x"),
            opt(r.vs_ceiling.map(|e| e * 100.0), "%"),
            opt(r.vs_vector_ceiling.map(|e| e * 100.0), "%"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_openssl_speed_output() {
        let out = "The 'numbers' are in 1000s of bytes per second processed.\n\
                   type          16384 bytes\nsha256         1871102.45k\n";
        let rate = parse_openssl_speed(out).unwrap();
        assert!((rate - 1_871_102.45 * 1000.0 / 64.0).abs() < 1e-3);
        assert!(parse_openssl_speed("garbage").is_err());
    }

    #[test]
    fn a_short_measurement_counts_tries() {
        assert!(measure(Kernel::Portable, 1, Duration::from_millis(50)) > 0.0);
    }
}
