//! `tollgate diff OLD NEW`: what a policy change does to calls.

use crate::commands::{Result, err, out, render};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tollgate_ir::CompiledPolicy;
use tollgate_policy::ast::FileKind;
use tollgate_policy::check;
use tollgate_policy::diag::Diagnostic;
use tollgate_policy::diff::{self, Area, Change};
use tollgate_policy::load::Workspace;

/// The policies of one side, by tenant.
struct Side {
    policies: BTreeMap<String, CompiledPolicy>,
    /// Given as one file holding one policy (then it is compared with the
    /// other side's single policy whatever the tenant names).
    single: bool,
}

/// Why a side could not be read.
enum Failure {
    /// Policies with errors: the diagnostics, rendered.
    Diagnostics(String),
    Other(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Other(s)
    }
}

fn is_yaml(p: &Path) -> bool {
    p.extension().is_some_and(|x| x == "yaml" || x == "yml")
}

/// A file a folder side takes: a policy file or compiled YAML, but not a
/// scenario file (`*.test.yaml`, read by `tollgate test`), so a policy
/// repository's root can be compared as it is.
fn is_policy_file(p: &Path) -> bool {
    let scenario = p
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".test.yaml") || n.ends_with(".test.yml"));
    (is_yaml(p) && !scenario) || p.extension().is_some_and(|x| x == "tgp")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if e.file_type()?.is_dir() {
            if name != "target" {
                walk(&path, out)?;
            }
        } else if is_policy_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// The YAML documents of a file: TollPolicy resources or bare compiled policies.
fn read_yaml(path: &Path) -> Result<Vec<CompiledPolicy>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let docs = tollgate_ir::yaml::read_policies(&text).map_err(|e| match e {
        tollgate_ir::yaml::PolicyDocumentError::NotAPolicy { as_resource, .. } => format!(
            "`{}` is not a TollPolicy resource nor a compiled policy: {as_resource}",
            path.display(),
        ),
        e => format!("`{}`: {e}", path.display()),
    })?;
    Ok(docs.into_iter().map(|d| d.policy).collect())
}

fn load_side(path: &Path, color: bool) -> std::result::Result<Side, Failure> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let dir = meta.is_dir();
    let files = if dir {
        let mut files = Vec::new();
        walk(path, &mut files)
            .map_err(|e| format!("cannot read folder `{}`: {e}", path.display()))?;
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut ws = Workspace::on_disk(std::env::current_dir().map_err(|e| e.to_string())?);
    let mut diags: Vec<Diagnostic> = Vec::new();
    let mut found: Vec<CompiledPolicy> = Vec::new();
    for f in &files {
        if is_yaml(f) {
            found.extend(read_yaml(f)?);
            continue;
        }
        let c =
            check::check(&mut ws, f).map_err(|e| format!("cannot read `{}`: {e}", f.display()))?;
        diags.extend(c.diagnostics.iter().filter(|d| d.is_error()).cloned());
        match (c.kind, c.policy) {
            (_, Some(p)) => found.push(p),
            (Some(FileKind::Base), None) if dir => {}
            (Some(FileKind::Base), None) => {
                return Err(Failure::Other(format!(
                    "`{}` is a base; diff compares tenant policies",
                    f.display()
                )));
            }
            _ => {}
        }
    }
    if !diags.is_empty() {
        check::sort_dedup(&mut diags);
        return Err(Failure::Diagnostics(render(&diags, &ws, color)));
    }
    let single = !dir && found.len() == 1;
    let mut policies = BTreeMap::new();
    for p in found {
        let tenant = p.tenant.clone();
        if policies.insert(tenant.clone(), p).is_some() {
            return Err(Failure::Other(format!(
                "`{}` holds two policies for tenant `{tenant}`",
                path.display()
            )));
        }
    }
    Ok(Side { policies, single })
}

/// One tenant's result.
struct TenantDiff {
    tenant: String,
    status: &'static str,
    changes: Vec<Change>,
}

fn tenant_change(description: String, loosens: bool, tightens: bool) -> Change {
    Change {
        area: Area::Tenant,
        description,
        loosens,
        tightens,
        rules: (Vec::new(), Vec::new()),
    }
}

fn compare(old: Side, new: Side) -> Vec<TenantDiff> {
    if old.single && new.single {
        let pairs = old.policies.into_values().zip(new.policies.into_values());
        return pairs
            .map(|(o, n)| TenantDiff {
                tenant: n.tenant.clone(),
                status: "compared",
                changes: diff::diff(&o, &n),
            })
            .collect();
    }
    let mut names: Vec<&String> = old.policies.keys().chain(new.policies.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|t| match (old.policies.get(t), new.policies.get(t)) {
            (Some(o), Some(n)) => TenantDiff {
                tenant: t.clone(),
                status: "compared",
                changes: diff::diff(o, n),
            },
            (None, _) => TenantDiff {
                tenant: t.clone(),
                status: "added",
                changes: vec![tenant_change(
                    format!(
                        "tenant `{t}` added: calls from its sources, rejected before, are now accepted under its policy"
                    ),
                    true,
                    false,
                )],
            },
            (Some(_), None) => TenantDiff {
                tenant: t.clone(),
                status: "removed",
                changes: vec![tenant_change(
                    format!(
                        "tenant `{t}` removed: no source maps to it any more, so its calls are rejected"
                    ),
                    false,
                    true,
                )],
            },
        })
        .collect()
}

pub fn diff(old: &Path, new: &Path, json: bool, color: bool) -> Result<ExitCode> {
    let mut sides = Vec::new();
    for (what, path) in [("OLD", old), ("NEW", new)] {
        match load_side(path, color) {
            Ok(s) => sides.push(s),
            Err(Failure::Diagnostics(text)) => {
                err(&text);
                err(&format!(
                    "error: {what} (`{}`) has errors; nothing compared\n",
                    path.display()
                ));
                return Ok(ExitCode::from(2));
            }
            Err(Failure::Other(e)) => return Err(e),
        }
    }
    let new_side = sides.pop().ok_or("no NEW side")?;
    let old_side = sides.pop().ok_or("no OLD side")?;
    let result = compare(old_side, new_side);
    let all: Vec<&Change> = result.iter().flat_map(|t| &t.changes).collect();
    let loosens = all.iter().any(|c| c.loosens);
    if json {
        let tenants: Vec<_> = result
            .iter()
            .map(|t| {
                serde_json::json!({
                    "tenant": t.tenant,
                    "status": t.status,
                    "loosens": diff::loosens(&t.changes),
                    "changes": t.changes.iter().map(|c| serde_json::json!({
                        "area": c.area.name(),
                        "effect": c.effect(),
                        "loosens": c.loosens,
                        "tightens": c.tightens,
                        "description": c.description,
                        "rules": { "old": c.rules.0, "new": c.rules.1 },
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let report = serde_json::json!({ "loosens": loosens, "tenants": tenants });
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        ))?;
    } else {
        let mut text = String::new();
        for t in &result {
            if t.changes.is_empty() {
                text.push_str(&format!("tenant {}: no changes\n", t.tenant));
                continue;
            }
            text.push_str(&format!("tenant {}:\n", t.tenant));
            text.push_str(&diff::text(&t.changes));
        }
        text.push_str(&diff::summary(all.iter().copied()));
        text.push('\n');
        out(&text)?;
    }
    Ok(if loosens {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
