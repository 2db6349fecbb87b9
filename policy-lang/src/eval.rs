//! The evaluator: what a compiled policy decides for one call, with the rule
//! that decided and the trace of rules considered. These are the semantics the
//! SBC enforces; the Kamailio backend is tested against this function.
//!
//! ## Order of evaluation
//! 1. **Source.** The longest network of the policy containing the source
//!    address decides whose call it is: no match means the call is not this
//!    tenant's (`src:unknown`, denied).
//! 2. **Emergency.** A dialed emergency number of the home country (or 112,
//!    911), written with digits and separators (no letter: letters are
//!    keypad digits to libphonenumber), is allowed now, from any of the tenant's networks (even a denied
//!    one): a deny network, geo-blocking, blocks, crypto, destination rules and
//!    limits never apply to it. Otherwise a `deny` network denies.
//! 3. **Number.** The dialed destination is read as E.164 digits the way
//!    libphonenumber reads it for the home country (see [`crate::dialling`]):
//!    a string that is not a number is denied (`dst:invalid`), a number that
//!    libphonenumber may read otherwise than Tollgate could be sure of is
//!    denied too (`dst:unreadable`).
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

pub use crate::dialling::Number;
use crate::dialling::Reading;
use crate::window;
use ipnet::IpNet;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use tollgate_ir::{
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
    /// E.164 digits already read, looked up as they are: what the SBC's
    /// destination tree is asked after the reading (the agent's probes of a
    /// trial SBC's trees use it). `None`: `destination` is read as dialled.
    pub e164: Option<String>,
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
            e164: None,
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
///
/// Its rule ids and classes borrow from the policy (`'p`), so that deciding
/// copies no text: [`Decision::into_owned`] gives a decision that outlives
/// the policy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Decision<'p> {
    pub outcome: Outcome,
    pub stage: Stage,
    /// Id of the deciding rule (see the policy's source map), or a built-in id:
    /// `dst:invalid`, `dst:unreadable`, `dst:emergency`, `src:unknown`, `block:tenant`, `block:class:NAME`.
    pub rule: Cow<'p, str>,
    /// The destination as E.164 digits, when it could be read (held inline:
    /// see [`Number`]).
    pub number: Option<Number>,
    /// The destination's classes: `national` or `international`, then its
    /// number classes, sorted. Borrowed when it has no number class; a
    /// number in a number class gets a copy of the list (pointers into the
    /// policy, no text).
    pub classes: Cow<'p, [Cow<'p, str>]>,
    /// Responses (rule ids) whose trigger this call crossed.
    pub responses: Vec<Cow<'p, str>>,
    /// The longest call allowed, in seconds, if a duration limit applies.
    pub max_duration: Option<u64>,
    /// The rules considered, when a trace was asked for.
    pub trace: Vec<Step>,
}

impl Decision<'_> {
    /// The same decision owning its text.
    pub fn into_owned(self) -> Decision<'static> {
        let owned = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        Decision {
            outcome: self.outcome,
            stage: self.stage,
            rule: owned(self.rule),
            number: self.number,
            classes: Cow::Owned(self.classes.iter().cloned().map(owned).collect()),
            responses: self.responses.into_iter().map(owned).collect(),
            max_duration: self.max_duration,
            trace: self.trace,
        }
    }
}

/// The classes of a number of the home country that no number class names
/// (see [`Evaluator::classes_of`]).
const NATIONAL: &[Cow<'static, str>] = &[Cow::Borrowed("national")];
/// The classes of a number that no class prefix names.
const INTERNATIONAL: &[Cow<'static, str>] = &[Cow::Borrowed("international")];
/// The classes of a decision taken before the number is read.
const NO_CLASSES: &[Cow<'static, str>] = &[];

/// A policy prepared for fast decisions (indexes built once).
#[derive(Debug)]
pub struct Evaluator<'p> {
    policy: &'p CompiledPolicy,
    /// The destination entries by prefix key (see [`prefix_key`]), an
    /// open-addressing table (see [`DestSlot`]).
    dest_slots: Vec<DestSlot<'p>>,
    /// log2 of `dest_slots.len()`.
    dest_slot_bits: u32,
    /// Per prefix: `(start, len)` of its entries in `dest_order`.
    dest_groups: Vec<(u32, u32)>,
    /// Indexes into `policy.destinations`, grouped by prefix, in evaluation order.
    dest_order: Vec<u32>,
    /// Bit `n` set: some destination prefix has `n` digits.
    dest_lengths: u16,
    /// A one-hash Bloom filter of the destination keys (16 bits per key, at
    /// least 1024): most lengths of a number have no entry, and the filter
    /// answers that from cache instead of a probe into a large table.
    dest_filter: Vec<u64>,
    /// log2 of the filter's size in bits.
    dest_filter_bits: u32,
    /// Per entry of `policy.destinations`: its window (index into `zones`), if any.
    dest_windows: Vec<Option<usize>>,
    /// Class prefix key → the classes of a number whose longest class prefix
    /// it is (those of every class prefix it begins with, as
    /// [`Self::classes_of`] gives them).
    classes: FastMap<u64, Cow<'p, [Cow<'p, str>]>>,
    class_lengths: u16,
    /// (address with host bits cleared, prefix length + 256 for IPv6) → index into `policy.sources.networks`.
    networks: FastMap<(u128, u16), usize>,
    network_lengths_v4: Vec<u8>,
    network_lengths_v6: Vec<u8>,
    /// Per window of `policy.windows`: its zone, if the tz database knows it.
    zones: Vec<Option<TimeZone>>,
    /// The home country (ISO code): how dialled numbers are read.
    home: String,
}

/// The evaluator's tables are keyed by integers built from the policy's
/// prefixes and networks; a multiplicative hash (as in FxHash) is enough for
/// them and much cheaper than SipHash. The keys are the policy's, so a caller
/// cannot fill the tables with colliding keys: a lookup of any number costs at
/// most the longest probe sequence the policy itself produces.
#[derive(Debug, Default, Clone, Copy)]
struct MulHasher(u64);

impl std::hash::Hasher for MulHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<MulHasher>>;

/// One prefix of the destination table, in a slot of an open-addressing
/// table (linear probing, at most four fifths full) read with one memory
/// access in the common case: a prefix with one entry and no window is
/// decided from the slot itself (`simple`), without going to `dest_groups`,
/// `dest_order` and `policy.destinations` (three more cache misses on a
/// large policy). 32 bytes, aligned so that a slot never straddles two cache
/// lines.
#[derive(Debug, Clone, Copy)]
#[repr(align(32))]
struct DestSlot<'p> {
    /// The prefix key, or [`EMPTY_SLOT`].
    key: u64,
    /// The rule of the prefix's entry when `simple` (else unused).
    rule: &'p str,
    /// Index into `dest_groups`: every entry of the prefix.
    group: u32,
    /// The action of the prefix's entry when `simple`.
    action: Verdict,
    /// The prefix has exactly one entry, and it has no window condition.
    simple: bool,
}

/// No prefix key is all ones (a key is at most 54 bits: see [`prefix_key`]).
const EMPTY_SLOT: u64 = u64::MAX;

/// The home slot of a prefix key in a table of `2^bits` slots (Fibonacci
/// hashing: the top bits of the product).
fn slot_of(key: u64, bits: u32) -> usize {
    if bits == 0 {
        return 0;
    }
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as usize
}

/// A prefix of at most 15 digits as one integer: its value and its length
/// (so `"4"` and `"04"` differ). `None` for text that is not digits.
fn prefix_key(digits: &str) -> Option<u64> {
    if digits.len() > 15 {
        return None;
    }
    let mut value = 0u64;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u64::from(b - b'0');
    }
    Some((value << 4) | digits.len() as u64)
}

/// The keys of every prefix of `number` (E.164 digits, at most 15): `keys[n]`
/// is the key of the first `n` digits.
fn prefix_keys(number: &[u8]) -> ([u64; 16], usize) {
    let mut keys = [0u64; 16];
    let mut value = 0u64;
    let len = number.len().min(15);
    for (i, b) in number.iter().copied().take(len).enumerate() {
        let d = b.wrapping_sub(b'0');
        // (a digit is itself: the division only for other bytes)
        value = value * 10 + u64::from(if d < 10 { d } else { d % 10 });
        keys[i + 1] = (value << 4) | (i as u64 + 1);
    }
    (keys, len)
}

/// The keys of every prefix of the digits of prefix key `key` (as
/// [`prefix_keys`] gives them for those digits), and their number.
fn keys_of_key(key: u64) -> ([u64; 16], usize) {
    let len = (key & 0xf) as usize;
    let mut value = key >> 4;
    let mut keys = [0u64; 16];
    for n in (1..=len).rev() {
        keys[n] = (value << 4) | n as u64;
        value /= 10;
    }
    (keys, len)
}

/// The classes of a number whose prefix keys are `keys[..=len]`: those of
/// every class prefix it begins with, sorted, after `national` (a national
/// prefix) or `international`.
fn class_list<'p>(
    by_prefix: &FastMap<u64, Vec<&'p str>>,
    lengths: u16,
    keys: &[u64; 16],
    len: usize,
) -> Cow<'p, [Cow<'p, str>]> {
    let mut out: Vec<&'p str> = Vec::new();
    let mut national = false;
    for n in (1..=len).rev() {
        if lengths & (1 << n) == 0 {
            continue;
        }
        if let Some(cs) = by_prefix.get(&keys[n]) {
            for c in cs {
                if *c == "national" {
                    national = true;
                } else if !out.contains(c) {
                    out.push(c);
                }
            }
        }
    }
    if out.is_empty() {
        return Cow::Borrowed(if national { NATIONAL } else { INTERNATIONAL });
    }
    out.sort();
    let first = if national {
        "national"
    } else {
        "international"
    };
    Cow::Owned(
        std::iter::once(first)
            .chain(out)
            .map(Cow::Borrowed)
            .collect(),
    )
}

/// The lengths `n` in `0..=len` whose bit is set in `lengths`, longest
/// first (`len` at most 15).
fn lengths_down(lengths: u16, len: usize) -> impl Iterator<Item = usize> {
    let mut bits = u32::from(lengths) & ((2u32 << len.min(15)) - 1);
    std::iter::from_fn(move || {
        let n = bits.checked_ilog2()?; // the highest bit set
        bits &= !(1 << n);
        Some(n as usize)
    })
}

/// The filter bit of a prefix key (Fibonacci hashing to `bits` bits).
fn filter_bit(key: u64, bits: u32) -> usize {
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as usize
}

/// The network (host bits cleared) of `addr` at `len` bits, as a table key.
fn network_key(addr: IpAddr, len: u8) -> (u128, u16) {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let masked = if len == 0 {
                0
            } else {
                bits & (u32::MAX << (32 - u32::from(len.min(32))))
            };
            (u128::from(masked), u16::from(len))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let masked = if len == 0 {
                0
            } else {
                bits & (u128::MAX << (128 - u32::from(len.min(128))))
            };
            (masked, 256 + u16::from(len))
        }
    }
}

/// Whether the dialed text, its digits taken alone, is `number`. A text
/// with a letter never is: libphonenumber (and so a carrier) reads letters
/// as keypad digits (`911abc` is +49 911 222 from Germany), so such a text
/// is not the short code it seems to hold.
fn digits_are(dialed: &str, number: &str) -> bool {
    !dialed.bytes().any(|b| b.is_ascii_alphabetic())
        && dialed.bytes().filter(u8::is_ascii_digit).eq(number.bytes())
}
/// The dialled destination as E.164 digits for a tenant of home country
/// `home`: see [`crate::dialling::read`] (read as libphonenumber reads it,
/// or refused).
pub fn normalize(dialed: &str, home: &str) -> Reading {
    crate::dialling::read(dialed, home)
}

impl<'p> Evaluator<'p> {
    pub fn new(policy: &'p CompiledPolicy) -> Self {
        // destinations: grouped by prefix, each group in policy order
        let mut keyed: Vec<(u64, u32)> = policy
            .destinations
            .iter()
            .enumerate()
            .filter_map(|(i, d)| Some((prefix_key(&d.prefix)?, i as u32)))
            .collect();
        keyed.sort_by_key(|(k, _)| *k); // stable: policy order within a prefix
        // one group per prefix key: (key, start, len) in `keyed`
        let mut groups: Vec<(u64, u32, u32)> = Vec::new();
        let mut dest_lengths = 0u16;
        for (pos, (key, _)) in keyed.iter().enumerate() {
            dest_lengths |= 1 << (key & 0xf);
            match groups.last_mut() {
                Some((k, _, n)) if k == key => *n += 1,
                _ => groups.push((*key, pos as u32, 1)),
            }
        }
        let dest_filter_bits = (groups.len() * 16)
            .max(1024)
            .next_power_of_two()
            .trailing_zeros();
        let mut dest_filter = vec![0u64; (1usize << dest_filter_bits) / 64];
        for (key, _, _) in &groups {
            let bit = filter_bit(*key, dest_filter_bits);
            dest_filter[bit / 64] |= 1 << (bit % 64);
        }
        let dest_slot_bits = (groups.len() * 5 / 4 + 1)
            .next_power_of_two()
            .trailing_zeros();
        let empty = DestSlot {
            key: EMPTY_SLOT,
            rule: "",
            group: 0,
            action: Verdict::Deny,
            simple: false,
        };
        let mut dest_slots = vec![empty; 1 << dest_slot_bits];
        let mask = dest_slots.len() - 1;
        for (g, (key, start, len)) in groups.iter().enumerate() {
            let first = &policy.destinations[keyed[*start as usize].1 as usize];
            let mut at = slot_of(*key, dest_slot_bits);
            while dest_slots[at].key != EMPTY_SLOT {
                at = (at + 1) & mask;
            }
            dest_slots[at] = DestSlot {
                key: *key,
                rule: &first.rule,
                group: g as u32,
                action: first.action,
                simple: *len == 1 && first.window.is_none(),
            };
        }
        let dest_groups = groups.iter().map(|(_, s, n)| (*s, *n)).collect();
        let dest_order = keyed.into_iter().map(|(_, i)| i).collect();
        let window_index: HashMap<&str, usize> = policy
            .windows
            .iter()
            .enumerate()
            .map(|(i, w)| (w.name.as_str(), i))
            .collect();
        let dest_windows = policy
            .destinations
            .iter()
            .map(|d| {
                d.window
                    .as_ref()
                    .and_then(|w| window_index.get(w.name.as_str()).copied())
            })
            .collect();
        let mut by_prefix: FastMap<u64, Vec<&str>> = FastMap::default();
        let mut class_lengths = 0u16;
        for c in &policy.classes {
            if let Some(key) = prefix_key(&c.prefix) {
                class_lengths |= 1 << (key & 0xf);
                by_prefix.entry(key).or_default().push(c.class.as_str());
            }
        }
        let classes = by_prefix
            .keys()
            .map(|key| {
                let (keys, len) = keys_of_key(*key);
                (*key, class_list(&by_prefix, class_lengths, &keys, len))
            })
            .collect();
        let mut networks = FastMap::default();
        let (mut v4, mut v6) = (BTreeSet::new(), BTreeSet::new());
        for (i, n) in policy.sources.networks.iter().enumerate() {
            if let Ok(net) = n.cidr.parse::<IpNet>() {
                networks.insert(network_key(net.network(), net.prefix_len()), i);
                match net {
                    IpNet::V4(_) => v4.insert(net.prefix_len()),
                    IpNet::V6(_) => v6.insert(net.prefix_len()),
                };
            }
        }
        let zones = policy
            .windows
            .iter()
            .map(|w| TimeZone::get(&w.zone).ok())
            .collect();
        let home = policy.home_country.clone();
        Evaluator {
            policy,
            dest_slots,
            dest_slot_bits,
            dest_groups,
            dest_order,
            dest_lengths,
            dest_filter,
            dest_filter_bits,
            dest_windows,
            classes,
            class_lengths,
            networks,
            network_lengths_v4: v4.into_iter().rev().collect(),
            network_lengths_v6: v6.into_iter().rev().collect(),
            zones,
            home,
        }
    }

    pub fn policy(&self) -> &'p CompiledPolicy {
        self.policy
    }

    /// The decision for `call`; `trace` also records every rule considered.
    pub fn decide(&self, call: &Call, trace: bool) -> Decision<'p> {
        let mut steps: Vec<Step> = Vec::new();
        // the notes are only written when a trace is asked for
        macro_rules! note {
            ($rule:expr, $($text:tt)+) => {
                if trace {
                    steps.push(Step {
                        rule: ($rule).to_string(),
                        note: format!($($text)+),
                    });
                }
            };
        }
        let decision = |outcome, stage, rule: Cow<'p, str>, number, classes, steps| Decision {
            outcome,
            stage,
            rule,
            number,
            classes,
            responses: Vec::new(),
            max_duration: None,
            trace: steps,
        };

        // 1. source
        let Some(net) = self.network(call.source) else {
            note!("src:unknown", "no source network contains {}", call.source);
            return decision(
                Outcome::Deny,
                Stage::Source,
                "src:unknown".into(),
                None,
                Cow::Borrowed(NO_CLASSES),
                steps,
            );
        };
        note!(
            net.rule,
            "source {} is in {} ({})",
            call.source,
            net.cidr,
            verdict(net.action)
        );

        // 2. emergency: for every source of the tenant, even a denied one
        if !call.destination.trim_start().starts_with('+')
            && let Some(e) = self
                .policy
                .emergency_numbers
                .iter()
                .find(|e| digits_are(&call.destination, e))
        {
            note!(
                "dst:emergency",
                "{e} is an emergency number: always allowed"
            );
            return decision(
                Outcome::Allow,
                Stage::Emergency,
                "dst:emergency".into(),
                None,
                Cow::Borrowed(NO_CLASSES),
                steps,
            );
        }
        if net.action == Verdict::Deny {
            return decision(
                Outcome::Deny,
                Stage::Source,
                net.rule.as_str().into(),
                None,
                Cow::Borrowed(NO_CLASSES),
                steps,
            );
        }

        // 3. the number
        let reading = match &call.e164 {
            Some(n) => Reading::Number(Number::new(n)),
            None => crate::dialling::read_number(&call.destination, &self.home, trace),
        };
        let number = match reading {
            Reading::Number(n) => n,
            Reading::NotANumber(why) => {
                note!(
                    "dst:invalid",
                    "`{}` is not a telephone number: {why}",
                    call.destination
                );
                return decision(
                    Outcome::Deny,
                    Stage::Number,
                    "dst:invalid".into(),
                    None,
                    Cow::Borrowed(NO_CLASSES),
                    steps,
                );
            }
            Reading::Unreadable(why) => {
                note!(
                    "dst:unreadable",
                    "`{}` cannot be read with certainty: {why}",
                    call.destination
                );
                return decision(
                    Outcome::Deny,
                    Stage::Number,
                    "dst:unreadable".into(),
                    None,
                    Cow::Borrowed(NO_CLASSES),
                    steps,
                );
            }
        };
        let (keys, len) = prefix_keys(number.as_bytes());
        let classes = self.classes_of(&keys, len);

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
                note!(geo.rule, "source country {country} is geo-blocked");
                return decision(
                    Outcome::Deny,
                    Stage::Geo,
                    geo.rule.as_str().into(),
                    Some(number),
                    classes,
                    steps,
                );
            }
            note!(geo.rule, "source country {country} passes");
        }

        // 5. active blocks
        if call.blocked_tenant {
            note!("block:tenant", "a response in force blocks the tenant");
            return decision(
                Outcome::Deny,
                Stage::Block,
                "block:tenant".into(),
                Some(number),
                classes,
                steps,
            );
        }
        if !call.blocked_classes.is_empty()
            && let Some(c) = classes
                .iter()
                .find(|c| call.blocked_classes.contains(c.as_ref()))
        {
            let rule = format!("block:class:{c}");
            note!(rule, "a response in force blocks class {c}");
            return decision(
                Outcome::Deny,
                Stage::Block,
                Cow::Owned(rule),
                Some(number),
                classes,
                steps,
            );
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
            note!(rule, "{why}");
            return decision(
                Outcome::Deny,
                Stage::Crypto,
                rule.into(),
                Some(number),
                classes,
                steps,
            );
        }

        // 7. destination
        let Some((rule, action)) =
            self.destination(&keys, len, call.time, trace.then_some(&mut steps))
        else {
            // unreachable with a well-formed policy (the root entry always applies); fail closed
            return decision(
                Outcome::Deny,
                Stage::Destination,
                "dst:international".into(),
                Some(number),
                classes,
                steps,
            );
        };
        if action == Verdict::Deny {
            return decision(
                Outcome::Deny,
                Stage::Destination,
                rule.into(),
                Some(number),
                classes,
                steps,
            );
        }

        // 8. limits
        let mut d = decision(
            Outcome::Allow,
            Stage::Destination,
            rule.into(),
            Some(number),
            classes,
            Vec::new(),
        );
        let mut limited: Option<&'p str> = None;
        for l in &self.policy.limits {
            let applies = l
                .class
                .as_ref()
                .is_none_or(|c| d.classes.iter().any(|k| k == c));
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
                note!(l.rule, "{count} is below the limit");
                continue;
            };
            note!(l.rule, "{count} reaches the {} level", level_name(level));
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
                    d.responses.push(Cow::Borrowed(&r.rule));
                }
            }
            if level == AlertLevel::Critical && limited.is_none() {
                limited = Some(&l.rule);
            }
        }
        d.trace = steps;
        if let Some(rule) = limited {
            d.outcome = Outcome::Limit;
            d.stage = Stage::Limit;
            d.rule = Cow::Borrowed(rule);
        }
        d
    }

    fn network(&self, addr: IpAddr) -> Option<&'p tollgate_ir::SourceNetwork> {
        let lengths = match addr {
            IpAddr::V4(_) => &self.network_lengths_v4,
            IpAddr::V6(_) => &self.network_lengths_v6,
        };
        lengths.iter().find_map(|len| {
            self.networks
                .get(&network_key(addr, *len))
                .map(|i| &self.policy.sources.networks[*i])
        })
    }

    /// The classes of the number whose prefix keys are `keys[..=len]`: those
    /// of its longest class prefix, which holds those of every shorter one.
    fn classes_of(&self, keys: &[u64; 16], len: usize) -> Cow<'p, [Cow<'p, str>]> {
        // (a class prefix is never empty: length 0 is not looked up)
        for n in lengths_down(self.class_lengths & !1, len) {
            if let Some(cs) = self.classes.get(&keys[n]) {
                return cs.clone();
            }
        }
        Cow::Borrowed(INTERNATIONAL)
    }

    /// The slot of prefix key `key`, if the policy has that prefix.
    fn dest_slot(&self, key: u64) -> Option<&DestSlot<'p>> {
        let mask = self.dest_slots.len() - 1;
        let mut at = slot_of(key, self.dest_slot_bits);
        loop {
            let slot = &self.dest_slots[at];
            if slot.key == key {
                return Some(slot);
            }
            if slot.key == EMPTY_SLOT {
                return None;
            }
            at = (at + 1) & mask;
        }
    }

    /// The rule and action of the destination entry that decides the number
    /// whose prefix keys are `keys[..=len]`.
    fn destination(
        &self,
        keys: &[u64; 16],
        len: usize,
        at: Timestamp,
        mut trace: Option<&mut Vec<Step>>,
    ) -> Option<(&'p str, Verdict)> {
        let mut note = |rule: &str, text: &dyn Fn() -> String| {
            if let Some(t) = trace.as_deref_mut() {
                t.push(Step {
                    rule: rule.to_string(),
                    note: text(),
                });
            }
        };
        // whether each of the first 16 windows is open (bit set in `open`),
        // worked out at most once per call (bit set in `known`)
        let (mut known, mut open) = (0u16, 0u16);
        for n in lengths_down(self.dest_lengths, len) {
            let bit = filter_bit(keys[n], self.dest_filter_bits);
            if self.dest_filter[bit / 64] & (1 << (bit % 64)) == 0 {
                continue;
            }
            let Some(slot) = self.dest_slot(keys[n]) else {
                continue;
            };
            let (start, count) = if slot.simple {
                // one entry, no window: it applies
                note(slot.rule, &|| {
                    let (start, _) = self.dest_groups[slot.group as usize];
                    let e = &self.policy.destinations[self.dest_order[start as usize] as usize];
                    format!("+{} matched: {}", e.prefix, verdict(slot.action))
                });
                return Some((slot.rule, slot.action));
            } else {
                self.dest_groups[slot.group as usize]
            };
            let group = &self.dest_order[start as usize..(start + count) as usize];
            for i in group {
                let i = *i as usize;
                let e = &self.policy.destinations[i];
                let applies = match &e.window {
                    None => true,
                    Some(w) => {
                        let is_open = match self.dest_windows[i] {
                            Some(wi) if wi < 16 => {
                                if known & (1 << wi) == 0 {
                                    known |= 1 << wi;
                                    if self.window_open(wi, at) {
                                        open |= 1 << wi;
                                    }
                                }
                                open & (1 << wi) != 0
                            }
                            Some(wi) => self.window_open(wi, at),
                            None => false,
                        };
                        let applies = (w.when == WindowWhen::During) == is_open;
                        if !applies {
                            let state = if is_open { "open" } else { "closed" };
                            note(&e.rule, &|| {
                                format!("+{} skipped: window {} is {state}", e.prefix, w.name)
                            });
                        }
                        applies
                    }
                };
                if applies {
                    note(&e.rule, &|| {
                        format!("+{} matched: {}", e.prefix, verdict(e.action))
                    });
                    return Some((&e.rule, e.action));
                }
            }
        }
        None
    }

    /// Unknown windows and zones count as closed (fail closed for `during`).
    fn window_open(&self, window: usize, at: Timestamp) -> bool {
        let Some(Some(tz)) = self.zones.get(window) else {
            return false;
        };
        window::is_open_in(&self.policy.windows[window], at, tz)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_down_are_the_bits_set_longest_first() {
        for lengths in [0u16, 1, 0b1010_0110, 0xffff, 0x8001, 0x7ffe] {
            for len in 0..=15 {
                let want: Vec<usize> = (0..=len)
                    .rev()
                    .filter(|n| lengths & (1 << n) != 0)
                    .collect();
                assert_eq!(lengths_down(lengths, len).collect::<Vec<_>>(), want);
            }
        }
    }

    #[test]
    fn a_keys_prefix_keys_are_those_of_its_digits() {
        for digits in ["", "0", "4", "04", "44", "0044", "123456789012345", "900"] {
            let Some(key) = prefix_key(digits) else {
                continue;
            };
            assert_eq!(keys_of_key(key), prefix_keys(digits.as_bytes()), "{digits}");
        }
        // bytes that are not digits are keyed as the evaluator always has
        assert_eq!(
            prefix_keys(b"4a").0[2],
            (4 * 10 + (b'a' - b'0') as u64 % 10) << 4 | 2
        );
    }
}
