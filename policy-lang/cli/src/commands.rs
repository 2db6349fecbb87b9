//! The subcommands. Each returns the process exit code, or an error when the
//! command itself could not run (exit 2).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tollgate_policy::ast::FileKind;
use tollgate_policy::check::{self, Compilation};
use tollgate_policy::diag::{Diagnostic, Severity};
use tollgate_policy::load::Workspace;
use tollgate_policy::{fmt as policy_fmt, parse};

pub type Result<T> = std::result::Result<T, String>;

/// Writes to standard output. A reader that went away (`tollgate compile |
/// head`) ends the output quietly; any other write error is reported.
pub(crate) fn out(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(format!("cannot write the output: {e}"))
        }
        _ => Ok(()),
    }
}

/// Writes to standard error; nothing useful can be done if that fails.
pub(crate) fn err(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// `*.tgp` files under each path (a file is taken as given), sorted, each once.
pub fn policy_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let defaults = [PathBuf::from(".")];
    let paths = if paths.is_empty() {
        &defaults[..]
    } else {
        paths
    };
    let mut out = Vec::new();
    for p in paths {
        let meta =
            std::fs::metadata(p).map_err(|e| format!("cannot read `{}`: {e}", p.display()))?;
        if meta.is_dir() {
            walk(p, &mut out).map_err(|e| format!("cannot read folder `{}`: {e}", p.display()))?;
        } else {
            out.push(p.clone());
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|p| seen.insert(tollgate_policy::load::normalize(p)));
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name();
        let hidden = name.to_string_lossy().starts_with('.');
        if e.file_type()?.is_dir() {
            if !hidden && name != "target" {
                walk(&path, out)?;
            }
        } else if path.extension().is_some_and(|x| x == "tgp") {
            out.push(path);
        }
    }
    Ok(())
}

/// Renders diagnostics for people.
pub fn render(diags: &[Diagnostic], ws: &Workspace, color: bool) -> String {
    tollgate_policy::diag::render(diags, &ws.sources, color)
}

fn counts(diags: &[Diagnostic]) -> (usize, usize) {
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    (errors, diags.len() - errors)
}

fn plural(n: usize, word: &str) -> String {
    match (n, word) {
        (1, _) => format!("{n} {word}"),
        (_, "policy") => format!("{n} policies"),
        _ => format!("{n} {word}s"),
    }
}

/// Checks every file; returns the workspace, per-file results and all diagnostics.
fn check_all(paths: &[PathBuf]) -> Result<(Workspace, Vec<Compilation>, Vec<Diagnostic>)> {
    let files = policy_files(paths)?;
    let mut ws = Workspace::on_disk(std::env::current_dir().map_err(|e| e.to_string())?);
    let mut results = Vec::new();
    let mut diags = Vec::new();
    for f in &files {
        let c =
            check::check(&mut ws, f).map_err(|e| format!("cannot read `{}`: {e}", f.display()))?;
        diags.extend(c.diagnostics.iter().cloned());
        results.push(c);
    }
    check::sort_dedup(&mut diags);
    Ok((ws, results, diags))
}

pub fn check(paths: &[PathBuf], json: bool, deny_warnings: bool, color: bool) -> Result<ExitCode> {
    let (ws, results, diags) = check_all(paths)?;
    let (errors, warnings) = counts(&diags);
    let failed = errors > 0 || (deny_warnings && warnings > 0);
    if json {
        let files: Vec<_> = results
            .iter()
            .map(|c| {
                serde_json::json!({
                    "file": ws.sources.get(c.file).name,
                    "kind": match c.kind { Some(FileKind::Tenant) => "tenant", Some(FileKind::Base) => "base", None => "unknown" },
                    "ok": !c.has_errors(),
                })
            })
            .collect();
        let report = serde_json::json!({
            "files": files,
            "errors": errors,
            "warnings": warnings,
            "ok": !failed,
            "diagnostics": diags.iter().map(|d| d.to_json(&ws.sources)).collect::<Vec<_>>(),
        });
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        ))?;
    } else {
        err(&render(&diags, &ws, color));
        err(&format!(
            "checked {}: {}, {}\n",
            plural(results.len(), "file"),
            plural(errors, "error"),
            plural(warnings, "warning")
        ));
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn fmt(paths: &[PathBuf], check_only: bool, color: bool) -> Result<ExitCode> {
    let files = policy_files(paths)?;
    let mut ws = Workspace::on_disk(std::env::current_dir().map_err(|e| e.to_string())?);
    let mut changed = Vec::new();
    let mut broken = 0;
    for f in &files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| format!("cannot read `{}`: {e}", f.display()))?;
        let id = ws.sources.add(f.display().to_string(), text.as_str());
        let (ast, diags) = parse::parse(&text, id);
        let errors: Vec<Diagnostic> = diags.into_iter().filter(Diagnostic::is_error).collect();
        let Some(ast) = ast.filter(|_| errors.is_empty()) else {
            err(&render(&errors, &ws, color));
            err(&format!("{}: not formatted (syntax errors)\n", f.display()));
            broken += 1;
            continue;
        };
        let formatted = policy_fmt::format(&ast);
        if formatted != text {
            changed.push(f.clone());
            if !check_only {
                write_atomically(f, &formatted)?;
            }
        }
    }
    for f in &changed {
        if check_only {
            out(&format!("{}: not formatted\n", f.display()))?;
        } else {
            out(&format!("{}: formatted\n", f.display()))?;
        }
    }
    let failed = broken > 0 || (check_only && !changed.is_empty());
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes through a temporary file and a rename, so a crash never leaves half a file.
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tollgate-tmp"));
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write `{}`: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot replace `{}`: {e}", path.display()))
}

pub fn compile(
    paths: &[PathBuf],
    namespace: &str,
    fleet: &str,
    output: Option<&Path>,
    color: bool,
) -> Result<ExitCode> {
    let (ws, results, diags) = check_all(paths)?;
    let (errors, warnings) = counts(&diags);
    if errors > 0 {
        err(&render(&diags, &ws, color));
        err(&format!(
            "not compiled: {}, {}\n",
            plural(errors, "error"),
            plural(warnings, "warning")
        ));
        return Ok(ExitCode::from(1));
    }
    if warnings > 0 {
        err(&render(&diags, &ws, color));
    }
    let mut policies: Vec<_> = results
        .into_iter()
        .filter_map(|c| {
            let hash = crate::resource::source_hash(&ws, &c.files);
            c.policy.map(|p| (p, hash))
        })
        .collect();
    policies.sort_by(|a, b| a.0.tenant.cmp(&b.0.tenant));
    for w in policies.windows(2) {
        if let [a, b] = w
            && a.0.tenant == b.0.tenant
        {
            return Err(format!(
                "two files declare tenant `{}`; each tenant needs exactly one policy file",
                a.0.tenant
            ));
        }
    }
    let docs: Vec<(String, String)> = policies
        .into_iter()
        .map(|(p, hash)| {
            let tenant = p.tenant.clone();
            crate::resource::toll_policy_yaml(p, namespace, fleet, hash).map(|y| (tenant, y))
        })
        .collect::<Result<_>>()?;
    match output {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
            for (tenant, yaml) in &docs {
                write_atomically(&dir.join(format!("{tenant}.yaml")), yaml)?;
            }
            err(&format!(
                "compiled {} into {}\n",
                plural(docs.len(), "policy"),
                dir.display()
            ));
        }
        None => {
            for (_, yaml) in &docs {
                out(&format!("---\n{yaml}"))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
