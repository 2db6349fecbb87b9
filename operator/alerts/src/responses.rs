//! Declared responses to fraud alerts: the rules, pure (no I/O, no clock:
//! every time is passed in). The operator's alert sink and reconciler
//! (`tollgate_operator::controller::responses`) carry them out against the
//! API server and the agents (docs/operator.md, "Anomaly alerts").
//!
//! - A response becomes an entry of `status.activeResponses` ([`entry_for`])
//!   blocking agent keys ([`block_keys`]) until it expires or a person
//!   releases it.
//! - Responses never loosen protection ([`merge`], [`record`]): a response
//!   only makes a tenant's state stricter (a later expiry, until
//!   acknowledged, more blocked); a re-sent alert instance changes nothing.
//!   A full `activeResponses` folds a new response into an entry (made at
//!   least as strict as both) rather than dropping it.
//! - Only a person loosens: the annotation [`RELEASE_ANNOTATION`] (a rule id
//!   or `all`) lifts those entries ([`release`], [`upkeep`]).
//! - Acknowledgements are durable: the alert instances (fingerprint +
//!   startsAt) of a released response, or of one whose hold ended, go to
//!   `status.acknowledgedAlerts` ([`acknowledge`]); a re-sent instance found
//!   there is ignored ([`acknowledged`], [`ack_reason`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tollgate_crds::toll_policy::{
    AcknowledgedAlert, AcknowledgedReason, ActiveResponse, AlertReference, MAX_ACKNOWLEDGED_ALERTS,
    MAX_ACTIVE_RESPONSES, MAX_FOLDED_RULES, MAX_RESPONSE_ALERTS,
};
use tollgate_ir::ResponseAction;

use crate::AlertRef;

#[cfg(test)]
mod tests;

/// Annotation a person sets to lift responses: a response rule id (as in
/// `status.activeResponses[].rule` or `foldedRules`), several separated by
/// commas, or `all`.
pub const RELEASE_ANNOTATION: &str = "tollgate.dev/release";
/// Most entries of `status.activeResponses` (the CRD's limit: as many as a
/// policy may declare responses).
pub const MAX_ACTIVE: usize = MAX_ACTIVE_RESPONSES;
/// Most classes of one `blockClasses` action (the CRD's limit); a fold
/// that would exceed it blocks the tenant instead.
pub const MAX_ACTION_CLASSES: usize = 64;

/// The first `max` characters of `s`.
pub fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The agent's block keys of `action` for `tenant` (none for `alert`).
pub fn block_keys(tenant: &str, action: &ResponseAction) -> Vec<String> {
    match action {
        ResponseAction::Alert => Vec::new(),
        ResponseAction::BlockTenant => vec![tenant.to_owned()],
        ResponseAction::BlockClasses { classes } => {
            classes.iter().map(|c| format!("{tenant}::{c}")).collect()
        }
    }
}

/// The agent's expiry of a response: epoch seconds, 0 = until lifted.
pub fn agent_expiry(r: &ActiveResponse) -> i64 {
    if r.until_acknowledged {
        0
    } else {
        r.expires.as_ref().map_or(0, |t| t.0.as_second())
    }
}

/// The stricter of two agent expiries (0 = until lifted wins).
pub fn stricter(a: i64, b: i64) -> i64 {
    if a == 0 || b == 0 { 0 } else { a.max(b) }
}

/// Whether an agent's block (`held`) is at least as strict as `want`.
pub fn satisfied(held: Option<i64>, want: i64) -> bool {
    match held {
        None => false,
        Some(0) => true,
        Some(h) => want != 0 && h >= want,
    }
}

/// Still in force at `now` (until acknowledged, or not yet expired).
pub fn in_force(r: &ActiveResponse, now: i64) -> bool {
    r.until_acknowledged || r.expires.as_ref().is_some_and(|t| t.0.as_second() > now)
}

/// key → the stricter expiry over the responses in force.
pub fn desired_blocks(tenant: &str, active: &[ActiveResponse], now: i64) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = BTreeMap::new();
    for r in active.iter().filter(|r| in_force(r, now)) {
        let e = agent_expiry(r);
        for k in block_keys(tenant, &r.action) {
            out.entry(k)
                .and_modify(|x| *x = stricter(*x, e))
                .or_insert(e);
        }
    }
    out
}

/// Whether `a` blocks at least what `b` blocks.
pub fn covers(a: &ResponseAction, b: &ResponseAction) -> bool {
    match (a, b) {
        (_, ResponseAction::Alert) | (ResponseAction::BlockTenant, _) => true,
        (
            ResponseAction::BlockClasses { classes: x },
            ResponseAction::BlockClasses { classes: y },
        ) => y.iter().all(|c| x.contains(c)),
        _ => false,
    }
}

/// An action blocking everything `a` and `b` block: the tenant if either
/// blocks it, else the classes of both (`a`'s first); more classes than
/// the CRD allows in one action ([`MAX_ACTION_CLASSES`]) block the tenant.
pub fn union(a: &ResponseAction, b: &ResponseAction) -> ResponseAction {
    match (a, b) {
        (ResponseAction::Alert, x) | (x, ResponseAction::Alert) => x.clone(),
        (ResponseAction::BlockTenant, _) | (_, ResponseAction::BlockTenant) => {
            ResponseAction::BlockTenant
        }
        (
            ResponseAction::BlockClasses { classes: x },
            ResponseAction::BlockClasses { classes: y },
        ) => {
            let mut classes = x.clone();
            for c in y {
                if !classes.contains(c) {
                    classes.push(c.clone());
                }
            }
            if classes.len() > MAX_ACTION_CLASSES {
                ResponseAction::BlockTenant
            } else {
                ResponseAction::BlockClasses { classes }
            }
        }
    }
}

/// Whether agent expiry `new` holds longer than `old` (0 = until lifted).
fn longer(old: i64, new: i64) -> bool {
    old != 0 && (new == 0 || new > old)
}

/// The form `startsAt` is stored and compared in: the instant, in UTC
/// (RFC 3339); `None` for an empty or unparseable value.
pub fn normalize_instant(s: &str) -> Option<String> {
    s.trim().parse::<Timestamp>().ok().map(|t| t.to_string())
}

/// The status form of an alert (names cut to the CRD's limits, `startsAt`
/// normalized).
pub fn reference(alert: &AlertRef) -> AlertReference {
    let name = if alert.name.is_empty() {
        "unnamed".to_owned()
    } else {
        truncate(&alert.name, 256)
    };
    AlertReference {
        name,
        fingerprint: Some(truncate(&alert.fingerprint, 64)).filter(|f| !f.is_empty()),
        starts_at: normalize_instant(&alert.starts_at),
    }
}

/// Whether `a` and `b` name the same alert instance: the same fingerprint
/// and the same `startsAt` (both absent counts as the same, for a sender
/// that gives none).
pub fn same_instance(a: &AlertReference, b: &AlertReference) -> bool {
    a.fingerprint.is_some() && a.fingerprint == b.fingerprint && a.starts_at == b.starts_at
}

/// The alert instances an entry records (`alert` and `alerts`, once each).
pub fn instances(r: &ActiveResponse) -> Vec<AlertReference> {
    let mut out: Vec<AlertReference> = Vec::new();
    for a in std::iter::once(&r.alert).chain(&r.alerts) {
        if !out.iter().any(|o| same_instance(o, a) || o == a) {
            out.push(a.clone());
        }
    }
    out
}

/// The acknowledgement of the instance `alert` names, if any. Only a
/// known instance (fingerprint and `startsAt`) is ever acknowledged.
pub fn acknowledged<'a>(
    acks: &'a [AcknowledgedAlert],
    alert: &AlertReference,
) -> Option<&'a AcknowledgedAlert> {
    alert.starts_at.as_ref()?;
    acks.iter().find(|a| same_instance(&a.alert, alert))
}

/// Records `alerts` (instances of response `rule`) as acknowledged at
/// `now`: newest first, one entry per instance (a newer one replaces an
/// older), at most [`MAX_ACKNOWLEDGED_ALERTS`] (the oldest go). Instances
/// without a fingerprint or `startsAt` are not recorded: they could never
/// be told from a new instance, and ignoring a new one would loosen.
pub fn acknowledge(
    acks: &mut Vec<AcknowledgedAlert>,
    rule: &str,
    alerts: impl IntoIterator<Item = AlertReference>,
    reason: AcknowledgedReason,
    now: Timestamp,
) {
    for alert in alerts {
        if alert.fingerprint.is_none() || alert.starts_at.is_none() {
            continue;
        }
        acks.retain(|a| !same_instance(&a.alert, &alert));
        acks.insert(
            0,
            AcknowledgedAlert {
                rule: truncate(rule, 256),
                alert,
                reason,
                time: Time(now),
            },
        );
    }
    acks.truncate(MAX_ACKNOWLEDGED_ALERTS);
}

/// What [`merge`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Merge {
    /// A new entry.
    Added,
    /// An entry of the same rule now holds longer (or until acknowledged)
    /// or blocks more.
    Strengthened,
    /// An entry of the same rule, already as strict, records the alert
    /// instance too (released with it).
    Joined,
    /// Nothing changed (the same alert instance again).
    Unchanged,
    /// `activeResponses` was full: the response went into the entry of
    /// rule `into`, made at least as strict as both; `named`: the rule is
    /// listed in its `foldedRules` (false when that list is full).
    Folded { into: String, named: bool },
}

/// Puts the alert of `new` first in `old.alerts` (once, at most
/// [`MAX_RESPONSE_ALERTS`]).
fn note_alert(old: &mut ActiveResponse, alert: &AlertReference) {
    old.alerts
        .retain(|a| !same_instance(a, alert) && a != alert);
    old.alerts.insert(0, alert.clone());
    old.alerts.truncate(MAX_RESPONSE_ALERTS);
}

/// Makes `old` at least as strict as `new`; `same_rule`: `new` is a
/// re-send of the rule (an instance it already recorded changes nothing).
/// Returns (made stricter, alert newly recorded).
fn absorb(old: &mut ActiveResponse, new: &ActiveResponse, same_rule: bool) -> (bool, bool) {
    let known = instances(old).iter().any(|a| same_instance(a, &new.alert));
    if same_rule && known {
        // a re-send of the same instance never extends a hold; it can only
        // widen what a changed declaration of the rule blocks
        if covers(&old.action, &new.action) {
            return (false, false);
        }
        old.action = union(&old.action, &new.action);
        return (true, false);
    }
    let extend = longer(agent_expiry(old), agent_expiry(new));
    let widen = !covers(&old.action, &new.action);
    if extend {
        old.until_acknowledged = new.until_acknowledged;
        old.expires = new.expires.clone();
    }
    if widen {
        old.action = union(&old.action, &new.action);
    }
    if extend || widen {
        old.alert = new.alert.clone();
    }
    note_alert(old, &new.alert);
    (extend || widen, !known)
}

/// How much stricter folding `new` into `host` makes `host`: (the keys
/// blocked anew or held longer, each class 1 and the tenant
/// [`MAX_ACTION_CLASSES`] + 1; no room to name the rule; not the same
/// action).
fn fold_cost(host: &ActiveResponse, new: &ActiveResponse) -> (usize, bool, bool) {
    let weight = |a: &ResponseAction| match a {
        ResponseAction::Alert => 0,
        ResponseAction::BlockTenant => MAX_ACTION_CLASSES + 1,
        ResponseAction::BlockClasses { classes } => classes.len(),
    };
    let u = union(&host.action, &new.action);
    let cost = if longer(agent_expiry(host), agent_expiry(new)) {
        // every key of the entry is held longer
        weight(&u)
    } else if u == host.action {
        0
    } else if u == ResponseAction::BlockTenant {
        weight(&u)
    } else {
        weight(&u).saturating_sub(weight(&host.action))
    };
    (
        cost,
        host.folded_rules.len() >= MAX_FOLDED_RULES,
        host.action != new.action,
    )
}

/// Records `new` in `active` without ever loosening and without ever
/// dropping it. An entry of the same rule (or one it was folded into)
/// takes the stricter hold and blocks what both block; the same alert
/// instance again changes nothing. With no entry of the rule and the list
/// full ([`MAX_ACTIVE`]), `new` is folded into the entry it makes least
/// stricter (the fewest keys blocked anew or held longer, the tenant
/// counting as more than every class; then one with room in `foldedRules`;
/// then the same action; then the first): that entry blocks the union of
/// both actions, holds as long as the longer, and lists the rule in
/// `foldedRules` (if there is room: the blocks go in regardless).
pub fn merge(active: &mut Vec<ActiveResponse>, new: ActiveResponse) -> Merge {
    if let Some(old) = active
        .iter_mut()
        .find(|r| r.rule == new.rule || r.folded_rules.contains(&new.rule))
    {
        return match absorb(old, &new, true) {
            (true, _) => Merge::Strengthened,
            (false, true) => Merge::Joined,
            (false, false) => Merge::Unchanged,
        };
    }
    if active.len() < MAX_ACTIVE {
        active.push(new);
        return Merge::Added;
    }
    let Some(i) = (0..active.len()).min_by_key(|i| (fold_cost(&active[*i], &new), *i)) else {
        // MAX_ACTIVE is not 0: a full list has an entry
        active.push(new);
        return Merge::Added;
    };
    let host = &mut active[i];
    absorb(host, &new, false);
    let named = host.folded_rules.len() < MAX_FOLDED_RULES;
    if named {
        host.folded_rules.push(new.rule.clone());
    }
    Merge::Folded {
        into: host.rule.clone(),
        named,
    }
}

/// Removes the entries whose declared hold ended by `now`; returns them.
pub fn prune(active: &mut Vec<ActiveResponse>, now: i64) -> Vec<ActiveResponse> {
    let (keep, gone): (Vec<_>, Vec<_>) = active.drain(..).partition(|r| in_force(r, now));
    *active = keep;
    gone
}

/// What [`release`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Released {
    /// Entries removed: every rule of theirs was named (or `all`).
    pub removed: Vec<ActiveResponse>,
    /// Named rules removed from entries that stay because other rules are
    /// folded into them: (rule, the entry's rule now). Their blocks stay.
    pub unfolded: Vec<(String, String)>,
    /// The alert instances of every entry touched, with the rule released:
    /// to be acknowledged.
    pub acknowledged: Vec<(String, AlertReference)>,
}

impl Released {
    /// Nothing was named that is active.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.unfolded.is_empty()
    }
}

/// Carries out the release annotation's `value` (`all`, or rule ids
/// separated by commas) on `active`. An entry goes when each of its rules
/// (`rule` and `foldedRules`) is named; an entry with some rules named
/// loses those names and keeps its blocks (the rules not named still hold
/// them). The instances of every entry touched are to be acknowledged: a
/// re-send of one must not set a released rule off again.
pub fn release(active: &mut Vec<ActiveResponse>, value: &str) -> Released {
    let names: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let all = names.contains(&"all");
    let mut out = Released::default();
    let mut keep = Vec::new();
    for mut r in active.drain(..) {
        let named = |s: &str| all || names.contains(&s);
        let hit: Vec<String> = std::iter::once(&r.rule)
            .chain(&r.folded_rules)
            .filter(|s| named(s))
            .cloned()
            .collect();
        let Some(first) = hit.first().cloned() else {
            keep.push(r);
            continue;
        };
        for a in instances(&r) {
            out.acknowledged.push((first.clone(), a));
        }
        if hit.len() == 1 + r.folded_rules.len() {
            out.removed.push(r);
            continue;
        }
        r.folded_rules.retain(|s| !hit.contains(s));
        if hit.contains(&r.rule) && !r.folded_rules.is_empty() {
            r.rule = r.folded_rules.remove(0);
        }
        for h in hit {
            out.unfolded.push((h, r.rule.clone()));
        }
        keep.push(r);
    }
    *active = keep;
    out
}

/// The earliest expiry (epoch s) among the entries that expire.
pub fn next_expiry(active: &[ActiveResponse]) -> Option<i64> {
    active
        .iter()
        .filter(|r| !r.until_acknowledged)
        .filter_map(|r| r.expires.as_ref().map(|t| t.0.as_second()))
        .min()
}

/// The status entry of declared response `resp` set off by `alert` at `now`.
pub fn entry_for(resp: &tollgate_ir::Response, alert: &AlertRef, now: Timestamp) -> ActiveResponse {
    let hold = resp.hold_seconds.unwrap_or(0);
    let until = resp.until_acknowledged || hold == 0;
    let expires = if until {
        None
    } else {
        let secs = i64::try_from(hold).unwrap_or(i64::MAX / 2);
        Timestamp::from_second(now.as_second().saturating_add(secs))
            .ok()
            .map(Time)
    };
    let alert = reference(alert);
    ActiveResponse {
        rule: truncate(&resp.rule, 256),
        action: resp.action.clone(),
        since: Time(now),
        until_acknowledged: expires.is_none(),
        expires,
        alerts: vec![alert.clone()],
        alert,
        folded_rules: Vec::new(),
    }
}

/// Why an acknowledged alert instance is ignored (the webhook's answer).
pub fn ack_reason(a: &AcknowledgedAlert) -> String {
    let how = match a.reason {
        AcknowledgedReason::Released => "a person released its response",
        AcknowledgedReason::HoldEnded => "the declared hold of its response ended",
    };
    format!(
        "alert instance (fingerprint {}, startsAt {}) acknowledged: {how} ({}) at {}; it acts again when it fires anew",
        a.alert.fingerprint.as_deref().unwrap_or("-"),
        a.alert.starts_at.as_deref().unwrap_or("-"),
        a.rule,
        a.time.0
    )
}

/// What [`record`] did to `activeResponses`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Entries added, strengthened, joined or folded into.
    pub changed: usize,
    /// One note per change (`<rule> active`, `… made stricter`, …).
    pub notes: Vec<String>,
    /// The folds: (rule, the entry it went into, named in `foldedRules`).
    pub folded: Vec<(String, String, bool)>,
    /// What to push to the agents: key → expiry, for the keys of the new
    /// entries and every key the merge made stricter, each at the
    /// strictness now in force (a weaker response does not shorten a block
    /// in force; a fold may lengthen another entry's keys).
    pub blocks: BTreeMap<String, i64>,
}

/// Merges `entries` (set off by one alert) into `active` of `tenant` at
/// `now` (epoch seconds), never loosening ([`merge`]).
pub fn record(
    active: &mut Vec<ActiveResponse>,
    tenant: &str,
    entries: &[ActiveResponse],
    now: i64,
) -> Recorded {
    let before = desired_blocks(tenant, active, now);
    let mut out = Recorded::default();
    for e in entries.iter().cloned() {
        let rule = e.rule.clone();
        match merge(active, e) {
            Merge::Added => out.notes.push(format!("{rule} active")),
            Merge::Strengthened => out.notes.push(format!("{rule} made stricter")),
            Merge::Joined => out.notes.push(format!("{rule} also set off by this alert")),
            Merge::Unchanged => continue,
            Merge::Folded { into, named } => {
                out.notes.push(format!("{rule} folded into {into}"));
                out.folded.push((rule, into, named));
            }
        }
        out.changed += 1;
    }
    let after = desired_blocks(tenant, active, now);
    let keys: BTreeSet<String> = entries
        .iter()
        .flat_map(|e| block_keys(tenant, &e.action))
        .chain(
            after
                .iter()
                .filter(|(k, e)| before.get(*k) != Some(*e))
                .map(|(k, _)| k.clone()),
        )
        .collect();
    out.blocks = after
        .into_iter()
        .filter(|(k, _)| keys.contains(k))
        .collect();
    out
}

/// The reconciler's upkeep of `activeResponses` at `now` (epoch seconds),
/// before the agents are told: entries whose hold ended go; with a release
/// annotation, the entries it names go too ([`release`]), their keys to be
/// lifted on every target unless a remaining entry holds them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Upkeep {
    /// Entries whose declared hold ended.
    pub expired: Vec<ActiveResponse>,
    /// What the release annotation did (empty without one).
    pub released: Released,
    /// Keys no remaining entry holds: `DELETE`d on every target.
    pub lift: Vec<String>,
    /// Keys a remaining entry still holds whose strictness changed (a
    /// person loosened it): re-set at that strictness.
    pub reset: BTreeMap<String, i64>,
    /// The entries after expiry and release.
    pub active: Vec<ActiveResponse>,
    /// The entries after expiry only (kept when lifting failed).
    pub unreleased: Vec<ActiveResponse>,
}

impl Upkeep {
    /// Nothing ends and nothing is released: no write, no agent call.
    pub fn is_noop(&self) -> bool {
        self.expired.is_empty() && self.released.is_empty() && self.lift.is_empty()
    }

    /// The entries to record once the agents were told: `lifted`, every
    /// target lifted [`Upkeep::lift`] (else the released entries stay, to
    /// be retried). Acknowledges in `acks` at `stamp` the instances of the
    /// expired entries (`HoldEnded`) and, when lifted, of the released ones
    /// (`Released`). Returns the entries and whether the status changed.
    pub fn settle(
        &self,
        acks: &mut Vec<AcknowledgedAlert>,
        lifted: bool,
        stamp: Timestamp,
    ) -> (Vec<ActiveResponse>, bool) {
        for e in &self.expired {
            // a re-send of these instances must not set the hold off again
            acknowledge(
                acks,
                &e.rule,
                instances(e),
                AcknowledgedReason::HoldEnded,
                stamp,
            );
        }
        if !lifted {
            return (self.unreleased.clone(), !self.expired.is_empty());
        }
        // Alertmanager re-sends these instances while they keep firing;
        // none sets a released response off again.
        for (rule, a) in &self.released.acknowledged {
            acknowledge(acks, rule, [a.clone()], AcknowledgedReason::Released, stamp);
        }
        (
            self.active.clone(),
            !self.expired.is_empty() || !self.released.is_empty(),
        )
    }
}

/// The upkeep of `active` of `tenant` at `now` (epoch seconds), with the
/// release annotation's value if set ([`Upkeep`]).
pub fn upkeep(
    active: &[ActiveResponse],
    tenant: &str,
    release_value: Option<&str>,
    now: i64,
) -> Upkeep {
    let before = desired_blocks(tenant, active, now);
    let mut out = Upkeep {
        active: active.to_vec(),
        ..Upkeep::default()
    };
    out.expired = prune(&mut out.active, now);
    out.unreleased = out.active.clone();
    let Some(v) = release_value else {
        return out;
    };
    out.released = release(&mut out.active, v);
    let after = desired_blocks(tenant, &out.active, now);
    let mut lift: Vec<String> = out
        .released
        .removed
        .iter()
        .flat_map(|r| block_keys(tenant, &r.action))
        .filter(|k| !after.contains_key(k))
        .collect();
    lift.sort();
    lift.dedup();
    out.lift = lift;
    out.reset = after
        .iter()
        .filter(|(k, e)| before.get(*k) != Some(*e))
        .map(|(k, e)| (k.clone(), *e))
        .collect();
    out
}

/// The rules a release touched, for its Event: each removed entry (with
/// its folded rules) and each unfolded rule.
pub fn released_rules(released: &Released) -> Vec<String> {
    let mut rules: Vec<String> = released
        .removed
        .iter()
        .map(|r| {
            if r.folded_rules.is_empty() {
                r.rule.clone()
            } else {
                format!("{} (with {})", r.rule, r.folded_rules.join(", "))
            }
        })
        .collect();
    rules.extend(
        released.unfolded.iter().map(|(rule, host)| {
            format!("{rule} (folded: its blocks stay with {host}, still active)")
        }),
    );
    rules
}

/// The note of a fold's Event.
pub fn fold_note(rule: &str, into: &str, named: bool) -> String {
    format!(
        "status.activeResponses is full ({MAX_ACTIVE}): {rule} folded into {into}, which now blocks what both block and holds as long as the longer{}",
        if named {
            String::new()
        } else {
            format!(
                " ({into} has {MAX_FOLDED_RULES} folded rules: {rule} is not named and ends with it)"
            )
        }
    )
}
