//! Scenario files (`*.test.yaml`): offline tests of a policy. Each names the
//! policy file under test and lists calls with the decision expected for each
//! (outcome and deciding rule, optionally stage, responses, maximum duration,
//! normalized number and classes). The format is documented in
//! `docs/testing.md`.
//!
//! This is the one module that reads scenario YAML (through
//! [`tollgate_ir::yaml::from_yaml`]). Unknown fields, unknown values and
//! times without a UTC offset are errors carrying the line and column.

use crate::eval::{Call, Decision, Outcome, Stage, Transport};
use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// A scenario file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScenarioFile {
    /// The policy file under test, relative to the scenario file.
    pub policy: String,
    /// Free text about the scenarios.
    #[serde(default)]
    pub description: Option<String>,
    /// Call fields every case starts from; a case's own `call` fields win.
    #[serde(default)]
    pub defaults: CallSpec,
    pub cases: Vec<Case>,
}

/// One test: a call and the decision expected for it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub call: CallSpec,
    pub expect: Expect,
}

/// A call as written; every field may come from `defaults`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CallSpec {
    /// Destination as dialed (`+4420...`, `011...`, a national form, `911`).
    #[serde(default, deserialize_with = "dialed")]
    pub to: Option<String>,
    /// Source IP address.
    #[serde(default)]
    pub from: Option<IpAddr>,
    /// Source country by GeoIP (ISO 3166-1 alpha-2). Absent: the default's;
    /// `null` (or absent everywhere): unknown.
    #[serde(default, deserialize_with = "explicit")]
    pub country: Option<Option<String>>,
    /// When the call is placed: RFC 3339 with a UTC offset.
    #[serde(default, deserialize_with = "rfc3339")]
    pub at: Option<Timestamp>,
    #[serde(default)]
    pub transport: Option<Transport>,
    #[serde(default)]
    pub srtp: Option<bool>,
    #[serde(default)]
    pub client_certificate: Option<bool>,
    /// The tenant's calls up before this one.
    #[serde(default)]
    pub concurrent: Option<u64>,
    /// The tenant's new calls in the minute before this one.
    #[serde(default)]
    pub rate: Option<u64>,
    /// Per class: calls up before this one.
    #[serde(default)]
    pub class_concurrent: Option<BTreeMap<String, u64>>,
    /// Per class: new calls in the minute before this one.
    #[serde(default)]
    pub class_rate: Option<BTreeMap<String, u64>>,
    /// A response in force blocks the whole tenant.
    #[serde(default)]
    pub blocked_tenant: Option<bool>,
    /// Responses in force block these classes.
    #[serde(default)]
    pub blocked_classes: Option<Vec<String>>,
}

/// The decision expected.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Expect {
    pub outcome: Outcome,
    /// Id of the deciding rule, e.g. `dst:country:CA`, `src:geo`, `dst:emergency`.
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// Every response triggered (rule ids), in any order; `[]` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses: Option<Vec<String>>,
    /// The longest call allowed: a duration (`4h`, `1h30m`) or seconds.
    #[serde(
        default,
        deserialize_with = "duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_duration: Option<u64>,
    /// The destination as E.164 (`+` optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// The destination's classes (`national` or `international` plus number classes), in any order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
}

/// A problem with a scenario file, with the position when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    pub message: String,
    /// 1-based line and column.
    pub position: Option<(usize, usize)>,
    pub help: Option<String>,
}

impl ScenarioError {
    /// `file:line:column: message` (and the help on the next line).
    pub fn display(&self, file: &str) -> String {
        let at = match self.position {
            Some((line, column)) => format!("{file}:{line}:{column}"),
            None => file.to_string(),
        };
        let mut s = format!("{at}: {}", self.message);
        if let Some(h) = &self.help {
            s.push_str(&format!("\n  help: {h}"));
        }
        s
    }
}

/// One case ready to run.
#[derive(Clone, Debug)]
pub struct ReadyCase {
    pub name: String,
    pub call: Call,
    pub expect: Expect,
    /// 1-based line of the case's `name:` in the file, when it could be found.
    pub line: Option<usize>,
}

/// Reads a scenario file's text: the policy path (as written) and the cases.
pub fn parse(text: &str) -> Result<(String, Vec<ReadyCase>), ScenarioError> {
    let file: ScenarioFile = tollgate_ir::yaml::from_yaml(text).map_err(|e| {
        let position = e.location().map(|l| (l.line(), l.column()));
        let message = e.to_string();
        // serde_yaml appends " at line L column C"; the position is shown in front instead
        let message = match message.find(" at line ") {
            Some(i) if position.is_some() => message[..i].to_string(),
            _ => message,
        };
        let help = help_for(&message);
        ScenarioError {
            message,
            position,
            help,
        }
    })?;
    if file.cases.is_empty() {
        return Err(ScenarioError {
            message: "no cases".into(),
            position: None,
            help: Some("list the calls to test under `cases:` (see docs/testing.md)".into()),
        });
    }
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut cases = Vec::new();
    for case in file.cases {
        let seen = names.entry(case.name.clone()).or_default();
        let line = case_line(text, &case.name, *seen);
        *seen += 1;
        let at = |message: String, help: &str| ScenarioError {
            message,
            position: line.map(|l| (l, 1)),
            help: Some(help.to_string()),
        };
        if names[&case.name] > 1 {
            return Err(at(
                format!("two cases are named `{}`", case.name),
                "give every case its own name: failures are reported by name",
            ));
        }
        let spec = merge(&file.defaults, &case.call);
        let missing = |field: &str| {
            at(
                format!("case `{}` has no `{field}`", case.name),
                &format!("set `{field}` in the case's `call` or in `defaults`"),
            )
        };
        let mut call = Call::new(
            spec.to.clone().ok_or_else(|| missing("to"))?,
            spec.from.ok_or_else(|| missing("from"))?,
            spec.at.ok_or_else(|| missing("at"))?,
        );
        call.source_country = spec.country.clone().flatten();
        call.transport = spec.transport.unwrap_or_default();
        call.srtp = spec.srtp.unwrap_or(false);
        call.client_certificate = spec.client_certificate.unwrap_or(false);
        call.concurrent = spec.concurrent.unwrap_or(0);
        call.rate = spec.rate.unwrap_or(0);
        call.class_concurrent = spec.class_concurrent.clone().unwrap_or_default();
        call.class_rate = spec.class_rate.clone().unwrap_or_default();
        call.blocked_tenant = spec.blocked_tenant.unwrap_or(false);
        call.blocked_classes = spec
            .blocked_classes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        cases.push(ReadyCase {
            name: case.name,
            call,
            expect: case.expect,
            line,
        });
    }
    Ok((file.policy, cases))
}

/// The case's own fields over the defaults.
fn merge(defaults: &CallSpec, case: &CallSpec) -> CallSpec {
    let d = defaults.clone();
    let c = case.clone();
    CallSpec {
        to: c.to.or(d.to),
        from: c.from.or(d.from),
        country: c.country.or(d.country),
        at: c.at.or(d.at),
        transport: c.transport.or(d.transport),
        srtp: c.srtp.or(d.srtp),
        client_certificate: c.client_certificate.or(d.client_certificate),
        concurrent: c.concurrent.or(d.concurrent),
        rate: c.rate.or(d.rate),
        class_concurrent: c.class_concurrent.or(d.class_concurrent),
        class_rate: c.class_rate.or(d.class_rate),
        blocked_tenant: c.blocked_tenant.or(d.blocked_tenant),
        blocked_classes: c.blocked_classes.or(d.blocked_classes),
    }
}

/// The line of a case's `name: NAME` (best effort: the `nth` line giving
/// that name, for the `nth` case so named).
fn case_line(text: &str, name: &str, nth: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let l = line.trim_start().trim_start_matches('-').trim_start();
            let Some(v) = l.strip_prefix("name:") else {
                return false;
            };
            let v = v.split(" #").next().unwrap_or(v).trim();
            v.trim_matches(|c| c == '"' || c == '\'') == name
        })
        .nth(nth)
        .map(|(n, _)| n + 1)
}

/// Help for the common mistakes, by the message serde gives.
fn help_for(message: &str) -> Option<String> {
    if message.contains("unknown field") {
        Some("check the spelling; docs/testing.md lists every field".into())
    } else if message.contains("unknown variant") {
        Some("use one of the expected values named in the message".into())
    } else if message.contains("missing field") {
        Some("docs/testing.md lists the required fields".into())
    } else {
        None
    }
}

/// `Some(None)` for an explicit `null`, so that a case can unset a default.
fn explicit<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A destination may be written unquoted (`911`, `+4420...`): keep the text
/// as written, not the number YAML would read.
fn dialed<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a destination as dialed, e.g. `+442071234567` or `911`")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<String, E> {
            Ok(s.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<String, E> {
            Ok(n.to_string())
        }
    }
    d.deserialize_str(V).map(Some)
}

fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    // a visitor, so that serde_yaml reports the scalar's own position
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Timestamp;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an RFC 3339 time with a UTC offset")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
            parse_time(s).map_err(E::custom)
        }
    }
    d.deserialize_str(V).map(Some)
}

/// An RFC 3339 time with a UTC offset (`Z` or `±HH:MM`).
pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    match s.parse::<Timestamp>() {
        Ok(t) => Ok(t),
        Err(_) if s.parse::<jiff::civil::DateTime>().is_ok() => Err(format!(
            "time `{s}` has no UTC offset: write it as RFC 3339 with one, e.g. `{s}Z` or `{s}-05:00` (policies decide by local time in their zone, so the instant must be unambiguous)"
        )),
        Err(e) => Err(format!(
            "`{s}` is not an RFC 3339 time with an offset, e.g. `2026-01-14T10:00:00-05:00` ({e})"
        )),
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a duration such as `1h30m`, or a number of seconds")
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }
        fn visit_str<E: serde::de::Error>(self, t: &str) -> Result<u64, E> {
            parse_duration(t).ok_or_else(|| {
                E::custom(format!(
                    "`{t}` is not a duration: write e.g. `90s`, `15m`, `1h30m`, `4h` or a number of seconds"
                ))
            })
        }
    }
    d.deserialize_any(V).map(Some)
}

/// `1h30m` → 5400: numbers with units `d`, `h`, `m`, `s`.
pub fn parse_duration(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        digits.clear();
    }
    (digits.is_empty() && !s.trim().is_empty()).then_some(total)
}

/// One way the decision differs from the expectation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// `outcome`, `rule`, `stage`, `responses`, `max-duration`, `number` or `classes`.
    pub field: &'static str,
    pub expected: String,
    pub actual: String,
}

/// How `decision` differs from `expect` (empty when the case passes).
pub fn compare(expect: &Expect, decision: &Decision<'_>) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut check = |field, expected: String, actual: String| {
        if expected != actual {
            out.push(Mismatch {
                field,
                expected,
                actual,
            });
        }
    };
    check(
        "outcome",
        expect.outcome.to_string(),
        decision.outcome.to_string(),
    );
    check("rule", expect.rule.clone(), decision.rule.to_string());
    if let Some(stage) = expect.stage {
        check("stage", stage_name(stage), stage_name(decision.stage));
    }
    if let Some(r) = &expect.responses {
        check("responses", set(r), set(&decision.responses));
    }
    if let Some(m) = expect.max_duration {
        check(
            "max-duration",
            duration_text(Some(m)),
            duration_text(decision.max_duration),
        );
    }
    if let Some(n) = &expect.number {
        check(
            "number",
            format!("+{}", n.trim_start_matches('+')),
            decision
                .number
                .as_ref()
                .map_or("none".into(), |n| format!("+{n}")),
        );
    }
    if let Some(c) = &expect.classes {
        check("classes", set(c), set(&decision.classes));
    }
    out
}

fn set<S: AsRef<str>>(items: &[S]) -> String {
    let s: BTreeSet<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("[{}]", s.into_iter().collect::<Vec<_>>().join(", "))
}

/// `allow`, `destination`, ...: the names the scenario format uses.
pub fn stage_name(s: Stage) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `4h`, `1h30m`, `none`.
pub fn duration_text(seconds: Option<u64>) -> String {
    let Some(mut s) = seconds else {
        return "none".into();
    };
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [('d', 86_400u64), ('h', 3_600), ('m', 60), ('s', 1)] {
        if s >= size {
            out.push_str(&format!("{}{unit}", s / size));
            s %= size;
        }
    }
    out
}

/// What a built-in rule id (one without a source line) means.
pub fn builtin_meaning(rule: &str) -> Option<String> {
    Some(match rule {
        "dst:invalid" => "built-in: the destination is not a telephone number".into(),
        "dst:unreadable" => {
            "built-in: the destination is a number libphonenumber may read otherwise than Tollgate could be sure of".into()
        }
        "dst:emergency" => "built-in: emergency numbers always connect".into(),
        "src:unknown" => "built-in: no source network of the policy contains the source".into(),
        "block:tenant" => "built-in: a response in force blocks the tenant".into(),
        _ => match rule.strip_prefix("block:class:") {
            Some(c) => format!("built-in: a response in force blocks class {c}"),
            None => return None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "policy: ../tenants/acme.tgp
defaults:
  from: 198.51.100.20
  country: US
  at: 2026-01-14T10:00:00-05:00
cases:
  - name: national
    call:
      to: '+12125550100'
    expect:
      outcome: allow
      rule: dst:national
      max-duration: 4h
  - name: emergency
    call: { to: 911, from: 198.51.100.66 }
    expect: { outcome: allow, rule: dst:emergency, stage: emergency, responses: [] }
  - name: unquoted plus
    call: { to: +442071234567, country: null }
    expect: { outcome: deny, rule: dst:international }
";

    #[test]
    fn reads_cases_with_defaults() {
        let (policy, cases) = parse(GOOD).expect("parses");
        assert_eq!(policy, "../tenants/acme.tgp");
        assert_eq!(cases.len(), 3);
        assert_eq!(cases[2].call.destination, "+442071234567");
        assert_eq!(cases[0].call.destination, "+12125550100");
        assert_eq!(cases[0].expect.max_duration, Some(4 * 3600));
        assert_eq!(cases[0].line, Some(7));
        assert_eq!(cases[1].call.destination, "911");
        assert_eq!(cases[1].call.source.to_string(), "198.51.100.66");
        assert_eq!(
            cases[1].call.time,
            "2026-01-14T15:00:00Z".parse::<Timestamp>().expect("time")
        );
        assert_eq!(cases[1].line, Some(14));
        assert_eq!(cases[0].call.source_country.as_deref(), Some("US"));
        assert_eq!(cases[2].call.source_country, None);
    }

    fn error(text: &str) -> ScenarioError {
        parse(text).expect_err("is refused")
    }

    #[test]
    fn unknown_fields_have_a_position_and_help() {
        let e = error(&GOOD.replace("      rule: dst:national", "      rul: dst:national"));
        assert!(e.message.contains("unknown field `rul`"), "{e:?}");
        assert_eq!(e.position, Some((12, 7)));
        assert!(e.help.is_some());
    }

    #[test]
    fn times_need_an_offset() {
        let e = error(&GOOD.replace("10:00:00-05:00", "10:00:00"));
        assert!(e.message.contains("has no UTC offset"), "{e:?}");
        assert_eq!(e.position.map(|p| p.0), Some(5));
    }

    #[test]
    fn unknown_outcomes_and_missing_fields() {
        let e = error(&GOOD.replace("outcome: allow\n", "outcome: permit\n"));
        assert!(e.message.contains("unknown variant `permit`"), "{e:?}");
        assert_eq!(e.position.map(|p| p.0), Some(11));
        let e = error(&GOOD.replace("      rule: dst:national\n", ""));
        assert!(e.message.contains("missing field `rule`"), "{e:?}");
        let e = error(&GOOD.replace("  from: 198.51.100.20\n", ""));
        assert!(e.message.contains("case `national` has no `from`"), "{e:?}");
        assert_eq!(e.position, Some((6, 1)));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("4x"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(duration_text(Some(5400)), "1h30m");
        assert_eq!(duration_text(None), "none");
    }
}
