//! The language at provider scale: how long `tollgate check` and `tollgate
//! compile` take for one tenant with a carrier's deny list, and for a
//! thousand small tenants sharing a base.
//!
//!     cargo bench -p tollgate-policy --bench lang        (or scripts/bench.sh lang)
//!
//! Each figure is what the command does, in memory (no disk): `check` checks
//! every file with its imports and renders the diagnostics as the CLI does
//! (no colour); `compile` does the same and writes each tenant's compiled
//! policy as YAML (the CLI wraps it in a `TollPolicy`; that envelope is a few
//! lines). Next to them, as the baseline of the same run, the time serde_yaml
//! takes to read that YAML back: a ratio of 1 would mean checking and
//! compiling the source cost no more than parsing the output.
//!
//! Environment: `TOLLGATE_BENCH_LANG_LINES` (the deny-list sizes, default
//! `10000,100000`; add `1000000` for the carrier-sized case),
//! `TOLLGATE_BENCH_TENANTS` (small tenants, default 1,000).

#[path = "synth/mod.rs"]
mod synth;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tollgate_ir::CompiledPolicy;
use tollgate_ir::yaml::{from_yaml, to_yaml};
use tollgate_policy::check;
use tollgate_policy::diag::{self, Severity};
use tollgate_policy::load::{MemoryFs, Workspace};

/// What one run of the command produced.
struct Run {
    errors: usize,
    warnings: usize,
    /// Lines of rendered diagnostics.
    rendered_lines: usize,
    /// The compiled policies as YAML (empty for `check`).
    yaml: Vec<String>,
}

/// `tollgate check FILES` (and with `compile`, `tollgate compile FILES`) on
/// files in memory.
fn run(fs: &MemoryFs, files: &[PathBuf], compile: bool) -> Run {
    let mut ws = Workspace::new(fs.clone(), ".");
    let mut results = Vec::new();
    let mut diags = Vec::new();
    for f in files {
        let c = check::check(&mut ws, f).expect("in memory");
        diags.extend(c.diagnostics.iter().cloned());
        results.push(c);
    }
    check::sort_dedup(&mut diags);
    let rendered = diag::render(&diags, &ws.sources, false);
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    assert_eq!(errors, 0, "the generated policies have errors");
    let yaml = if compile {
        results
            .iter()
            .filter_map(|c| c.policy.as_ref())
            .map(|p| to_yaml(p).expect("the policy serializes"))
            .collect()
    } else {
        Vec::new()
    };
    Run {
        errors,
        warnings: diags.len() - errors,
        rendered_lines: rendered.lines().count(),
        yaml,
    }
}

/// The median of `reps` timings of `f`, and its last result.
fn timed<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        last = Some(black_box(f()));
        times.push(start.elapsed());
    }
    times.sort();
    (times[times.len() / 2], last.expect("ran at least once"))
}

struct Figures {
    name: String,
    rules: usize,
    warnings: usize,
    rendered_lines: usize,
    check: Duration,
    compile: Duration,
    parse: Duration,
    yaml_bytes: usize,
}

fn measure(name: String, fs: &MemoryFs, files: &[PathBuf], rules: usize, reps: usize) -> Figures {
    let (check, checked) = timed(reps, || run(fs, files, false));
    let (compile, compiled) = timed(reps, || run(fs, files, true));
    assert_eq!(checked.errors, compiled.errors);
    let (parse, parsed) = timed(reps, || {
        compiled
            .yaml
            .iter()
            .map(|y| from_yaml::<CompiledPolicy>(y).expect("the YAML reads back"))
            .collect::<Vec<_>>()
    });
    assert_eq!(parsed.len(), compiled.yaml.len());
    Figures {
        name,
        rules,
        warnings: checked.warnings,
        rendered_lines: checked.rendered_lines,
        check,
        compile,
        parse,
        yaml_bytes: compiled.yaml.iter().map(String::len).sum(),
    }
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .filter_map(|n| n.trim().replace('_', "").parse().ok())
            .collect(),
        Err(_) => default.to_vec(),
    }
}

fn main() {
    let sizes = env_list("TOLLGATE_BENCH_LANG_LINES", &[10_000, 100_000]);
    let tenants = env_list("TOLLGATE_BENCH_TENANTS", &[1_000])
        .first()
        .copied()
        .unwrap_or(1_000);

    println!("tollgate-policy language benchmark (one thread, release build)\n");
    let mut rows = Vec::new();
    for &lines in &sizes {
        let text = synth::deny_list_text(1, lines);
        let fs = MemoryFs::new().with("carrier.tgp", text);
        // medians of 3 where a run is short
        let reps = if lines <= 100_000 { 3 } else { 1 };
        rows.push(measure(
            format!("one tenant, {lines} deny prefix lines"),
            &fs,
            &[PathBuf::from("carrier.tgp")],
            lines,
            reps,
        ));
    }

    let mut fs = MemoryFs::new().with("base/standard.tgp", synth::SMALL_TENANT_BASE);
    let mut files = vec![PathBuf::from("base/standard.tgp")];
    let mut rules = 0;
    for i in 0..tenants {
        let text = synth::small_tenant_text(1, i);
        rules += text
            .lines()
            .filter(|l| l.starts_with("  ") && !l.trim_start().starts_with('#'))
            .count();
        let path = Path::new("tenants").join(format!("t{i:04}.tgp"));
        fs = fs.with(&path, text);
        files.push(path);
    }
    rows.push(measure(
        format!("{tenants} small tenants and their base"),
        &fs,
        &files,
        rules,
        3,
    ));

    println!(
        "  {:<40} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9}",
        "input", "lines", "warnings", "check", "compile", "YAML read", "check/", "compile/"
    );
    println!(
        "  {:<40} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9}",
        "", "", "", "", "", "(baseline)", "baseline", "baseline"
    );
    for r in &rows {
        let parse = r.parse.as_secs_f64();
        println!(
            "  {:<40} {:>9} {:>9} {:>8.3}s {:>8.3}s {:>9.3}s {:>8.2}x {:>8.2}x",
            r.name,
            r.rules,
            r.warnings,
            r.check.as_secs_f64(),
            r.compile.as_secs_f64(),
            parse,
            r.check.as_secs_f64() / parse,
            r.compile.as_secs_f64() / parse,
        );
    }
    println!();
    for r in &rows {
        println!(
            "  {}: {:.0} rules/s checked, {:.1} MiB of YAML, {} lines of rendered warnings",
            r.name,
            r.rules as f64 / r.check.as_secs_f64(),
            r.yaml_bytes as f64 / 1_048_576.0,
            r.rendered_lines
        );
    }
    // near-linear: the time per line of the largest deny list against the smallest
    let lists: Vec<&Figures> = rows.iter().filter(|r| r.name.contains("deny")).collect();
    if let (Some(small), Some(large)) = (lists.first(), lists.last())
        && large.rules > small.rules
    {
        let per = |r: &Figures| r.check.as_secs_f64() / r.rules as f64;
        println!(
            "\n  check time per line, {} lines against {}: {:.2}x (1.00x is linear)",
            large.rules,
            small.rules,
            per(large) / per(small)
        );
    }
}
