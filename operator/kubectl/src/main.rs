//! `kubectl tollgate`: a kubectl plugin for Tollgate's TollPolicies.
//!
//! kubectl runs any `kubectl-<name>` binary on the PATH as `kubectl <name>`;
//! this one reads and steers TollPolicies with the user's kubeconfig, as
//! kubectl does (docs/operator.md "kubectl tollgate").

mod cluster;
mod show;

use std::net::IpAddr;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use jiff::Timestamp;

use crate::cluster::Cluster;

/// Tollgate's TollPolicies from kubectl: the rollout per SBC, the
/// revisions and what changed between two of them, steering a rollout,
/// releasing an emergency response, and what the revision in force decides
/// for a call.
///
/// Exit codes: 0 success; 1 the answer is a problem (`status`: the policy is
/// Degraded, RolledBack or Failed; `history --diff`: the newer revision
/// loosens protection); 2 the command could not run (bad arguments, no
/// such policy, the API server unreachable or refusing).
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-tollgate",
    bin_name = "kubectl tollgate",
    version,
    about,
    long_about,
    max_term_width = 100
)]
struct Cli {
    /// The namespace (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    /// The kubeconfig context (default: the current one).
    #[arg(long, global = true)]
    context: Option<String>,
    /// Output: `human` or `json`.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Human)]
    output: Output,
    /// Longest wait for one API request, in seconds (`10` or `10s`).
    #[arg(long, global = true, default_value = "30", value_parser = seconds)]
    request_timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The policy's rollout: phase, revisions, conditions, and per SBC the
    /// revision it holds, its hash, whether it is consistent, where the
    /// rollout is with it and its last failure; the responses in force.
    Status {
        /// The TollPolicy.
        policy: String,
    },
    /// The policy's revisions (PolicyRevisions), or with `--diff A B` what
    /// changed for calls from revision A to B (as `tollgate diff`).
    History {
        /// The TollPolicy.
        policy: String,
        /// Two revision numbers: the older and the newer.
        #[arg(long, num_args = 2, value_names = ["A", "B"])]
        diff: Option<Vec<i64>>,
    },
    /// Skip the rest of the bake: every remaining target gets the revision
    /// at once (`spec.rollout.promoteRevision`).
    Promote {
        /// The TollPolicy.
        policy: String,
        /// The revision to promote (default: the one rolling out).
        #[arg(long)]
        revision: Option<i64>,
    },
    /// Roll every target back to the last good revision
    /// (`spec.rollout.abortRevision`).
    Abort {
        /// The TollPolicy.
        policy: String,
        /// The revision to abort (default: the one rolling out).
        #[arg(long)]
        revision: Option<i64>,
    },
    /// No new target gets the revision (`spec.rollout.paused`); rollbacks
    /// still happen.
    Pause {
        /// The TollPolicy.
        policy: String,
    },
    /// Undo `pause`.
    Resume {
        /// The TollPolicy.
        policy: String,
    },
    /// Release emergency responses in force (the `tollgate.dev/release`
    /// annotation): their blocks are lifted on every SBC and their alerts
    /// acknowledged.
    Release {
        /// The TollPolicy.
        policy: String,
        /// Response rules (`status.activeResponses[].rule`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        rules: Vec<String>,
        /// Every response in force.
        #[arg(long)]
        all: bool,
    },
    /// What the revision in force decides for one call: the verdict, the
    /// rule and where it was written, every rule considered. The revision
    /// every SBC applied (`lastGoodRevision`) unless `--revision` or
    /// `--target` says otherwise; the responses in force block as on the SBC.
    Explain {
        /// The TollPolicy.
        policy: String,
        /// Destination as dialed.
        #[arg(long, allow_hyphen_values = true)]
        to: String,
        /// Source IP address of the call.
        #[arg(long)]
        from: IpAddr,
        /// Source country by GeoIP (ISO 3166-1 alpha-2).
        #[arg(long)]
        country: Option<String>,
        /// When, RFC 3339 with a UTC offset; default: now.
        #[arg(long, value_parser = tollgate_policy::scenario::parse_time)]
        at: Option<Timestamp>,
        /// Signalling transport.
        #[arg(long, default_value = "udp", value_parser = ["udp", "tcp", "tls"])]
        transport: String,
        /// The offer uses SRTP.
        #[arg(long)]
        srtp: bool,
        /// The TLS client presented a verified certificate.
        #[arg(long)]
        client_cert: bool,
        /// The tenant's calls up before this one.
        #[arg(long, default_value_t = 0)]
        concurrent: u64,
        /// The tenant's new calls in the minute before this one.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// This revision instead of the last good one.
        #[arg(long, conflicts_with = "target")]
        revision: Option<i64>,
        /// The revision this SBC holds (`status.targets`).
        #[arg(long)]
        target: Option<String>,
    },
    /// A shell completion script (bash, zsh, fish, powershell, elvish).
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Why a command could not run (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubeconfig: {0}")]
    Config(String),
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("TollPolicy {name} not found in namespace {namespace} (another namespace: -n NAME)")]
    NotFound { name: String, namespace: String },
    #[error("{0}")]
    Usage(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completion { shell } = cli.command {
        let mut cmd = Cli::command();
        clap_complete::generate(shell, &mut cmd, "kubectl-tollgate", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let timeout = std::time::Duration::from_secs(cli.request_timeout);
    let c = Cluster::connect(cli.context.as_deref(), cli.namespace.as_deref(), timeout).await?;
    let json = cli.output == Output::Json;
    match cli.command {
        Command::Status { policy } => {
            let p = c.policy(&policy).await?;
            let revs = c.revisions(&policy).await?;
            let healthy = show::healthy(&p);
            print(json, show::status_json(&p, &revs), || {
                show::status_text(&p, &revs)
            });
            Ok(code(healthy))
        }
        Command::History { policy, diff } => {
            let p = c.policy(&policy).await?;
            let revs = c.revisions(&policy).await?;
            match diff.as_deref() {
                Some([a, b]) => {
                    let old = c.content(&revs, *a).await?;
                    let new = c.content(&revs, *b).await?;
                    let changes = tollgate_policy::diff::diff(&old, &new);
                    let loosens = tollgate_policy::diff::loosens(&changes);
                    print(json, show::diff_json(&p, *a, *b, &changes), || {
                        show::diff_text(&p, *a, *b, &changes)
                    });
                    Ok(code(!loosens))
                }
                _ => {
                    print(json, show::history_json(&p, &revs), || {
                        show::history_text(&p, &revs)
                    });
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Promote { policy, revision } => {
            let effect = "the rest of the bake is skipped: every remaining target gets it at once";
            steer(
                &c,
                json,
                &policy,
                "promote",
                Some(("promoteRevision", revision)),
                effect,
            )
            .await
        }
        Command::Abort { policy, revision } => {
            let effect = "every target goes back to the last good revision";
            steer(
                &c,
                json,
                &policy,
                "abort",
                Some(("abortRevision", revision)),
                effect,
            )
            .await
        }
        Command::Pause { policy } => {
            let effect = "no new target gets the revision until `resume` (rollbacks still happen)";
            steer(&c, json, &policy, "pause", None, effect).await
        }
        Command::Resume { policy } => {
            steer(&c, json, &policy, "resume", None, "the rollout goes on").await
        }
        Command::Release { policy, rules, all } => {
            let p = c.policy(&policy).await?;
            let active: Vec<String> = p
                .status
                .as_ref()
                .map(|s| {
                    s.active_responses
                        .iter()
                        .flat_map(|r| {
                            std::iter::once(r.rule.clone()).chain(r.folded_rules.iter().cloned())
                        })
                        .collect()
                })
                .unwrap_or_default();
            if active.is_empty() {
                return Err(Error::Usage(format!(
                    "TollPolicy {policy} has no response in force"
                )));
            }
            if let Some(r) = rules.iter().find(|r| !active.contains(r)) {
                return Err(Error::Usage(format!(
                    "`{r}` is not a response in force on TollPolicy {policy}; in force: {}",
                    active.join(", ")
                )));
            }
            let value = if all {
                "all".to_owned()
            } else {
                rules.join(",")
            };
            c.annotate_release(&policy, &value).await?;
            say(
                json,
                "release",
                &policy,
                None,
                &format!(
                    "asked the operator to release {value}; it lifts the blocks on every SBC and removes the annotation"
                ),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain {
            policy,
            to,
            from,
            country,
            at,
            transport,
            srtp,
            client_cert,
            concurrent,
            rate,
            revision,
            target,
        } => {
            let p = c.policy(&policy).await?;
            let revs = c.revisions(&policy).await?;
            let n = explained_revision(&p, revision, target.as_deref())?;
            let compiled = c.content(&revs, n).await?;
            let mut call =
                tollgate_policy::eval::Call::new(to, from, at.unwrap_or_else(Timestamp::now));
            call.source_country = country;
            call.transport = match transport.as_str() {
                "tls" => tollgate_policy::eval::Transport::Tls,
                "tcp" => tollgate_policy::eval::Transport::Tcp,
                _ => tollgate_policy::eval::Transport::Udp,
            };
            call.srtp = srtp;
            call.client_certificate = client_cert;
            call.concurrent = concurrent;
            call.rate = rate;
            show::blocks_in_force(&p, &mut call);
            let d = tollgate_policy::eval::Evaluator::new(&compiled).decide(&call, true);
            print(
                json,
                show::explain_json(&p, n, &compiled, &call, &d),
                || show::explain_text(&p, n, &compiled, &call, &d),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Completion { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// A `spec.rollout` patch: `field` set to a revision (the given one, else
/// the one rolling out), or `paused` (`pause`: true, `resume`: false).
async fn steer(
    c: &Cluster,
    json: bool,
    policy: &str,
    action: &str,
    revision_field: Option<(&str, Option<i64>)>,
    effect: &str,
) -> Result<ExitCode, Error> {
    let p = c.policy(policy).await?;
    let (patch, n) = match revision_field {
        Some((field, given)) => {
            let n = steered_revision(&p, given)?;
            (serde_json::json!({ field: n }), Some(n))
        }
        None => (serde_json::json!({ "paused": action == "pause" }), None),
    };
    c.patch_rollout(policy, patch).await?;
    say(json, action, policy, n, effect);
    Ok(ExitCode::SUCCESS)
}

/// The revision `promote`/`abort` act on: the given one, else the one rolling out.
fn steered_revision(p: &tollgate_crds::TollPolicy, given: Option<i64>) -> Result<i64, Error> {
    let current = p.status.as_ref().and_then(|s| s.current_revision);
    match (given, current) {
        (Some(n), _) => Ok(n),
        (None, Some(n)) => Ok(n),
        (None, None) => Err(Error::Usage(
            "the policy has no revision rolling out yet; name one with --revision".into(),
        )),
    }
}

/// The revision `explain` reads: `--revision`, the one `--target` holds, or
/// the last good one (else the current one).
fn explained_revision(
    p: &tollgate_crds::TollPolicy,
    given: Option<i64>,
    target: Option<&str>,
) -> Result<i64, Error> {
    let s = p.status.as_ref();
    if let Some(n) = given {
        return Ok(n);
    }
    if let Some(t) = target {
        let row = s
            .and_then(|s| s.targets.iter().find(|r| r.target == t))
            .ok_or_else(|| Error::Usage(format!("no target {t} in status.targets")))?;
        return row
            .revision
            .ok_or_else(|| Error::Usage(format!("target {t} holds no revision")));
    }
    s.and_then(|s| s.last_good_revision.or(s.current_revision))
        .ok_or_else(|| Error::Usage("the policy has no revision yet".into()))
}

/// What a steering command did, as a line or JSON.
fn say(json: bool, action: &str, policy: &str, revision: Option<i64>, what: &str) {
    if json {
        println!(
            "{}",
            serde_json::json!({ "action": action, "policy": policy, "revision": revision, "effect": what })
        );
    } else {
        match revision {
            Some(n) => println!("{action}: TollPolicy {policy} revision {n}: {what}"),
            None => println!("{action}: TollPolicy {policy}: {what}"),
        }
    }
}

fn seconds(s: &str) -> Result<u64, String> {
    s.strip_suffix('s')
        .unwrap_or(s)
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds (e.g. 10s)"))
}

fn code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Prints JSON (pretty) or the text `human` makes.
fn print(json: bool, value: serde_json::Value, human: impl FnOnce() -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        print!("{}", human());
    }
}
