//! The evaluator: what a compiled policy decides for one call, with the rule
//! that decided and the trace of rules considered. These are the semantics the
//! SBC enforces; the Kamailio backend is tested against this function.
//!
//! ## Order of evaluation
//! 1. **Source.** The longest network of the policy containing the source
//!    address decides whose call it is: no match means the call is not this
//!    tenant's (`src:unknown`, denied).
//! 2. **Emergency.** A dialed emergency number of the home country (or 112,
//!    911) is allowed now, from any of the tenant's networks (even a denied
//!    one): a deny network, geo-blocking, blocks, crypto, destination rules and
//!    limits never apply to it. Otherwise a `deny` network denies.
//! 3. **Number.** The dialed destination is normalized to E.164 digits (see
//!    [`normalize`]); a number that cannot be read is denied (`dst:invalid`).
//! 4. **Geo.** For a non-trunk network, the source's country against the geo
//!    list (an unknown country passes a deny list and fails an allow-only list).
//! 5. **Active blocks.** A response in force blocking the tenant, or a class the
//!    number belongs to.
//! 6. **Crypto.** TLS, then client certificate, then SRTP, when required.
//! 7. **Destination.** Longest prefix; at a prefix, entries with a window
//!    condition that holds come first; when none applies, the next shorter prefix.
//! 8. **Limits.** For an allowed call: every concurrent/rate limit of the tenant
//!    and of the number's classes; a count at or above `critical` rejects the
//!    call (`limit`), reaching `warning` only alerts. The responses declared for
//!    the levels crossed are reported as triggered.

use crate::window;
use ipnet::IpNet;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use tollgate_crds::policy::{
    AlertLevel, CompiledPolicy, GeoMode, LimitMetric, ResponseTrigger, Verdict, WindowWhen,
};

/// How the call's signalling arrived.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

/// One call as the SBC sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The destination as dialed: `+4420...`, `004420...`, or a national form.
    pub destination: String,
    pub source: IpAddr,
    /// The source's country (ISO 3166-1 alpha-2) if known (GeoIP at the SBC).
    pub source_country: Option<String>,
    pub time: Timestamp,
    pub transport: Transport,
    /// The offer uses SRTP.
    pub srtp: bool,
    /// The TLS client presented a verified certificate.
    pub client_certificate: bool,
    /// The tenant's calls up before this one.
    pub concurrent: u64,
    /// The tenant's new calls in the last minute before this one.
    pub rate: u64,
    /// Per destination class: calls up before this one.
    pub class_concurrent: BTreeMap<String, u64>,
    /// Per destination class: new calls in the last minute before this one.
    pub class_rate: BTreeMap<String, u64>,
    /// A response in force blocks every call of the tenant.
    pub blocked_tenant: bool,
    /// Responses in force block these destination classes.
    pub blocked_classes: BTreeSet<String>,
}

impl Call {
    /// A plain call: UDP, no SRTP, no certificate, nothing up, nothing blocked.
    pub fn new(destination: impl Into<String>, source: IpAddr, time: Timestamp) -> Self {
        Call {
            destination: destination.into(),
            source,
            source_country: None,
            time,
            transport: Transport::Udp,
            srtp: false,
            client_certificate: false,
            concurrent: 0,
            rate: 0,
            class_concurrent: BTreeMap::new(),
            class_rate: BTreeMap::new(),
            blocked_tenant: false,
            blocked_classes: BTreeSet::new(),
        }
    }
}

/// What happens to the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allow,
    Deny,
    /// Rejected because a limit's critical level is reached.
    Limit,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Limit => "limit",
        })
    }
}

/// Which step decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Number,
    Source,
    Emergency,
    Geo,
    Block,
    Crypto,
    Destination,
    Limit,
}

/// One rule considered, in order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    pub rule: String,
    /// What the rule did for this call, e.g. `matched +44 (allow)`, `window office is closed`.
    pub note: String,
}

/// The decision for one call.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub outcome: Outcome,
    pub stage: Stage,
    /// Id of the deciding rule (see the policy's source map), or a built-in id:
    /// `dst:invalid`, `dst:emergency`, `src:unknown`, `block:tenant`, `block:class:NAME`.
    pub rule: String,
    /// The destination as E.164 digits, when it could be read.
    pub number: Option<String>,
    /// The destination's classes: `national` or `international`, plus number classes.
    pub classes: Vec<String>,
    /// Responses (rule ids) whose trigger this call crossed.
    pub responses: Vec<String>,
    /// The longest call allowed, in seconds, if a duration limit applies.
    pub max_duration: Option<u64>,
    /// The rules considered, when a trace was asked for.
    pub trace: Vec<Step>,
}

/// A policy prepared for fast decisions (indexes built once).
#[derive(Debug)]
pub struct Evaluator<'p> {
    policy: &'p CompiledPolicy,
    /// prefix → indexes into `policy.destinations`, in evaluation order.
    destinations: HashMap<&'p str, Vec<usize>>,
    /// prefix → classes.
    classes: HashMap<&'p str, Vec<&'p str>>,
    max_class_prefix: usize,
    max_dest_prefix: usize,
    /// (network address, prefix length) → index into `policy.sources.networks`.
    networks: HashMap<(IpAddr, u8), usize>,
    network_lengths_v4: Vec<u8>,
    network_lengths_v6: Vec<u8>,
    windows: HashMap<&'p str, (usize, Option<TimeZone>)>,
    /// The home country's calling code.
    calling_code: String,
}

/// `+` or the international prefix, the national forms of the home country.
/// Returns E.164 digits, or `None` when the text is not a number.
///
/// - `+` followed by digits: as is.
/// - The international prefix: `011` in NANP countries (calling code 1), `00` elsewhere.
/// - National forms: in NANP, ten digits or `1` and ten digits; elsewhere a
///   single leading `0` (the trunk prefix) is replaced by the calling code.
/// - Visual separators (space, `-`, `.`, `(`, `)`) are ignored.
pub fn normalize(dialed: &str, calling_code: &str) -> Option<String> {
    let plus = dialed.trim_start().starts_with('+');
    let digits: String = dialed
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '+'))
        .collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanp = calling_code == "1";
    let e164 = if plus {
        digits
    } else if nanp && digits.starts_with("011") {
        digits[3..].to_string()
    } else if !nanp && digits.starts_with("00") {
        digits[2..].to_string()
    } else if nanp && digits.len() == 10 {
        format!("1{digits}")
    } else if nanp && digits.len() == 11 && digits.starts_with('1') {
        digits
    } else if !nanp && digits.starts_with('0') {
        format!("{calling_code}{}", &digits[1..])
    } else {
        return None;
    };
    (!e164.is_empty() && e164.len() <= 15 && !e164.starts_with('0')).then_some(e164)
}

impl<'p> Evaluator<'p> {
    pub fn new(policy: &'p CompiledPolicy) -> Self {
        let mut destinations: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, d) in policy.destinations.iter().enumerate() {
            destinations.entry(d.prefix.as_str()).or_default().push(i);
        }
        let mut classes: HashMap<&str, Vec<&str>> = HashMap::new();
        for c in &policy.classes {
            classes
                .entry(c.prefix.as_str())
                .or_default()
                .push(c.class.as_str());
        }
        let mut networks = HashMap::new();
        let (mut v4, mut v6) = (BTreeSet::new(), BTreeSet::new());
        for (i, n) in policy.sources.networks.iter().enumerate() {
            if let Ok(net) = n.cidr.parse::<IpNet>() {
                networks.insert((net.network(), net.prefix_len()), i);
                match net {
                    IpNet::V4(_) => v4.insert(net.prefix_len()),
                    IpNet::V6(_) => v6.insert(net.prefix_len()),
                };
            }
        }
        let windows = policy
            .windows
            .iter()
            .enumerate()
            .map(|(i, w)| (w.name.as_str(), (i, TimeZone::get(&w.zone).ok())))
            .collect();
        let calling_code = crate::numbering::country(&policy.home_country)
            .map(|c| c.calling_code.clone())
            .unwrap_or_default();
        Evaluator {
            policy,
            max_class_prefix: classes.keys().map(|p| p.len()).max().unwrap_or(0),
            max_dest_prefix: destinations.keys().map(|p| p.len()).max().unwrap_or(0),
            destinations,
            classes,
            networks,
            network_lengths_v4: v4.into_iter().rev().collect(),
            network_lengths_v6: v6.into_iter().rev().collect(),
            windows,
            calling_code,
        }
    }

    pub fn policy(&self) -> &'p CompiledPolicy {
        self.policy
    }

    /// The decision for `call`; `trace` also records every rule considered.
    pub fn decide(&self, call: &Call, trace: bool) -> Decision {
        let mut d = Decision {
            outcome: Outcome::Deny,
            stage: Stage::Number,
            rule: String::new(),
            number: None,
            classes: Vec::new(),
            responses: Vec::new(),
            max_duration: None,
            trace: Vec::new(),
        };
        let note = |d: &mut Decision, rule: &str, text: String| {
            if trace {
                d.trace.push(Step {
                    rule: rule.to_string(),
                    note: text,
                });
            }
        };
        let finish = |mut d: Decision, outcome, stage, rule: &str| {
            d.outcome = outcome;
            d.stage = stage;
            d.rule = rule.to_string();
            d
        };

        // 1. source
        let Some(net) = self.network(call.source) else {
            note(
                &mut d,
                "src:unknown",
                format!("no source network contains {}", call.source),
            );
            return finish(d, Outcome::Deny, Stage::Source, "src:unknown");
        };
        note(
            &mut d,
            &net.rule,
            format!(
                "source {} is in {} ({})",
                call.source,
                net.cidr,
                verdict(net.action)
            ),
        );

        // 2. emergency: for every source of the tenant, even a denied one
        let dialed: String = call
            .destination
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if !call.destination.trim_start().starts_with('+')
            && self.policy.emergency_numbers.contains(&dialed)
        {
            note(
                &mut d,
                "dst:emergency",
                format!("{dialed} is an emergency number: always allowed"),
            );
            return finish(d, Outcome::Allow, Stage::Emergency, "dst:emergency");
        }
        if net.action == Verdict::Deny {
            return finish(d, Outcome::Deny, Stage::Source, &net.rule.clone());
        }

        // 3. the number
        let Some(number) = normalize(&call.destination, &self.calling_code) else {
            note(
                &mut d,
                "dst:invalid",
                format!(
                    "`{}` is not a number this policy can read",
                    call.destination
                ),
            );
            return finish(d, Outcome::Deny, Stage::Number, "dst:invalid");
        };
        d.classes = self.classes_of(&number);
        d.number = Some(number.clone());

        // 4. geo
        if let (None, Some(geo)) = (&net.trunk, &self.policy.sources.geo) {
            let listed = call
                .source_country
                .as_ref()
                .is_some_and(|c| geo.countries.contains(c));
            let blocked = match geo.mode {
                GeoMode::Deny => listed,
                GeoMode::AllowOnly => !listed,
            };
            let country = call.source_country.as_deref().unwrap_or("unknown");
            if blocked {
                note(
                    &mut d,
                    &geo.rule,
                    format!("source country {country} is geo-blocked"),
                );
                return finish(d, Outcome::Deny, Stage::Geo, &geo.rule.clone());
            }
            note(
                &mut d,
                &geo.rule,
                format!("source country {country} passes"),
            );
        }

        // 5. active blocks
        if call.blocked_tenant {
            note(
                &mut d,
                "block:tenant",
                "a response in force blocks the tenant".into(),
            );
            return finish(d, Outcome::Deny, Stage::Block, "block:tenant");
        }
        if let Some(c) = d
            .classes
            .iter()
            .find(|c| call.blocked_classes.contains(*c))
            .cloned()
        {
            let rule = format!("block:class:{c}");
            note(
                &mut d,
                &rule,
                format!("a response in force blocks class {c}"),
            );
            return finish(d, Outcome::Deny, Stage::Block, &rule);
        }

        // 6. crypto
        let crypto = &self.policy.crypto;
        let failed = if crypto.require_tls && call.transport != Transport::Tls {
            Some(("crypto:tls", "signalling is not over TLS"))
        } else if crypto.require_client_certificate && !call.client_certificate {
            Some((
                "crypto:client-certificate",
                "no verified client certificate",
            ))
        } else if crypto.require_srtp && !call.srtp {
            Some(("crypto:srtp", "the offer has no SRTP"))
        } else {
            None
        };
        if let Some((rule, why)) = failed {
            note(&mut d, rule, why.into());
            return finish(d, Outcome::Deny, Stage::Crypto, rule);
        }

        // 7. destination
        let Some(entry) = self.destination(&number, call.time, &mut |rule, text| {
            note(&mut d, rule, text)
        }) else {
            // unreachable with a well-formed policy (the root entry always applies); fail closed
            return finish(d, Outcome::Deny, Stage::Destination, "dst:international");
        };
        if entry.action == Verdict::Deny {
            return finish(d, Outcome::Deny, Stage::Destination, &entry.rule.clone());
        }

        // 8. limits
        let mut limited: Option<String> = None;
        for l in &self.policy.limits {
            let applies = l.class.as_ref().is_none_or(|c| d.classes.contains(c));
            if !applies {
                continue;
            }
            if l.metric == LimitMetric::Duration {
                d.max_duration = Some(d.max_duration.map_or(l.critical.unwrap_or(u64::MAX), |m| {
                    m.min(l.critical.unwrap_or(u64::MAX))
                }));
                continue;
            }
            let count = match (&l.metric, &l.class) {
                (LimitMetric::Concurrent, None) => call.concurrent,
                (LimitMetric::Rate, None) => call.rate,
                (LimitMetric::Concurrent, Some(c)) => {
                    call.class_concurrent.get(c).copied().unwrap_or(0)
                }
                (LimitMetric::Rate, Some(c)) => call.class_rate.get(c).copied().unwrap_or(0),
                (LimitMetric::Duration, _) => continue,
            };
            let level = if l.critical.is_some_and(|c| count >= c) {
                Some(AlertLevel::Critical)
            } else if l.warning.is_some_and(|w| count + 1 >= w) {
                Some(AlertLevel::Warning)
            } else {
                None
            };
            let Some(level) = level else {
                note(&mut d, &l.rule, format!("{count} is below the limit"));
                continue;
            };
            note(
                &mut d,
                &l.rule,
                format!("{count} reaches the {} level", level_name(level)),
            );
            for r in &self.policy.responses {
                if let ResponseTrigger::Breach {
                    metric,
                    class,
                    level: at,
                } = &r.trigger
                    && *metric == l.metric
                    && *class == l.class
                    && *at == level
                {
                    d.responses.push(r.rule.clone());
                }
            }
            if level == AlertLevel::Critical && limited.is_none() {
                limited = Some(l.rule.clone());
            }
        }
        match limited {
            Some(rule) => finish(d, Outcome::Limit, Stage::Limit, &rule),
            None => finish(d, Outcome::Allow, Stage::Destination, &entry.rule.clone()),
        }
    }

    fn network(&self, addr: IpAddr) -> Option<&'p tollgate_crds::policy::SourceNetwork> {
        let lengths = match addr {
            IpAddr::V4(_) => &self.network_lengths_v4,
            IpAddr::V6(_) => &self.network_lengths_v6,
        };
        lengths.iter().find_map(|len| {
            let net = IpNet::new(addr, *len).ok()?.trunc();
            self.networks
                .get(&(net.network(), *len))
                .map(|i| &self.policy.sources.networks[*i])
        })
    }

    fn classes_of(&self, number: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut national = false;
        for len in (1..=self.max_class_prefix.min(number.len())).rev() {
            if let Some(cs) = self.classes.get(&number[..len]) {
                for c in cs {
                    if *c == "national" {
                        national = true;
                    } else if !out.iter().any(|o| o == c) {
                        out.push((*c).to_string());
                    }
                }
            }
        }
        out.sort();
        out.insert(
            0,
            if national {
                "national"
            } else {
                "international"
            }
            .to_string(),
        );
        out
    }

    fn destination(
        &self,
        number: &str,
        at: Timestamp,
        note: &mut dyn FnMut(&str, String),
    ) -> Option<&'p tollgate_crds::policy::DestinationRule> {
        for len in (0..=self.max_dest_prefix.min(number.len())).rev() {
            let Some(entries) = self.destinations.get(&number[..len]) else {
                continue;
            };
            for i in entries {
                let e = &self.policy.destinations[*i];
                let applies = match &e.window {
                    None => true,
                    Some(w) => {
                        let open = self.window_open(&w.name, at);
                        let applies = (w.when == WindowWhen::During) == open;
                        if !applies {
                            let state = if open { "open" } else { "closed" };
                            note(
                                &e.rule,
                                format!("+{} skipped: window {} is {state}", e.prefix, w.name),
                            );
                        }
                        applies
                    }
                };
                if applies {
                    note(
                        &e.rule,
                        format!("+{} matched: {}", e.prefix, verdict(e.action)),
                    );
                    return Some(e);
                }
            }
        }
        None
    }

    /// Unknown windows and zones count as closed (fail closed for `during`).
    fn window_open(&self, name: &str, at: Timestamp) -> bool {
        let Some((i, Some(tz))) = self.windows.get(name) else {
            return false;
        };
        window::is_open_in(&self.policy.windows[*i], at, tz)
    }
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Allow => "allow",
        Verdict::Deny => "deny",
    }
}

fn level_name(l: AlertLevel) -> &'static str {
    match l {
        AlertLevel::Warning => "warning",
        AlertLevel::Critical => "critical",
    }
}
