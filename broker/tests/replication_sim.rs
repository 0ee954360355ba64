//! the guarantees of `docs/replication.md` under a deterministic, seeded simulation of
//! the cluster (see `sim/mod.rs`): network partitions (symmetric and
//! one-way), delays, message loss, broker crashes and restarts, controlled
//! shutdowns and preferred-leader elections, with acks=all and acks=1
//! producers and sampling consumers. A failing seed replays exactly:
//!
//! ```text
//! STRATA_SIM_SEED=<seed> cargo test -p strata-broker --test replication_sim replay -- --nocapture
//! ```
//!
//! Soak (opt-in): `STRATA_SIM_SEEDS=500` (seeds 0..500) or `=1000..2000`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

mod sim;

use std::time::Instant;

use sim::{Report, SimConfig, World};

/// Seeds every CI run checks (about 0.2 s each). With the simulation as it
/// is, seed 1 found acks=all completing with the ISR below the minimum and
/// seeds 180 and 1033 two endless divergence loops of a follower (all fixed).
const CI_SEEDS: [u64; 10] = [1, 2, 3, 4, 5, 6, 7, 8, 180, 1033];

fn run(seed: u64) -> Report {
    World::new(SimConfig::new(seed)).run()
}

fn replay_hint(seed: u64) -> String {
    format!("replay: STRATA_SIM_SEED={seed} cargo test -p strata-broker --test replication_sim replay -- --nocapture")
}

fn failure(seed: u64, r: &Report) -> String {
    format!(
        "seed {seed} FAILED ({} violation(s)):\n  {}\nlast trace lines:\n{}\n{}",
        r.violations.len(),
        r.violations.join("\n  "),
        r.tail[r.tail.len().saturating_sub(60)..].join("\n"),
        replay_hint(seed)
    )
}

fn summary(seed: u64, r: &Report, took: std::time::Duration) -> String {
    format!(
        "seed {seed}: {} events, {} ms simulated in {:.2?}; acked all/1 {}/{}, produce errors {}, consumed {}, \
         crashes {}, cuts {}, max leader epoch {}, truncations {}, HW drops on restart {}, trace {:016x}",
        r.events,
        r.sim_ms,
        took,
        r.acked_all,
        r.acked_one,
        r.produce_errors,
        r.consumed,
        r.crashes,
        r.cuts,
        r.max_leader_epoch,
        r.truncations,
        r.hw_restart_regressions,
        r.trace_hash
    )
}

fn check(seed: u64) -> Result<Report, String> {
    let start = Instant::now();
    let r = run(seed);
    eprintln!("{}", summary(seed, &r, start.elapsed()));
    if r.violations.is_empty() {
        Ok(r)
    } else {
        Err(failure(seed, &r))
    }
}

#[test]
fn replication_guarantees_hold_for_ci_seeds() {
    let mut failures = Vec::new();
    let mut acked = 0;
    for seed in CI_SEEDS {
        match check(seed) {
            Ok(r) => acked += r.acked_all,
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(acked > 100, "the seeds acknowledged too little to mean anything ({acked} acks=all records)");
}

#[test]
fn a_seed_replays_exactly() {
    let a = run(42);
    let b = run(42);
    assert_eq!(a.events, b.events);
    assert_eq!(a.trace_hash, b.trace_hash, "seed 42 ran two different traces");
    let c = run(43);
    assert_ne!(a.trace_hash, c.trace_hash, "different seeds should run different traces");
}

/// Parses `N` (seeds 0..N) or `A..B`.
fn seeds_from(spec: &str) -> Vec<u64> {
    let spec = spec.trim();
    match spec.split_once("..") {
        Some((a, b)) => {
            (a.trim().parse().expect("seed range start")..b.trim().parse().expect("seed range end")).collect()
        }
        None => (0..spec.parse().expect("seed count")).collect(),
    }
}

#[test]
fn soak() {
    let Ok(spec) = std::env::var("STRATA_SIM_SEEDS") else {
        eprintln!("soak skipped: set STRATA_SIM_SEEDS=N (seeds 0..N) or A..B");
        return;
    };
    let seeds = seeds_from(&spec);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(&seed) = seeds.get(i) else { return };
                if let Err(e) = check(seed) {
                    eprintln!("{e}");
                    failures.lock().unwrap().push(seed);
                }
            });
        }
    });
    let mut failed = failures.into_inner().unwrap();
    failed.sort_unstable();
    assert!(failed.is_empty(), "failing seeds: {failed:?}\n{}", replay_hint(failed[0]));
}

#[test]
fn replay() {
    let Ok(seed) = std::env::var("STRATA_SIM_SEED") else { return };
    let seed: u64 = seed.trim().parse().expect("STRATA_SIM_SEED");
    let r = run(seed);
    for line in &r.tail {
        eprintln!("{line}");
    }
    assert!(r.violations.is_empty(), "{}", failure(seed, &r));
}
