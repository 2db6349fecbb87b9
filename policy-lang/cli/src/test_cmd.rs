//! `tollgate test`: runs scenario files (`*.test.yaml`, see docs/testing.md)
//! against the policies they name and reports each case.

use crate::Format;
use crate::commands::{Result, err, out, render};
use crate::explain;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tollgate_ir::CompiledPolicy;
use tollgate_policy::check;
use tollgate_policy::eval::{Decision, Evaluator};
use tollgate_policy::load::{self, Workspace};
use tollgate_policy::scenario::{self, Mismatch, ReadyCase, ScenarioError};

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Scenario files or folders (searched for `*.test.yaml`, skipping hidden
    /// folders); default: the current folder.
    pub paths: Vec<PathBuf>,
    /// Output: `human` (one line per case, details for failures) or `json`
    /// (one object with every case).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

const SUFFIX: &str = ".test.yaml";

/// `*.test.yaml` under each path (a file is taken as given), sorted, each once.
fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let defaults = [PathBuf::from(".")];
    let paths = if paths.is_empty() {
        &defaults[..]
    } else {
        paths
    };
    let mut found = Vec::new();
    for p in paths {
        let meta =
            std::fs::metadata(p).map_err(|e| format!("cannot read `{}`: {e}", p.display()))?;
        if meta.is_dir() {
            walk(p, &mut found)
                .map_err(|e| format!("cannot read folder `{}`: {e}", p.display()))?;
        } else {
            found.push(p.clone());
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    found.retain(|p| seen.insert(load::normalize(p)));
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if e.file_type()?.is_dir() {
            if !name.starts_with('.') && name != "target" {
                walk(&e.path(), found)?;
            }
        } else if name.ends_with(SUFFIX) {
            found.push(e.path());
        }
    }
    Ok(())
}

/// The result of one scenario file.
struct FileRun {
    file: String,
    policy: Option<String>,
    /// Why the cases could not run (scenario or policy problem).
    error: Option<ScenarioError>,
    /// Rendered policy diagnostics, when the policy has errors.
    diagnostics: Vec<serde_json::Value>,
    cases: Vec<CaseRun>,
}

struct CaseRun {
    case: ReadyCase,
    /// `None` when the policy could not be compiled.
    /// (owned: the compiled policies are a map that grows as files are read)
    decision: Option<Decision<'static>>,
    mismatches: Vec<Mismatch>,
}

impl CaseRun {
    fn ok(&self) -> bool {
        self.decision.is_some() && self.mismatches.is_empty()
    }
}

/// A compiled policy (or why not), once per policy file.
type Compiled = std::result::Result<CompiledPolicy, String>;

pub fn run(args: &TestArgs, color: bool) -> Result<ExitCode> {
    let files = scenario_files(&args.paths)?;
    if files.is_empty() {
        return Err(format!(
            "no scenario files (`*{SUFFIX}`) found in {}",
            if args.paths.is_empty() {
                "the current folder".to_string()
            } else {
                args.paths
                    .iter()
                    .map(|p| format!("`{}`", p.display()))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
    }
    let json = args.format == Format::Json;
    let mut ws = Workspace::on_disk(std::env::current_dir().map_err(|e| e.to_string())?);
    let mut compiled: HashMap<PathBuf, (Compiled, Vec<serde_json::Value>)> = HashMap::new();
    let mut runs = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| format!("cannot read `{}`: {e}", f.display()))?;
        let shown = f.display().to_string();
        let (policy_rel, cases) = match scenario::parse(&text) {
            Ok(x) => x,
            Err(e) => {
                runs.push(FileRun {
                    file: shown,
                    policy: None,
                    error: Some(e),
                    diagnostics: Vec::new(),
                    cases: Vec::new(),
                });
                continue;
            }
        };
        let policy_path = load::normalize(
            &f.parent()
                .unwrap_or(Path::new("."))
                .join(policy_rel.as_str()),
        );
        let policy_shown = policy_path.display().to_string();
        if !compiled.contains_key(&policy_path) {
            let result = compile(&mut ws, &policy_path, color, json);
            compiled.insert(policy_path.clone(), result);
        }
        let (policy, diagnostics) = &compiled[&policy_path];
        let mut run = FileRun {
            file: shown,
            policy: Some(policy_shown),
            error: None,
            diagnostics: diagnostics.clone(),
            cases: Vec::new(),
        };
        match policy {
            Ok(p) => {
                let evaluator = Evaluator::new(p);
                for case in cases {
                    let d = evaluator.decide(&case.call, true);
                    let mismatches = scenario::compare(&case.expect, &d);
                    run.cases.push(CaseRun {
                        case,
                        decision: Some(d.into_owned()),
                        mismatches,
                    });
                }
            }
            Err(why) => {
                run.error = Some(ScenarioError {
                    message: why.clone(),
                    position: None,
                    help: None,
                });
                run.cases = cases
                    .into_iter()
                    .map(|case| CaseRun {
                        case,
                        decision: None,
                        mismatches: Vec::new(),
                    })
                    .collect();
            }
        }
        runs.push(run);
    }

    // a file that could not be read counts as one failure; its cases, if known, each fail
    let passed = runs
        .iter()
        .flat_map(|r| &r.cases)
        .filter(|c| c.ok())
        .count();
    let failed = runs
        .iter()
        .map(|r| {
            if r.cases.is_empty() {
                usize::from(r.error.is_some())
            } else {
                r.cases.iter().filter(|c| !c.ok()).count()
            }
        })
        .sum::<usize>();
    if json {
        let report = serde_json::json!({
            "files": runs.iter().map(|r| file_json(r, &compiled)).collect::<Vec<_>>(),
            "passed": passed,
            "failed": failed,
            "ok": failed == 0,
        });
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        ))?;
    } else {
        for r in &runs {
            let policy = r
                .policy
                .as_ref()
                .and_then(|p| compiled.get(Path::new(p)))
                .and_then(|(c, _)| c.as_ref().ok());
            out(&file_text(r, policy, &ws))?;
        }
        out(&format!("{passed} passed, {failed} failed\n"))?;
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Compiles a tenant policy with its imports; on errors, renders them to
/// standard error (human output) and keeps them for JSON.
fn compile(
    ws: &mut Workspace,
    path: &Path,
    color: bool,
    json: bool,
) -> (Compiled, Vec<serde_json::Value>) {
    let c = match check::check(ws, path) {
        Ok(c) => c,
        Err(e) => {
            return (
                Err(format!("cannot read the policy `{}`: {e}", path.display())),
                Vec::new(),
            );
        }
    };
    if c.has_errors() {
        let errors: Vec<_> = c.diagnostics.into_iter().filter(|d| d.is_error()).collect();
        if !json {
            err(&render(&errors, ws, color));
        }
        let diags = errors.iter().map(|d| d.to_json(&ws.sources)).collect();
        return (
            Err(format!(
                "the policy `{}` has {} (shown above); no case was run",
                path.display(),
                match errors.len() {
                    1 => "1 error".to_string(),
                    n => format!("{n} errors"),
                }
            )),
            diags,
        );
    }
    match c.policy {
        Some(p) => (Ok(p), Vec::new()),
        None => (
            Err(format!(
                "`{}` is not a tenant policy: scenarios test tenant files (a base is tested through a tenant that imports it)",
                path.display()
            )),
            Vec::new(),
        ),
    }
}

fn file_text(r: &FileRun, policy: Option<&CompiledPolicy>, ws: &Workspace) -> String {
    let mut s = String::new();
    match &r.policy {
        Some(p) => {
            let _ = writeln!(s, "{} (policy {p})", r.file);
        }
        None => {
            let _ = writeln!(s, "{}", r.file);
        }
    }
    if let Some(e) = &r.error {
        let _ = writeln!(s, "  error: {}", e.display(&r.file).replace('\n', "\n  "));
    }
    for c in &r.cases {
        if c.ok() {
            let _ = writeln!(s, "  ok      {}", c.case.name);
            continue;
        }
        let _ = writeln!(s, "  FAILED  {}", c.case.name);
        let (Some(d), Some(policy)) = (&c.decision, policy) else {
            continue;
        };
        if let Some(line) = c.case.line {
            let _ = writeln!(s, "          at {}:{line}", r.file);
        }
        for m in &c.mismatches {
            let _ = writeln!(
                s,
                "          {:<9} expected {}, got {}",
                format!("{}:", m.field),
                m.expected,
                m.actual
            );
        }
        let rule_block = |s: &mut String, what: &str, rule: &str| {
            let _ = writeln!(s, "          {what} rule {rule}:");
            for l in explain::rule_snippet(ws, policy, rule) {
                let _ = writeln!(s, "            {l}");
            }
        };
        rule_block(&mut s, "expected", &c.case.expect.rule);
        if d.rule != c.case.expect.rule {
            rule_block(&mut s, "actual", &d.rule);
        } else {
            let _ = writeln!(s, "          actual rule: the same");
        }
        let _ = writeln!(s, "          trace:");
        s.push_str(&tollgate_policy::explain::trace_text(
            policy,
            d,
            "          ",
        ));
    }
    s
}

fn file_json(
    r: &FileRun,
    compiled: &HashMap<PathBuf, (Compiled, Vec<serde_json::Value>)>,
) -> serde_json::Value {
    let policy = r
        .policy
        .as_ref()
        .and_then(|p| compiled.get(Path::new(p)))
        .and_then(|(c, _)| c.as_ref().ok());
    serde_json::json!({
        "file": r.file,
        "policy": r.policy,
        "error": r.error.as_ref().map(|e| serde_json::json!({
            "message": e.message,
            "line": e.position.map(|p| p.0),
            "column": e.position.map(|p| p.1),
            "help": e.help,
        })),
        "diagnostics": r.diagnostics,
        "cases": r.cases.iter().map(|c| serde_json::json!({
            "name": c.case.name,
            "line": c.case.line,
            "ok": c.ok(),
            "call": tollgate_policy::explain::call_json(&c.case.call),
            "expected": c.case.expect,
            "expectedRule": policy.map(|p| tollgate_policy::explain::rule_json(p, &c.case.expect.rule)),
            "actual": match (&c.decision, policy) {
                (Some(d), Some(p)) => tollgate_policy::explain::decision_json(d, p),
                _ => serde_json::Value::Null,
            },
            "mismatches": c.mismatches,
        })).collect::<Vec<_>>(),
    })
}
