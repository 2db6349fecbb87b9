//! The compiled policy (the IR): the normalized, deterministic form of one tenant's
//! policy. It is the contract between the language (which produces it) and
//! the operator and SBC backends (which enforce it). It knows nothing of the
//! syntax it came from beyond the source map in [`CompiledPolicy::rules`].
//!
//! Every table is sorted, so the same policy always serializes to the same
//! bytes.

//!
//! This crate depends on serde and schemars only. The `kube` feature adds the
//! CEL validation rules and list merge strategies of the custom resources
//! (`tollgate-crds` turns it on); without it the same types derive a plain
//! JSON schema, so the language and its fuzzer build without k8s-openapi.

pub mod chunks;
mod schema;
pub mod yaml;

#[cfg(feature = "kube")]
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// RFC 1123 DNS label (without the length limit, which the schema states separately).
pub const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// One tenant's policy, fully resolved (imports applied, countries and number
/// classes expanded to E.164 prefixes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(KubeSchema))]
#[cfg_attr(not(feature = "kube"), derive(JsonSchema))]
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("self.destinations.all(d, !has(d.window) || self.windows.exists(w, w.name == d.window.name))").message("every destinations[].window.name must name a window in windows").field_path(".destinations")))]
#[serde(rename_all = "camelCase")]
pub struct CompiledPolicy {
    /// Tenant name (a DNS label), as declared by `tenant NAME`.
    #[schemars(length(min = 1, max = 63), pattern(crate::DNS_LABEL_PATTERN))]
    pub tenant: String,
    /// The tenant's home country (ISO 3166-1 alpha-2): decides which calls are national and which emergency numbers always pass.
    #[schemars(pattern(r"^[A-Z]{2}$"))]
    pub home_country: String,
    /// The numbering data the prefixes were expanded from (e.g. `libphonenumber 9.0.33`).
    #[schemars(length(max = 128))]
    pub numbering_plan: String,
    /// Emergency numbers of the home country, dialed as short codes. They are always allowed: no rule, limit or response can block them.
    #[schemars(length(min = 1, max = 16), inner(pattern(r"^[0-9]{1,15}$")))]
    pub emergency_numbers: Vec<String>,
    /// Destination rules by E.164 prefix (digits without `+`; the empty prefix is the international default). Longest prefix wins; sorted by prefix, then window.
    #[schemars(length(max = 10000))]
    pub destinations: Vec<DestinationRule>,
    /// Which destination class a number belongs to, by longest prefix, for the classes that limits and responses name. Numbers matching none are `national` (home country prefixes) or `international`.
    #[schemars(length(max = 10000))]
    pub classes: Vec<ClassPrefix>,
    /// Which SIP sources may place calls for this tenant.
    pub sources: SourcePolicy,
    /// Named time windows that destination rules refer to. Names are unique.
    #[schemars(length(max = 16))]
    #[cfg_attr(feature = "kube", x_kube(merge_strategy = ListMerge::Map(vec!["name".into()])))]
    pub windows: Vec<TimeWindow>,
    /// Concurrent-call, call-rate and duration limits.
    #[schemars(length(max = 64))]
    pub limits: Vec<Limit>,
    /// What a limit breach or an anomaly alert triggers.
    #[schemars(length(max = 64))]
    pub responses: Vec<Response>,
    /// Transport and media security requirements.
    pub crypto: CryptoPolicy,
    /// Source map: every rule id used above, with the file position it was written at.
    #[schemars(length(max = 20000))]
    pub rules: Vec<RuleSource>,
}

/// Allow or deny.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

/// A destination rule: calls whose E.164 number starts with `prefix` get `action`, if the window condition holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRule {
    /// E.164 digits without `+`, at most 15; empty for the international default.
    #[schemars(length(max = 15), pattern(r"^[0-9]*$"))]
    pub prefix: String,
    /// What happens to a matching call.
    pub action: Verdict,
    /// Id of the rule that produced this entry (see `rules`).
    #[schemars(length(min = 1, max = 256))]
    pub rule: String,
    /// When set, the entry applies only while the condition holds; otherwise lookup continues with the next shorter prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowCondition>,
}

/// A condition on a named window.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct WindowCondition {
    /// Name of a window in `windows`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// `during`: applies while the window is open; `outside`: while it is closed.
    pub when: WindowWhen,
}

/// Whether a rule applies inside or outside its window.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum WindowWhen {
    During,
    Outside,
}

/// A prefix that belongs to a destination class.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClassPrefix {
    /// E.164 digits without `+`.
    #[schemars(length(min = 1, max = 15), pattern(r"^[0-9]+$"))]
    pub prefix: String,
    /// Class name, e.g. `premium-rate`, `national`.
    #[schemars(length(min = 1, max = 63))]
    pub class: String,
}

/// Source rules: the SBC maps a call's source address to this tenant only through them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourcePolicy {
    /// Networks by longest match; a source matching none is rejected. Sorted by network.
    #[schemars(length(max = 10000))]
    pub networks: Vec<SourceNetwork>,
    /// Geo-blocking by the source's country (GeoIP at the SBC); trunks are exempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<GeoPolicy>,
}

/// A network (CIDR) and what it may do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceNetwork {
    /// Canonical CIDR (host bits zero), IPv4 or IPv6.
    #[schemars(length(min = 3, max = 43))]
    pub cidr: String,
    /// Allow or deny calls from this network.
    pub action: Verdict,
    /// Name of the trusted trunk this network belongs to, if any (trunks skip geo-blocking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub trunk: Option<String>,
    /// Id of the rule that produced this entry.
    #[schemars(length(min = 1, max = 256))]
    pub rule: String,
}

/// Country-based source filtering.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeoPolicy {
    /// `deny`: reject sources in `countries`; `allowOnly`: reject sources outside `countries`.
    pub mode: GeoMode,
    /// ISO 3166-1 alpha-2 codes, sorted.
    #[schemars(length(min = 1, max = 250), inner(pattern(r"^[A-Z]{2}$")))]
    pub countries: Vec<String>,
    /// Id of the rule that produced this policy.
    #[schemars(length(min = 1, max = 256))]
    pub rule: String,
}

/// How the geo list is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum GeoMode {
    Deny,
    AllowOnly,
}

/// A named weekly time window in an IANA zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeWindow {
    /// Window name.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// IANA time zone the times are read in (e.g. `America/New_York`); DST is applied by the zone's rules.
    #[schemars(length(min = 1, max = 64))]
    pub zone: String,
    /// Open periods; the window is open when any of them is.
    #[schemars(length(min = 1, max = 32))]
    pub spans: Vec<WeeklySpan>,
    /// Id of the rule that produced this window.
    #[schemars(length(min = 1, max = 256))]
    pub rule: String,
}

/// An open period: on each listed day, from `start` to `end` local time (minutes after midnight; `end` may be 1440). When `end <= start` the period runs past midnight into the next day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeeklySpan {
    /// Days the period starts on: `mon` … `sun`.
    #[schemars(length(min = 1, max = 7))]
    pub days: Vec<Weekday>,
    /// Start, minutes after local midnight (0–1439).
    #[schemars(range(max = 1439))]
    pub start_minute: u16,
    /// End, minutes after local midnight (1–1440).
    #[schemars(range(min = 1, max = 1440))]
    pub end_minute: u16,
}

/// Day of the week.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// What a limit measures.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum LimitMetric {
    /// Calls up at the same time.
    Concurrent,
    /// New calls per minute.
    Rate,
    /// Length of one call, in seconds.
    Duration,
}

/// A limit for the tenant or one destination class. Calls beyond `critical` are rejected; `warning` only alerts. For `duration`, `critical` is the maximum call length in seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(KubeSchema))]
#[cfg_attr(not(feature = "kube"), derive(JsonSchema))]
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("has(self.warning) || has(self.critical)").message("a limit needs warning or critical")))]
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("!has(self.warning) || !has(self.critical) || self.warning < self.critical").message("limit warning must be lower than critical")))]
#[serde(rename_all = "camelCase")]
pub struct Limit {
    /// What is measured.
    pub metric: LimitMetric,
    /// Destination class the limit counts; absent for the whole tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub class: Option<String>,
    /// Level that raises a warning alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<u64>,
    /// Level at which the SBC rejects further calls (for duration: ends the call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<u64>,
    /// Id of the rule that produced this limit.
    #[schemars(length(min = 1, max = 256))]
    pub rule: String,
}

/// What sets off a response.
///
/// Its JSON schema is written by hand in [`crate::schema`]: Kubernetes needs
/// a structural schema, which an internally tagged enum does not derive to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ResponseTrigger {
    /// A limit crossed its warning or critical level.
    #[serde(rename_all = "camelCase")]
    Breach {
        /// Limit metric.
        metric: LimitMetric,
        /// Destination class of the limit; absent for the tenant-wide limit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        class: Option<String>,
        /// Level crossed.
        level: AlertLevel,
    },
    /// An anomaly alert (from Alertmanager) of this kind.
    #[serde(rename_all = "camelCase")]
    Anomaly {
        /// `new-destination`, `unusual-hours`, `traffic` or `any`.
        anomaly: String,
    },
}

/// Alert level.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AlertLevel {
    Warning,
    Critical,
}

/// What a response does.
///
/// Its JSON schema is written by hand in [`crate::schema`] (see [`ResponseTrigger`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ResponseAction {
    /// Only alert; nothing is blocked.
    Alert,
    /// Block calls to these destination classes.
    #[serde(rename_all = "camelCase")]
    BlockClasses {
        /// Destination classes to block.
        classes: Vec<String>,
    },
    /// Block every call of the tenant (emergency numbers still pass).
    BlockTenant,
}

/// A declared response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(KubeSchema))]
#[cfg_attr(not(feature = "kube"), derive(JsonSchema))]
#[cfg_attr(feature = "kube", x_kube(validation = Rule::new("!(has(self.holdSeconds) && has(self.untilAcknowledged) && self.untilAcknowledged)").message("holdSeconds and untilAcknowledged are mutually exclusive")))]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// What sets it off.
    pub trigger: ResponseTrigger,
    /// What it does.
    pub action: ResponseAction,
    /// How long a block holds, in seconds; absent with `untilAcknowledged` or for alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_seconds: Option<u64>,
    /// A block holds until a person acknowledges it.
    #[serde(default)]
    pub until_acknowledged: bool,
    /// Id of the rule that produced this response.
    #[schemars(length(min = 1, max = 256))]
    pub rule: String,
}

/// Security requirements; each `true` makes the SBC reject calls that do not meet it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CryptoPolicy {
    /// Signalling must arrive over TLS.
    pub require_tls: bool,
    /// The offer must use SRTP (RTP/SAVP or RTP/SAVPF with crypto or DTLS).
    pub require_srtp: bool,
    /// The TLS client must present a certificate the SBC verifies.
    pub require_client_certificate: bool,
}

/// Where a rule was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleSource {
    /// Rule id, e.g. `dst:country:FR`, `src:198.51.100.0/24`, `limit:concurrent`.
    #[schemars(length(min = 1, max = 256))]
    pub id: String,
    /// Path of the policy file, relative to the compile root.
    #[schemars(length(max = 1024))]
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// The statement as written (one line, comments stripped).
    #[schemars(length(max = 1024))]
    pub text: String,
}
