//! A large compiled policy for timing the renderer:
//!
//! ```console
//! big-policy POLICY_ROOT/tenants/acme.tgp N > big.yaml
//! ```
//!
//! Compiles the tenant file and adds N distinct random destination prefixes
//! (3 to 12 digits; every 7th one only during the tenant's first window,
//! every 3rd a deny) and N/10 class prefixes, then prints it as YAML (a bare
//! compiled policy, as `tollgate-render` reads it).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

use tollgate_ir::{ClassPrefix, DestinationRule, Verdict, WindowCondition, WindowWhen};
use tollgate_policy::check;
use tollgate_policy::load::Workspace;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(file), Some(n)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: big-policy TENANT.tgp N");
        return ExitCode::from(2);
    };
    let Ok(cwd) = std::env::current_dir() else {
        return ExitCode::from(2);
    };
    let mut ws = Workspace::on_disk(cwd);
    let Some(mut p) = check::check(&mut ws, Path::new(file))
        .ok()
        .and_then(|c| c.policy)
    else {
        eprintln!("error: {file} does not compile to a tenant policy");
        return ExitCode::from(1);
    };
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut seen: BTreeSet<String> = p.destinations.iter().map(|d| d.prefix.clone()).collect();
    let window = p.windows.first().map(|w| w.name.clone());
    let mut added = 0;
    while added < n {
        let len = 3 + (next() % 10) as usize;
        let mut s = String::new();
        s.push(char::from(b'1' + (next() % 9) as u8));
        while s.len() < len {
            s.push(char::from(b'0' + (next() % 10) as u8));
        }
        if !seen.insert(s.clone()) {
            continue;
        }
        let action = if added % 3 == 0 {
            Verdict::Deny
        } else {
            Verdict::Allow
        };
        if added % 7 == 0
            && let Some(w) = &window
        {
            p.destinations.push(DestinationRule {
                prefix: s.clone(),
                action,
                rule: format!("dst:big:{s}@{w}"),
                window: Some(WindowCondition {
                    name: w.clone(),
                    when: WindowWhen::During,
                }),
            });
        }
        p.destinations.push(DestinationRule {
            prefix: s.clone(),
            action,
            rule: format!("dst:big:{s}"),
            window: None,
        });
        if added % 10 == 0 {
            p.classes.push(ClassPrefix {
                prefix: s,
                class: format!("big-{}", added % 5),
            });
        }
        added += 1;
    }
    p.destinations.sort_by(|a, b| {
        a.prefix
            .cmp(&b.prefix)
            .then(b.window.is_some().cmp(&a.window.is_some()))
    });
    p.classes.sort();
    match tollgate_ir::yaml::to_yaml(&p) {
        Ok(y) => {
            print!("{y}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
