//! Times the agent's work on an apply that does not involve Kamailio:
//! reading the PUT body, the pure checks ([`agent::prepare`]: render,
//! compose, own checks, expected read-back) and the state file it persists.
//!
//! ```console
//! bench-apply BODY.json [OTHER.json ...]
//! ```
//!
//! BODY is a PUT body (`{"revision", "policy"}`, as scripts/bench-sbc.sh
//! writes for the 100,000-prefix revision); the OTHER bodies are applied
//! first, as the other tenants already on the SBC. Prints the median of 5
//! runs per stage, in ms, and the bundle's size. Wall-clock figures: rerun
//! on a quiet machine to compare.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use tollgate_agent::rows::{Expected, check_bundle};
use tollgate_agent::{self as agent, Prepared};
use tollgate_ir::CompiledPolicy;
use tollgate_kamailio::Backend;
use tollgate_kamailio::kamailio::Kamailio;

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
        for f in others {
            let b: Body = serde_json::from_slice(&read(f)?).map_err(|e| format!("{f}: {e}"))?;
            let t = b.policy.tenant.clone();
            let p = agent::prepare(&rows, &blocks, &t, Some(&(b.revision, b.policy)), now)
                .map_err(|e| format!("{f}: {e:?}"))?;
            rows = p.cand;
        }
        let raw = read(main)?;
        let (mut parse, mut prep, mut state) = (Vec::new(), Vec::new(), Vec::new());
        let mut stages: [Vec<f64>; 5] = Default::default();
        let mut size = (0, 0);
        for _ in 0..5 {
            let t = Instant::now();
            let b: Body = serde_json::from_slice(&raw).map_err(|e| format!("{main}: {e}"))?;
            parse.push(ms(t));
            let tenant = b.policy.tenant.clone();
            let change = (b.revision, b.policy);
            let t = Instant::now();
            let Prepared { cand, bundle, .. } =
                agent::prepare(&rows, &blocks, &tenant, Some(&change), now)
                    .map_err(|e| format!("{main}: {e:?}"))?;
            prep.push(ms(t));
            // its stages, one by one
            let t = Instant::now();
            let r = Kamailio
                .render_tenant(&change.1, &change.0, now)
                .map_err(|e| e.to_string())?;
            stages[0].push(ms(t));
            let t = Instant::now();
            let b = Kamailio.compose(&cand).map_err(|e| e.to_string())?;
            stages[1].push(ms(t));
            let t = Instant::now();
            let names = cand.keys().cloned().collect();
            let errs = check_bundle(&b, &names);
            stages[2].push(ms(t));
            let t = Instant::now();
            let _ = Expected::of(&cand);
            stages[3].push(ms(t));
            let t = Instant::now();
            let _ = cand.clone();
            stages[4].push(ms(t));
            if !errs.is_empty() || r.tables.is_empty() {
                return Err(format!("{main}: checks: {errs:?}"));
            }
            let t = Instant::now();
            // what the agent persists for the tenant (pretty JSON, as persist)
            let r = &cand[&tenant];
            let st = agent::TenantState {
                revision: change.0.clone(),
                policy: change.1.clone(),
                rows_hash: r.hash(),
                tables: r.tables.clone(),
                networks: r.networks.iter().map(ToString::to_string).collect(),
                applied_at: now.to_string(),
            };
            let text = serde_json::to_vec_pretty(&st).map_err(|e| e.to_string())?;
            state.push(ms(t));
            size = (
                bundle.files.values().map(String::len).sum::<usize>(),
                text.len(),
            );
        }
        println!(
            "bundle {} bytes, state file {} bytes; median of 5 (ms): parse body {:.1}, prepare {:.1}, state file {:.1}",
            size.0,
            size.1,
            median(parse),
            median(prep),
            median(state)
        );
        let [a, b, c, d, e] = stages;
        println!(
            "  prepare's stages (ms): render {:.1}, compose {:.1}, own checks {:.1}, expected read-back {:.1}, a copy of the rows {:.1}",
            median(a),
            median(b),
            median(c),
            median(d),
            median(e)
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
