//! Decisions per second and replay speed and memory.
//!
//!     cargo bench -p tollgate-policy --bench eval        (or scripts/bench.sh)
//!
//! Environment: `TOLLGATE_BENCH_DECISIONS` (default 2,000,000 per figure),
//! `TOLLGATE_BENCH_ROWS` (the large CDR, default 1,000,000).

#[path = "synth/mod.rs"]
mod synth;

use std::collections::HashMap;
use std::hint::black_box;
use std::io::BufReader;
use std::time::{Duration, Instant};
use tollgate_ir::CompiledPolicy;
use tollgate_policy::eval::{Call, Evaluator, Transport};
use tollgate_policy::replay::{Config, Replay};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0); false where not possible.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// Calls from the tenant's own network to random numbers, spread over a week.
fn calls(n: usize, seed: u64) -> Vec<Call> {
    let mut rng = synth::Rng::new(seed);
    (0..n)
        .map(|_| {
            let dest = format!("+{}", rng.digits_between(8, 12));
            let src = format!(
                "10.{}.{}.{}",
                rng.below(256),
                rng.below(256),
                1 + rng.below(254)
            );
            let at = jiff::Timestamp::from_second(1_768_176_000 + rng.below(7 * 86_400) as i64)
                .expect("in range");
            let mut c = Call::new(dest, src.parse().expect("ip"), at);
            c.source_country = Some("GB".into());
            c.transport = Transport::Tls;
            c.concurrent = rng.below(800);
            c.rate = rng.below(700);
            c
        })
        .collect()
}

/// Decisions per second of `decide(call, trace)` over `n` decisions.
fn decisions_per_second(policy: &CompiledPolicy, calls: &[Call], n: u64, trace: bool) -> f64 {
    let eval = Evaluator::new(policy);
    for c in calls.iter().take(10_000) {
        black_box(eval.decide(c, trace));
    }
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        for c in calls {
            black_box(eval.decide(black_box(c), trace));
        }
        done += calls.len() as u64;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

/// The bare cost of the lookup: longest prefix of the number in a `HashMap`
/// of the policy's prefixes, no evaluator.
fn lookups_per_second(policy: &CompiledPolicy, calls: &[Call], n: u64) -> f64 {
    let table: HashMap<&str, usize> = policy
        .destinations
        .iter()
        .enumerate()
        .map(|(i, d)| (d.prefix.as_str(), i))
        .collect();
    let max = table.keys().map(|k| k.len()).max().unwrap_or(0);
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        for c in calls {
            let number = black_box(&c.destination).trim_start_matches('+');
            let hit = (0..=max.min(number.len()))
                .rev()
                .find_map(|len| table.get(&number[..len]));
            black_box(hit);
        }
        done += calls.len() as u64;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

struct ReplayRun {
    rows: u64,
    time: Duration,
    hwm_before: Option<u64>,
    hwm_after: Option<u64>,
    decided: u64,
}

fn replay(
    policy: &CompiledPolicy,
    against: Option<&CompiledPolicy>,
    path: &std::path::Path,
    rows: u64,
) -> ReplayRun {
    let reset = reset_peak();
    let hwm_before = if reset { status_kib("VmHWM") } else { None };
    let start = Instant::now();
    let file = std::fs::File::open(path).expect("the CDR");
    let report = Replay::new(policy, against, Config::default())
        .run(BufReader::with_capacity(1 << 16, file), &mut |_| {})
        .expect("the replay runs");
    let time = start.elapsed();
    ReplayRun {
        rows,
        time,
        hwm_before,
        hwm_after: status_kib("VmHWM"),
        decided: report.decided,
    }
}

/// In a fresh process (this binary again): the peak memory of a replay is
/// then the replay's own, not the leftovers of compiling the policy.
/// Prints `baseline_kib peak_kib seconds` after loading the policy (JSON).
fn child(spec: &str) {
    let (policy, cdr) = spec.split_once(',').expect("POLICY.json,CDR.csv");
    let policy: CompiledPolicy =
        serde_json::from_slice(&std::fs::read(policy).expect("policy")).expect("policy JSON");
    let base = status_kib("VmHWM").unwrap_or(0);
    let start = Instant::now();
    let file = std::fs::File::open(cdr).expect("the CDR");
    let report = Replay::new(&policy, None, Config::default())
        .run(BufReader::with_capacity(1 << 16, file), &mut |_| {})
        .expect("the replay runs");
    let time = start.elapsed().as_secs_f64();
    black_box(report.decided);
    println!("{base} {} {time}", status_kib("VmHWM").unwrap_or(0));
}

/// Runs [`child`] and returns (VmHWM after loading, VmHWM at the end, seconds).
fn replay_in_child(policy: &std::path::Path, cdr: &std::path::Path) -> Option<(u64, u64, f64)> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .env(
            "TOLLGATE_BENCH_CHILD",
            format!("{},{}", policy.display(), cdr.display()),
        )
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

fn main() {
    if let Ok(spec) = std::env::var("TOLLGATE_BENCH_CHILD") {
        return child(&spec);
    }
    let n = env("TOLLGATE_BENCH_DECISIONS", 2_000_000);
    let big_rows = env("TOLLGATE_BENCH_ROWS", 1_000_000);

    println!("tollgate-policy benchmark (one thread, release build)\n");
    let t = Instant::now();
    let text = synth::policy_text(1, 100_000);
    let big = synth::compile(&text);
    println!(
        "generated and compiled a policy of {} destination entries in {:.2} s",
        big.destinations.len(),
        t.elapsed().as_secs_f64()
    );
    let small = synth::policy(2, 100);

    // Replays first, so the figures of peak memory are not those of the call vectors below.
    let dir = std::env::temp_dir().join(format!("tollgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let policy_json = dir.join("policy.json");
    std::fs::write(
        &policy_json,
        serde_json::to_vec(&big).expect("the policy serializes"),
    )
    .expect("write the policy");
    let mut runs = Vec::new();
    let mut fresh = Vec::new();
    for rows in [100_000, big_rows] {
        let path = dir.join(format!("cdr-{rows}.csv"));
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        synth::write_cdr(&mut w, 42, rows).expect("write the CDR");
        drop(w);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        println!(
            "wrote a CDR of {rows} rows ({:.1} MiB)",
            size as f64 / 1048576.0
        );
        runs.push(("100k-prefix policy", replay(&big, None, &path, rows)));
        fresh.push((rows, replay_in_child(&policy_json, &path)));
        if rows == big_rows {
            runs.push((
                "… --against the 100-prefix one",
                replay(&big, Some(&small), &path, rows),
            ));
        }
    }
    // a larger log in a fresh process only: the peak must not move
    let extra = big_rows * 2;
    let path = dir.join(format!("cdr-{extra}.csv"));
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    synth::write_cdr(&mut w, 43, extra).expect("write the CDR");
    drop(w);
    fresh.push((extra, replay_in_child(&policy_json, &path)));
    let _ = std::fs::remove_dir_all(&dir);

    let calls = calls(100_000, 7);
    let baseline = lookups_per_second(&big, &calls, n);
    let small_rate = decisions_per_second(&small, &calls, n, false);
    let big_rate = decisions_per_second(&big, &calls, n, false);
    let big_trace = decisions_per_second(&big, &calls, n / 4, true);

    println!("\ndecisions per second (one thread, {n} decisions each)");
    println!("  {:<48} {:>14}  {:>8}", "", "per second", "vs eval");
    let row = |name: &str, r: f64| {
        println!("  {name:<48} {:>14.0}  {:>7.2}x", r, r / big_rate);
    };
    row("baseline: HashMap longest-prefix lookup only", baseline);
    row("evaluator, 100-prefix policy", small_rate);
    row("evaluator, 100,000-prefix policy", big_rate);
    row("evaluator, 100,000-prefix policy, trace", big_trace);
    println!(
        "  target ≥ 1,000,000/s: {}",
        if big_rate >= 1e6 { "met" } else { "NOT met" }
    );

    println!("\nreplay (time of the replay only; the CDR written beforehand)");
    println!(
        "  {:<32} {:>9} {:>9} {:>12} {:>13} {:>13} {:>11}",
        "policy", "rows", "time", "rows/s", "VmHWM before", "VmHWM after", "growth"
    );
    for (name, r) in &runs {
        println!(
            "  {:<32} {:>9} {:>8.2}s {:>12.0} {:>13} {:>13} {:>11}",
            name,
            r.rows,
            r.time.as_secs_f64(),
            r.rows as f64 / r.time.as_secs_f64(),
            mib(r.hwm_before),
            mib(r.hwm_after),
            match (r.hwm_before, r.hwm_after) {
                (Some(b), Some(a)) => mib(Some(a.saturating_sub(b))),
                _ => "?".into(),
            }
        );
        black_box(r.decided);
    }
    if runs.iter().any(|(_, r)| r.hwm_before.is_none()) {
        println!(
            "  (VmHWM could not be reset through /proc/self/clear_refs: the figures are the process peak so far)"
        );
    }
    println!(
        "\nreplay in a fresh process (100k-prefix policy loaded from JSON; VmHWM = peak resident memory)"
    );
    println!(
        "  {:>9} {:>9} {:>22} {:>16} {:>18}",
        "rows", "time", "VmHWM, policy loaded", "VmHWM at end", "added by replay"
    );
    for (rows, r) in &fresh {
        match r {
            Some((base, peak, time)) => println!(
                "  {:>9} {:>8.2}s {:>22} {:>16} {:>18}",
                rows,
                time,
                mib(Some(*base)),
                mib(Some(*peak)),
                mib(Some(peak.saturating_sub(*base)))
            ),
            None => println!("  {rows:>9} (the child process failed)"),
        }
    }
    let one_m = runs
        .iter()
        .find(|(_, r)| r.rows == big_rows)
        .map(|(_, r)| r.time);
    if big_rows == 1_000_000
        && let Some(t) = one_m
    {
        println!(
            "  target: 1M rows in < 2 s: {}",
            if t.as_secs_f64() < 2.0 {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}
