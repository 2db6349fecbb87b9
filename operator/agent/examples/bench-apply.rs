//! Times the agent's work on an apply that does not involve Kamailio:
//! reading the PUT body, the pure checks ([`agent::prepare`]: render,
//! place, compose the touched files, own checks, expected read-backs) and
//! the tenant file it persists, with the OTHER tenants already applied.
//!
//! ```console
//! bench-apply BODY.json [OTHER.json ...]
//! ```
//!
//! BODY is a PUT body (`{"revision", "policy"}`, as scripts/bench-sbc.sh
//! writes for the 100,000-prefix revision); the OTHER bodies are applied
//! first, as the other tenants already on the SBC. Prints the median of 5
//! runs per stage, in ms, and the size of the files the apply writes. Wall-clock figures: rerun
//! on a quiet machine to compare.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use tollgate_agent::{self as agent, Current};
use tollgate_ir::CompiledPolicy;
use tollgate_kamailio::kamailio::FIRST_ID;

#[derive(serde::Deserialize)]
struct Body {
    revision: String,
    policy: CompiledPolicy,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((main, others)) = args.split_first() else {
        eprintln!("usage: bench-apply BODY.json [OTHER.json ...]");
        return ExitCode::from(2);
    };
    let read =
        |f: &str| -> Result<Vec<u8>, String> { std::fs::read(f).map_err(|e| format!("{f}: {e}")) };
    let run = || -> Result<(), String> {
        let now = jiff::Timestamp::now();
        let blocks = BTreeMap::new();
        let mut rows = BTreeMap::new();
        let mut placed = BTreeMap::new();
        let mut next = FIRST_ID;
        for f in others {
            let b: Body = serde_json::from_slice(&read(f)?).map_err(|e| format!("{f}: {e}"))?;
            let t = b.policy.tenant.clone();
            let cur = Current {
                rows: &rows,
                placed: &placed,
                blocks: &blocks,
            };
            let changes = BTreeMap::from([(t.clone(), Some((b.revision, b.policy)))]);
            let p = agent::prepare(cur, &changes, next, now).map_err(|e| format!("{f}: {e:?}"))?;
            next += 1;
            placed.extend(p.placed.clone());
            for (t, r) in p.cand {
                rows.extend(r.map(|r| (t, r)));
            }
        }
        let raw = read(main)?;
        let (mut parse, mut prep, mut state) = (Vec::new(), Vec::new(), Vec::new());
        let mut size = (0, 0);
        for _ in 0..5 {
            let t = Instant::now();
            let b: Body = serde_json::from_slice(&raw).map_err(|e| format!("{main}: {e}"))?;
            parse.push(ms(t));
            let tenant = b.policy.tenant.clone();
            let change = (b.revision, b.policy);
            let changes = BTreeMap::from([(tenant.clone(), Some(change.clone()))]);
            let cur = Current {
                rows: &rows,
                placed: &placed,
                blocks: &blocks,
            };
            let t = Instant::now();
            let p =
                agent::prepare(cur, &changes, next, now).map_err(|e| format!("{main}: {e:?}"))?;
            prep.push(ms(t));
            let t = Instant::now();
            // what the agent persists for the tenant (its own file)
            let r = p.cand[&tenant].as_ref().ok_or("no rows")?;
            let st = agent::TenantState {
                revision: change.0.clone(),
                policy: change.1.clone(),
                rows_hash: r.hash(),
                tables: r.tables.clone(),
                networks: r.networks.iter().map(ToString::to_string).collect(),
                applied_at: now.to_string(),
                id: p.placed[&tenant].0,
            };
            let text = serde_json::to_vec(&st).map_err(|e| e.to_string())?;
            state.push(ms(t));
            size = (
                p.live.files.values().map(String::len).sum::<usize>(),
                text.len(),
            );
        }
        println!(
            "{} other tenants; files written {} bytes, tenant file {} bytes; median of 5 (ms): parse body {:.1}, prepare {:.1}, tenant file {:.1}",
            others.len(),
            size.0,
            size.1,
            median(parse),
            median(prep),
            median(state)
        );
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
