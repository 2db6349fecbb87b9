//! Replaying a call log (CDR) through a policy: what the policy would have
//! decided for every call, aggregated. See `docs/replay.md` for the CSV format
//! and the report.
//!
//! Memory does not grow with the number of rows: rows are read one at a time
//! into reused buffers, and only counts are kept — per outcome, per deciding
//! rule (bounded by the policy), the top destinations in a Space-Saving summary
//! of fixed capacity, and for the limits the calls up (a min-heap of end times,
//! bounded by the concurrency) and the calls of the last minute (a queue of
//! start times, bounded by the rate).

use crate::eval::{Call, Decision, Evaluator, Outcome, Transport};
use jiff::Timestamp;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::io::BufRead;
use tollgate_ir::{CompiledPolicy, LimitMetric};

/// Settings of a replay.
#[derive(Clone, Debug)]
pub struct Config {
    /// More malformed rows than this abort the replay.
    pub max_bad_rows: u64,
    /// How many entries the top-destination lists show.
    pub top: usize,
    /// Capacity of the Space-Saving summaries behind the top lists.
    pub top_capacity: usize,
    /// How many changed calls (with `against`) are listed one by one.
    pub changed_samples: usize,
    /// How many digits of the E.164 number group destinations in the top lists.
    pub prefix_digits: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_bad_rows: 100,
            top: 10,
            top_capacity: 1024,
            changed_samples: 20,
            prefix_digits: 6,
        }
    }
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the CDR: {0}")]
    Io(#[from] std::io::Error),
    #[error("the CDR is empty: a header row is required")]
    NoHeader,
    #[error(
        "the CDR header has no `{0}` column (required: time, tenant, source, destination, duration)"
    )]
    MissingColumn(&'static str),
    #[error("the CDR header names column `{0}` twice")]
    DuplicateColumn(String),
    #[error("more than {limit} malformed rows (the last at line {line}): stopped")]
    TooManyBadRows { limit: u64, line: u64 },
}

/// A malformed row, skipped.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BadRow {
    pub line: u64,
    pub error: String,
}

/// Calls per outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outcomes {
    pub allow: u64,
    pub deny: u64,
    pub limit: u64,
}

impl Outcomes {
    fn add(&mut self, o: Outcome) {
        match o {
            Outcome::Allow => self.allow += 1,
            Outcome::Deny => self.deny += 1,
            Outcome::Limit => self.limit += 1,
        }
    }
    pub fn total(&self) -> u64 {
        self.allow + self.deny + self.limit
    }
}

/// Calls decided by one rule.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RuleCount {
    pub rule: String,
    /// Where the rule is written (from the policy's source map); `None` for built-in rules.
    pub file: Option<String>,
    pub line: Option<u32>,
    pub calls: u64,
    pub outcomes: Outcomes,
}

/// A destination group (the first digits of the E.164 number) in a top list.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TopDestination {
    /// `+` and up to `prefix_digits` digits.
    pub prefix: String,
    /// Calls counted (an upper bound when `error` > 0).
    pub calls: u64,
    /// The count may be too high by at most this much (0: exact).
    pub error: u64,
}

/// What one policy decided.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PolicyReport {
    pub tenant: String,
    pub outcomes: Outcomes,
    /// Per deciding rule, most calls first.
    pub rules: Vec<RuleCount>,
    /// Destinations most often denied or limited.
    pub top_blocked: Vec<TopDestination>,
    /// Most calls up at once (calls this policy allowed).
    pub peak_concurrent: u64,
    /// Most calls started in one minute (calls this policy allowed).
    pub peak_rate: u64,
}

/// Calls going from one outcome to another (`--against`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Transition {
    pub from: Outcome,
    pub to: Outcome,
    pub calls: u64,
}

/// One call whose outcome changes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChangedCall {
    pub line: u64,
    pub time: String,
    pub destination: String,
    pub from: Outcome,
    pub from_rule: String,
    pub to: Outcome,
    pub to_rule: String,
}

/// The differences between the old and the new policy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Changes {
    /// Calls whose outcome differs.
    pub changed: u64,
    /// Calls with the same outcome but another deciding rule.
    pub rule_changed: u64,
    /// Every (old → new) pair with calls, the unchanged ones included.
    pub transitions: Vec<Transition>,
    /// The first changed calls, in CDR order.
    pub samples: Vec<ChangedCall>,
    /// Destinations the new policy blocks and the old one allowed.
    pub newly_blocked: Vec<TopDestination>,
    /// Destinations the new policy allows and the old one blocked.
    pub newly_allowed: Vec<TopDestination>,
}

/// The result of a replay.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Data rows read (the header and blank lines not counted).
    pub rows: u64,
    /// Rows of the policy's tenant, decided.
    pub decided: u64,
    /// Rows of other tenants.
    pub skipped_other_tenant: u64,
    /// Malformed rows, skipped.
    pub bad: u64,
    pub bad_rows: Vec<BadRow>,
    /// Rows that start earlier than a row before them (see `docs/replay.md`).
    pub out_of_order: u64,
    /// The first of them.
    pub out_of_order_lines: Vec<u64>,
    /// Start of the first and the last decided call.
    pub first_call: Option<String>,
    pub last_call: Option<String>,
    pub policy: PolicyReport,
    /// With `against`: the old policy's report.
    pub against: Option<PolicyReport>,
    pub changes: Option<Changes>,
}

/// Space-Saving (Metwally, Agrawal, El Abbadi 2005): the most frequent keys
/// of a stream in fixed memory. Exact while fewer than `capacity` keys were
/// seen; afterwards every key with more than `n / capacity` occurrences is
/// kept and each count is too high by at most its `error`.
#[derive(Debug)]
struct TopK {
    capacity: usize,
    counts: HashMap<u64, (u64, u64)>,
    order: BTreeSet<(u64, u64)>,
}

impl TopK {
    fn new(capacity: usize) -> Self {
        TopK {
            capacity: capacity.max(1),
            counts: HashMap::new(),
            order: BTreeSet::new(),
        }
    }

    fn add(&mut self, key: u64) {
        if let Some((count, _)) = self.counts.get_mut(&key) {
            self.order.remove(&(*count, key));
            *count += 1;
            self.order.insert((*count, key));
        } else if self.counts.len() < self.capacity {
            self.counts.insert(key, (1, 0));
            self.order.insert((1, key));
        } else if let Some((min, evicted)) = self.order.pop_first() {
            self.counts.remove(&evicted);
            self.counts.insert(key, (min + 1, min));
            self.order.insert((min + 1, key));
        }
    }

    fn top(&self, n: usize) -> Vec<TopDestination> {
        let mut all: Vec<TopDestination> = self
            .counts
            .iter()
            .map(|(key, (count, error))| TopDestination {
                prefix: format!("+{}", key_text(*key)),
                calls: *count,
                error: *error,
            })
            .collect();
        all.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.prefix.cmp(&b.prefix)));
        all.truncate(n);
        all
    }
}

/// Up to 15 digits as a number with its length (leading zeros kept).
fn digits_key(digits: &str, n: usize) -> u64 {
    let d = &digits.as_bytes()[..digits.len().min(n).min(15)];
    let value = d
        .iter()
        .fold(0u64, |v, b| v * 10 + u64::from(b.wrapping_sub(b'0') % 10));
    (value << 4) | d.len() as u64
}

fn key_text(key: u64) -> String {
    match (key & 0xf) as usize {
        0 => String::new(),
        len => format!("{:0len$}", key >> 4),
    }
}

/// Calls up and calls of the last minute, for one counter (the tenant or a class).
#[derive(Debug, Default)]
struct Load {
    /// End times (ms) of the calls up.
    ends: BinaryHeap<Reverse<i64>>,
    /// Start times (ms) of the calls of the last minute.
    starts: VecDeque<i64>,
    peak_concurrent: u64,
    peak_rate: u64,
}

impl Load {
    /// Forgets calls ended by `now` and starts older than a minute.
    fn advance(&mut self, now: i64) {
        while self.ends.peek().is_some_and(|e| e.0 <= now) {
            self.ends.pop();
        }
        while self.starts.front().is_some_and(|s| *s <= now - 60_000) {
            self.starts.pop_front();
        }
    }
    fn concurrent(&self) -> u64 {
        self.ends.len() as u64
    }
    fn rate(&self) -> u64 {
        self.starts.len() as u64
    }
    fn admit(&mut self, start: i64, end: i64) {
        // an unanswered call (duration 0) counts for the rate, never as up
        if end > start {
            self.ends.push(Reverse(end));
        }
        self.starts.push_back(start);
        self.peak_concurrent = self.peak_concurrent.max(self.concurrent());
        self.peak_rate = self.peak_rate.max(self.rate());
    }
}

/// One policy being replayed: its evaluator, its own view of the load (only
/// the calls it allows are up) and its counts.
#[derive(Debug)]
struct Side<'p> {
    eval: Evaluator<'p>,
    tenant: Load,
    /// Classes that limits count, with their load.
    classes: Vec<(String, Load)>,
    /// Whether a concurrent or rate limit needs the load at all.
    counts_load: bool,
    outcomes: Outcomes,
    /// Rule id → its first entry in the source map, and index into `rule_counts`:
    /// allocated once, so memory does not grow as more rules decide calls.
    rule_index: HashMap<&'p str, usize>,
    rule_counts: Vec<Outcomes>,
    /// Rules without a source line (built-in rules, defaults).
    other_rules: HashMap<String, Outcomes>,
    blocked: TopK,
    call: Call,
}

impl<'p> Side<'p> {
    fn new(policy: &'p CompiledPolicy, config: &Config) -> Self {
        let mut classes: Vec<(String, Load)> = Vec::new();
        for l in &policy.limits {
            if let Some(c) = &l.class
                && l.metric != LimitMetric::Duration
                && !classes.iter().any(|(n, _)| n == c)
            {
                classes.push((c.clone(), Load::default()));
            }
        }
        let mut call = Call::new(String::new(), [0, 0, 0, 0].into(), Timestamp::UNIX_EPOCH);
        for (c, _) in &classes {
            call.class_concurrent.insert(c.clone(), 0);
            call.class_rate.insert(c.clone(), 0);
        }
        let mut rule_index = HashMap::with_capacity(policy.rules.len());
        for (i, r) in policy.rules.iter().enumerate() {
            rule_index.entry(r.id.as_str()).or_insert(i);
        }
        Side {
            rule_counts: vec![Outcomes::default(); policy.rules.len()],
            rule_index,
            other_rules: HashMap::new(),
            eval: Evaluator::new(policy),
            tenant: Load::default(),
            classes,
            counts_load: policy
                .limits
                .iter()
                .any(|l| l.metric != LimitMetric::Duration),
            outcomes: Outcomes::default(),
            blocked: TopK::new(config.top_capacity),
            call,
        }
    }

    fn decide(&mut self, row: &Row<'_>, load_time: i64, config: &Config) -> Decision<'p> {
        let call = &mut self.call;
        call.destination.clear();
        call.destination.push_str(row.destination);
        call.source = row.source;
        if call.source_country.as_deref() != row.source_country {
            call.source_country = row.source_country.map(str::to_string);
        }
        call.time = row.time;
        call.transport = row.transport;
        call.srtp = row.srtp;
        call.client_certificate = row.client_certificate;
        if self.counts_load {
            self.tenant.advance(load_time);
            call.concurrent = self.tenant.concurrent();
            call.rate = self.tenant.rate();
            for (name, load) in &mut self.classes {
                load.advance(load_time);
                if let Some(c) = call.class_concurrent.get_mut(name) {
                    *c = load.concurrent();
                }
                if let Some(r) = call.class_rate.get_mut(name) {
                    *r = load.rate();
                }
            }
        }
        let d = self.eval.decide(call, false);
        self.outcomes.add(d.outcome);
        if let Some(i) = self.rule_index.get(d.rule.as_ref()) {
            self.rule_counts[*i].add(d.outcome);
        } else if let Some(o) = self.other_rules.get_mut(d.rule.as_ref()) {
            o.add(d.outcome);
        } else {
            let mut o = Outcomes::default();
            o.add(d.outcome);
            self.other_rules.insert(d.rule.to_string(), o);
        }
        if d.outcome == Outcome::Allow {
            if self.counts_load {
                let ms = row.duration_ms.min(
                    d.max_duration
                        .map_or(i64::MAX, |s| s.saturating_mul(1000) as i64),
                );
                let end = load_time.saturating_add(ms);
                self.tenant.admit(load_time, end);
                for (name, load) in &mut self.classes {
                    if d.classes.iter().any(|c| c == name) {
                        load.admit(load_time, end);
                    }
                }
            }
        } else {
            self.blocked
                .add(digits_key(number_or_dialed(&d, row), config.prefix_digits));
        }
        d
    }

    fn report(&self, config: &Config) -> PolicyReport {
        let policy = self.eval.policy();
        let mut rules: Vec<RuleCount> = Vec::new();
        for &i in self.rule_index.values() {
            let (r, o) = (&policy.rules[i], self.rule_counts[i]);
            if o.total() == 0 {
                continue;
            }
            rules.push(RuleCount {
                rule: r.id.clone(),
                file: Some(r.file.clone()),
                line: Some(r.line),
                calls: o.total(),
                outcomes: o,
            });
        }
        rules.extend(self.other_rules.iter().map(|(rule, o)| RuleCount {
            rule: rule.clone(),
            file: None,
            line: None,
            calls: o.total(),
            outcomes: *o,
        }));
        rules.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.rule.cmp(&b.rule)));
        PolicyReport {
            tenant: policy.tenant.clone(),
            outcomes: self.outcomes,
            rules,
            top_blocked: self.blocked.top(config.top),
            peak_concurrent: self.tenant.peak_concurrent,
            peak_rate: self.tenant.peak_rate,
        }
    }
}

/// The E.164 number when the policy could read it, else the dialed digits.
fn number_or_dialed<'a>(d: &'a Decision<'_>, row: &Row<'a>) -> &'a str {
    match &d.number {
        Some(n) => n,
        None => row
            .destination
            .trim_start_matches(|c: char| !c.is_ascii_digit()),
    }
}

fn blocked(o: Outcome) -> bool {
    o != Outcome::Allow
}

/// One parsed data row.
#[derive(Debug)]
struct Row<'a> {
    time: Timestamp,
    source: std::net::IpAddr,
    destination: &'a str,
    duration_ms: i64,
    source_country: Option<&'a str>,
    transport: Transport,
    srtp: bool,
    client_certificate: bool,
}

/// Column positions.
#[derive(Debug)]
struct Columns {
    time: usize,
    tenant: usize,
    source: usize,
    destination: usize,
    duration: usize,
    source_country: Option<usize>,
    transport: Option<usize>,
    srtp: Option<usize>,
    client_certificate: Option<usize>,
    count: usize,
}

impl Columns {
    fn from_header(fields: &[String]) -> Result<Self, Error> {
        let mut seen = BTreeSet::new();
        for f in fields {
            if !f.is_empty() && !seen.insert(f.as_str()) {
                return Err(Error::DuplicateColumn(f.clone()));
            }
        }
        let find = |name: &str| fields.iter().position(|f| f == name);
        let need = |name: &'static str| find(name).ok_or(Error::MissingColumn(name));
        Ok(Columns {
            time: need("time")?,
            tenant: need("tenant")?,
            source: need("source")?,
            destination: need("destination")?,
            duration: need("duration")?,
            source_country: find("source_country"),
            transport: find("transport"),
            srtp: find("srtp"),
            client_certificate: find("client_certificate"),
            count: fields.len(),
        })
    }

    fn parse<'a>(&self, f: &'a [String]) -> Result<Row<'a>, String> {
        if f.len() != self.count {
            return Err(format!("{} fields, the header has {}", f.len(), self.count));
        }
        let time_text = f[self.time].as_str();
        let time: Timestamp = time_text.parse().map_err(|e| {
            format!(
                "time `{}` is not RFC 3339 with an offset: {e}",
                cut(time_text)
            )
        })?;
        let src = f[self.source].as_str();
        let source = src
            .parse()
            .map_err(|_| format!("source `{}` is not an IP address", cut(src)))?;
        let destination = f[self.destination].as_str();
        if destination.is_empty() {
            return Err("destination is empty".into());
        }
        let dur = f[self.duration].as_str();
        let duration_ms = parse_seconds(dur)
            .ok_or_else(|| format!("duration `{}` is not a number of seconds", cut(dur)))?;
        let opt = |i: Option<usize>| i.map(|i| f[i].as_str()).filter(|s| !s.is_empty());
        let source_country = opt(self.source_country);
        if let Some(c) = source_country
            && !(c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(format!(
                "source_country `{}` is not an ISO 3166 alpha-2 code (e.g. GB)",
                cut(c)
            ));
        }
        let transport = match opt(self.transport) {
            None => Transport::Udp,
            Some(t) if t.eq_ignore_ascii_case("udp") => Transport::Udp,
            Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
            Some(t) if t.eq_ignore_ascii_case("tls") => Transport::Tls,
            Some(t) => return Err(format!("transport `{}` is not udp, tcp or tls", cut(t))),
        };
        let flag = |name: &str, i: Option<usize>| match opt(i) {
            None => Ok(false),
            Some(v)
                if ["true", "yes", "1"]
                    .iter()
                    .any(|t| v.eq_ignore_ascii_case(t)) =>
            {
                Ok(true)
            }
            Some(v)
                if ["false", "no", "0"]
                    .iter()
                    .any(|t| v.eq_ignore_ascii_case(t)) =>
            {
                Ok(false)
            }
            Some(v) => Err(format!("{name} `{}` is not true or false", cut(v))),
        };
        Ok(Row {
            time,
            source,
            destination,
            duration_ms,
            source_country,
            transport,
            srtp: flag("srtp", self.srtp)?,
            client_certificate: flag("client_certificate", self.client_certificate)?,
        })
    }
}

/// Seconds, whole or decimal, non-negative, as milliseconds.
fn parse_seconds(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    (v.is_finite() && v < 1e12).then(|| (v * 1000.0).ceil() as i64)
}

/// Long field values are cut in messages.
fn cut(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Splits one CSV record (RFC 4180 quoting: `"a,b"`, `"say ""hi"""`; no line
/// breaks inside fields) into `fields`, reusing its strings. Returns the number
/// of fields, or an error for a quote that does not close.
fn split(line: &str, fields: &mut Vec<String>) -> Result<usize, String> {
    let mut n = 0;
    let mut next = |fields: &mut Vec<String>| -> usize {
        if n < fields.len() {
            fields[n].clear();
        } else {
            fields.push(String::new());
        }
        n += 1;
        n - 1
    };
    let mut rest = line;
    loop {
        let i = next(fields);
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut s = quoted;
            loop {
                let Some(q) = s.find('"') else {
                    return Err("a quoted field does not end".into());
                };
                fields[i].push_str(&s[..q]);
                s = &s[q + 1..];
                if let Some(after) = s.strip_prefix('"') {
                    fields[i].push('"');
                    s = after;
                } else {
                    break;
                }
            }
            match s.strip_prefix(',') {
                Some(after) => rest = after,
                None if s.is_empty() => break,
                None => return Err("text after a closing quote".into()),
            }
        } else {
            match rest.find(',') {
                Some(c) => {
                    fields[i].push_str(rest[..c].trim());
                    rest = &rest[c + 1..];
                }
                None => {
                    fields[i].push_str(rest.trim());
                    break;
                }
            }
        }
    }
    Ok(n)
}

/// A replay in progress: feed it the CDR, then take the report.
#[derive(Debug)]
pub struct Replay<'p> {
    config: Config,
    tenant: &'p str,
    new: Side<'p>,
    old: Option<Side<'p>>,
    report: Report,
    transitions: [[u64; 3]; 3],
    newly_blocked: TopK,
    newly_allowed: TopK,
    samples: Vec<ChangedCall>,
    changed: u64,
    rule_changed: u64,
    last_time: Option<i64>,
    first_call: Option<Timestamp>,
    last_call: Option<Timestamp>,
}

fn index(o: Outcome) -> usize {
    match o {
        Outcome::Allow => 0,
        Outcome::Deny => 1,
        Outcome::Limit => 2,
    }
}

const OUTCOMES: [Outcome; 3] = [Outcome::Allow, Outcome::Deny, Outcome::Limit];

impl<'p> Replay<'p> {
    /// A replay of `policy`, compared with `against` (the old policy) if given.
    pub fn new(
        policy: &'p CompiledPolicy,
        against: Option<&'p CompiledPolicy>,
        config: Config,
    ) -> Self {
        let new = Side::new(policy, &config);
        let old = against.map(|p| Side::new(p, &config));
        let empty = PolicyReport {
            tenant: policy.tenant.clone(),
            outcomes: Outcomes::default(),
            rules: Vec::new(),
            top_blocked: Vec::new(),
            peak_concurrent: 0,
            peak_rate: 0,
        };
        Replay {
            tenant: &policy.tenant,
            new,
            old,
            report: Report {
                rows: 0,
                decided: 0,
                skipped_other_tenant: 0,
                bad: 0,
                bad_rows: Vec::new(),
                out_of_order: 0,
                out_of_order_lines: Vec::new(),
                first_call: None,
                last_call: None,
                policy: empty,
                against: None,
                changes: None,
            },
            transitions: [[0; 3]; 3],
            newly_blocked: TopK::new(config.top_capacity),
            newly_allowed: TopK::new(config.top_capacity),
            samples: Vec::new(),
            changed: 0,
            rule_changed: 0,
            last_time: None,
            first_call: None,
            last_call: None,
            config,
        }
    }

    /// Reads a whole CDR. `progress` is called with the lines read so far,
    /// every 16,384 lines.
    pub fn run(
        mut self,
        mut input: impl BufRead,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Report, Error> {
        let mut buf = Vec::with_capacity(256);
        let mut fields: Vec<String> = Vec::new();
        let mut line_no = 0u64;
        let mut columns: Option<Columns> = None;
        loop {
            buf.clear();
            if input.read_until(b'\n', &mut buf)? == 0 {
                break;
            }
            line_no += 1;
            if line_no.is_multiple_of(16_384) {
                progress(line_no);
            }
            let text = match std::str::from_utf8(&buf) {
                Ok(t) => t.trim_end_matches(['\n', '\r']),
                Err(_) => {
                    if columns.is_none() {
                        return Err(Error::NoHeader);
                    }
                    self.report.rows += 1;
                    self.bad(line_no, "not UTF-8 text".into())?;
                    continue;
                }
            };
            let text = if line_no == 1 {
                text.trim_start_matches('\u{feff}')
            } else {
                text
            };
            if text.trim().is_empty() {
                continue;
            }
            if columns.is_some() {
                self.report.rows += 1;
            }
            let n = match split(text, &mut fields) {
                Ok(n) => n,
                Err(e) if columns.is_some() => {
                    self.bad(line_no, e)?;
                    continue;
                }
                Err(_) => return Err(Error::NoHeader),
            };
            let Some(cols) = &columns else {
                columns = Some(Columns::from_header(&fields[..n])?);
                continue;
            };
            if n > cols.tenant && fields[cols.tenant] != self.tenant && n == cols.count {
                self.report.skipped_other_tenant += 1;
                continue;
            }
            match cols.parse(&fields[..n]) {
                Ok(row) => self.decide(line_no, &row),
                Err(e) => self.bad(line_no, e)?,
            }
        }
        if columns.is_none() {
            return Err(Error::NoHeader);
        }
        progress(line_no);
        Ok(self.finish())
    }

    fn bad(&mut self, line: u64, error: String) -> Result<(), Error> {
        self.report.bad += 1;
        if self.report.bad > self.config.max_bad_rows {
            return Err(Error::TooManyBadRows {
                limit: self.config.max_bad_rows,
                line,
            });
        }
        self.report.bad_rows.push(BadRow { line, error });
        Ok(())
    }

    fn decide(&mut self, line: u64, row: &Row<'_>) {
        self.report.decided += 1;
        let t = row.time.as_millisecond();
        // Out of order: the load is counted as at the latest start seen.
        let load_time = match self.last_time {
            Some(last) if t < last => {
                self.report.out_of_order += 1;
                if self.report.out_of_order_lines.len() < 10 {
                    self.report.out_of_order_lines.push(line);
                }
                last
            }
            _ => t,
        };
        self.last_time = Some(load_time);
        if self.first_call.is_none_or(|f| row.time < f) {
            self.first_call = Some(row.time);
        }
        if self.last_call.is_none_or(|l| row.time > l) {
            self.last_call = Some(row.time);
        }
        let new = self.new.decide(row, load_time, &self.config);
        let Some(old_side) = &mut self.old else {
            return;
        };
        let old = old_side.decide(row, load_time, &self.config);
        self.transitions[index(old.outcome)][index(new.outcome)] += 1;
        if old.outcome == new.outcome {
            if old.rule != new.rule {
                self.rule_changed += 1;
            }
            return;
        }
        self.changed += 1;
        let key = digits_key(number_or_dialed(&new, row), self.config.prefix_digits);
        if blocked(new.outcome) && !blocked(old.outcome) {
            self.newly_blocked.add(key);
        } else if !blocked(new.outcome) && blocked(old.outcome) {
            self.newly_allowed.add(key);
        }
        if self.samples.len() < self.config.changed_samples {
            self.samples.push(ChangedCall {
                line,
                time: row.time.to_string(),
                destination: row.destination.to_string(),
                from: old.outcome,
                from_rule: old.rule.into_owned(),
                to: new.outcome,
                to_rule: new.rule.into_owned(),
            });
        }
    }

    fn finish(mut self) -> Report {
        let c = &self.config;
        self.report.policy = self.new.report(c);
        self.report.first_call = self.first_call.map(|t| t.to_string());
        self.report.last_call = self.last_call.map(|t| t.to_string());
        if let Some(old) = &self.old {
            self.report.against = Some(old.report(c));
            let mut transitions = Vec::new();
            for from in OUTCOMES {
                for to in OUTCOMES {
                    let calls = self.transitions[index(from)][index(to)];
                    if calls > 0 {
                        transitions.push(Transition { from, to, calls });
                    }
                }
            }
            self.report.changes = Some(Changes {
                changed: self.changed,
                rule_changed: self.rule_changed,
                transitions,
                samples: std::mem::take(&mut self.samples),
                newly_blocked: self.newly_blocked.top(c.top),
                newly_allowed: self.newly_allowed.top(c.top),
            });
        }
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_quotes() {
        let mut f = Vec::new();
        assert_eq!(
            split(r#"a,"b"x,c"#, &mut f),
            Err("text after a closing quote".into())
        );
        let n = split(r#"a,"b,c","say ""hi""",,x"#, &mut f).unwrap();
        assert_eq!(&f[..n], ["a", "b,c", "say \"hi\"", "", "x"]);
        assert!(split(r#"a,"b"#, &mut f).is_err());
    }

    #[test]
    fn top_k_is_exact_below_capacity_and_bounded_above() {
        let mut t = TopK::new(3);
        for k in ["1", "1", "1", "2", "2", "3"] {
            t.add(digits_key(k, 6));
        }
        let top = t.top(3);
        assert_eq!(top.iter().map(|d| d.calls).collect::<Vec<_>>(), [3, 2, 1]);
        assert!(top.iter().all(|d| d.error == 0));
        t.add(digits_key("4", 6)); // evicts 3 (count 1): 4 gets 2 with error 1
        let four = t.top(3).into_iter().find(|d| d.prefix == "+4").unwrap();
        assert_eq!((four.calls, four.error), (2, 1));
        assert_eq!(t.counts.len(), 3);
    }

    #[test]
    fn digit_keys_keep_leading_zeros_and_cut() {
        assert_eq!(key_text(digits_key("4420712345", 6)), "442071");
        assert_eq!(key_text(digits_key("007", 6)), "007");
        assert_eq!(key_text(digits_key("", 6)), "");
    }

    #[test]
    fn load_counts_calls_up_and_of_the_last_minute() {
        let mut l = Load::default();
        l.advance(0);
        l.admit(0, 30_000);
        l.advance(10_000);
        l.admit(10_000, 100_000);
        assert_eq!((l.concurrent(), l.rate()), (2, 2));
        l.advance(30_000); // the first call ended
        assert_eq!((l.concurrent(), l.rate()), (1, 2));
        l.advance(60_000); // the first start is a minute old
        assert_eq!((l.concurrent(), l.rate()), (1, 1));
        assert_eq!((l.peak_concurrent, l.peak_rate), (2, 2));
    }
}
