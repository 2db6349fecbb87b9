//! Synthetic policies and call logs for the benchmark and the tests:
//! deterministic for a seed (a SplitMix64 generator, no dependency).
//!
//! Shared by `benches/eval.rs`, `tests/replay.rs` and `examples/synth.rs`
//! through `#[path]`, so it never ships in the `tollgate` binary.

#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use tollgate_ir::CompiledPolicy;
use tollgate_policy::check;
use tollgate_policy::load::{MemoryFs, Workspace};

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast, good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn digit(&mut self, nonzero: bool) -> char {
        let d = if nonzero {
            1 + self.below(9)
        } else {
            self.below(10)
        };
        char::from(b'0' + d as u8)
    }
    /// Random digits (the first not 0), `min..=max` of them.
    pub fn digits_between(&mut self, min: usize, max: usize) -> String {
        let n = min + self.below((max - min + 1) as u64) as usize;
        self.digits(n)
    }
    pub fn digits(&mut self, n: usize) -> String {
        (0..n).map(|i| self.digit(i == 0)).collect()
    }
}

pub const TENANT: &str = "bench";

/// A tenant policy with `prefixes` random destination prefixes of 2–9
/// digits (allow or deny, one in twenty only during or outside a window), three
/// windows, sources with a denied range and a trunk, geo-blocking and limits.
pub fn policy_text(seed: u64, prefixes: usize) -> String {
    let mut rng = Rng::new(seed);
    let mut s = format!(
        "# generated: seed {seed}, {prefixes} prefixes\ntenant {TENANT}\nhome GB\nzone Europe/London\n\n\
         window office: mon-fri 08:00-18:00\n\
         window night: mon-sun 22:00-06:00\n\
         window weekend: sat-sun 00:00-24:00 America/New_York\n\n\
         destinations {{\n  international: deny\n"
    );
    let mut seen = HashSet::new();
    // 2- and 3-digit prefixes run out (90 + 900): cap the attempts
    let mut attempts = 0usize;
    while seen.len() < prefixes && attempts < prefixes * 20 {
        attempts += 1;
        let len = 2 + rng.below(8) as usize;
        let p = rng.digits(len);
        if p.starts_with("44") || !seen.insert(p.clone()) {
            continue; // +44 is national: keep the home country out of the conflicts
        }
        let action = if rng.chance(50) { "allow" } else { "deny" };
        let window = match rng.below(40) {
            0 => " during office",
            1 => " outside night",
            2 => " during weekend",
            _ => "",
        };
        let _ = writeln!(s, "  {action} prefix +{p}{window}");
    }
    s.push_str(
        "}\n\nsources {\n  allow 10.0.0.0/8\n  allow 2001:db8::/32\n  deny 10.66.0.0/16\n  \
         trunk carrier: 192.0.2.0/24\n  deny country CN, RU\n}\n\n\
         limits {\n  concurrent: warning 500, critical 700\n  rate: warning 400/min, critical 600/min\n  \
         concurrent international: warning 300, critical 400\n  duration: 4h\n}\n\n\
         responses {\n  on concurrent critical: alert\n}\n",
    );
    s
}

/// Compiles a generated policy (in memory, as `bench.tgp`).
pub fn compile(text: &str) -> CompiledPolicy {
    let mut ws = Workspace::new(MemoryFs::new().with("bench.tgp", text), ".");
    let c = check::check(&mut ws, Path::new("bench.tgp")).expect("in memory");
    let errors: Vec<_> = c.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(
        errors.is_empty(),
        "the generated policy has errors: {errors:?}"
    );
    c.policy.expect("a tenant policy")
}

pub fn policy(seed: u64, prefixes: usize) -> CompiledPolicy {
    compile(&policy_text(seed, prefixes))
}

/// A dialed destination: mostly `+` and 8–12 digits, some national and
/// `00` forms, emergency numbers and garbage.
pub fn destination(rng: &mut Rng) -> String {
    match rng.below(100) {
        0 => "999".into(),
        1 => "not-a-number".into(),
        2..=6 => format!("0{}", rng.digits(10)),
        7..=9 => format!("00{}", rng.digits_between(8, 12)),
        _ => format!("+{}", rng.digits_between(8, 12)),
    }
}

/// A source address: mostly the tenant's networks, some denied, trunk, unknown.
pub fn source(rng: &mut Rng) -> String {
    match rng.below(100) {
        0..=1 => format!("10.66.{}.{}", rng.below(256), 1 + rng.below(254)),
        2..=3 => format!("203.0.113.{}", 1 + rng.below(254)),
        4..=8 => format!("192.0.2.{}", 1 + rng.below(254)),
        9..=10 => format!("2001:db8::{:x}", 1 + rng.below(0xffff)),
        _ => format!(
            "10.{}.{}.{}",
            rng.below(256),
            rng.below(256),
            1 + rng.below(254)
        ),
    }
}

/// Writes a CDR of `rows` calls in start-time order (10 calls a second on
/// average, from Monday 2026-01-12 00:00 UTC; durations up to 10 minutes, a
/// third unanswered), 2% of them of another tenant.
pub fn write_cdr(out: &mut impl Write, seed: u64, rows: u64) -> std::io::Result<()> {
    let mut rng = Rng::new(seed ^ 0x5eed_cd12);
    writeln!(
        out,
        "time,tenant,source,destination,duration,source_country,transport,srtp"
    )?;
    let countries = ["GB", "GB", "GB", "FR", "DE", "US", "CN", ""];
    let transports = ["udp", "tcp", "tls"];
    let mut ms: i64 = 1_768_176_000_000; // 2026-01-12T00:00:00Z
    for _ in 0..rows {
        ms += rng.below(200) as i64;
        let t = jiff::Timestamp::from_millisecond(ms).expect("in range");
        let tenant = if rng.chance(2) { "other" } else { TENANT };
        let duration = if rng.chance(33) { 0 } else { rng.below(600) };
        writeln!(
            out,
            "{t},{tenant},{},{},{duration},{},{},{}",
            source(&mut rng),
            destination(&mut rng),
            countries[rng.below(countries.len() as u64) as usize],
            transports[rng.below(3) as usize],
            rng.chance(50),
        )?;
    }
    Ok(())
}

/// A carrier's deny list: one US tenant (`home US`, national calls allowed)
/// with `lines` `deny prefix` lines inside its national range, numbers of the
/// form `+1 NPA NXX XXXX` in a shuffled order. One line in a hundred is a
/// 10-digit prefix over a number listed earlier, which makes that number's
/// line `analysis::redundant-rule` (a warning per hundred lines, as a real
/// list with ranges and single numbers has).
pub fn deny_list_text(seed: u64, lines: usize) -> String {
    // a few New York area codes: 8 × 800 exchanges × 10,000 numbers
    const NPAS: [&str; 8] = ["212", "332", "347", "646", "718", "917", "929", "516"];
    let mut rng = Rng::new(seed);
    let mut s = format!(
        "# generated: seed {seed}, {lines} deny prefix lines\ntenant carrier\nhome US\nzone America/New_York\n\n\
         destinations {{\n  international: deny\n  national: allow\n"
    );
    let mut seen: HashSet<String> = HashSet::with_capacity(lines);
    let mut numbers: Vec<String> = Vec::with_capacity(lines);
    while numbers.len() < lines {
        let number = if !numbers.is_empty() && rng.chance(1) {
            let earlier = &numbers[rng.below(numbers.len() as u64) as usize];
            earlier[..earlier.len() - 1].to_string()
        } else {
            let npa = NPAS[rng.below(NPAS.len() as u64) as usize];
            format!("1{npa}{}{:04}", 200 + rng.below(800), rng.below(10_000))
        };
        if seen.insert(number.clone()) {
            let _ = writeln!(s, "  deny prefix +{number}");
            numbers.push(number);
        }
    }
    s.push_str("}\n");
    s
}

/// The provider's base for [`small_tenant_text`]: `base/standard.tgp`.
pub const SMALL_TENANT_BASE: &str = "# generated: the base every small tenant imports\nbase standard\n\n\
window office: mon-fri 08:00-18:00\n\n\
destinations {\n  international: deny\n  national: allow\n  deny class premium-rate, shared-cost\n  \
deny class international-networks, satellite\n}\n\n\
limits {\n  concurrent: warning 8, critical 16\n  rate: warning 20/min, critical 40/min\n  \
rate international: warning 3/min, critical 6/min\n  duration: 4h\n}\n\n\
responses {\n  on concurrent warning: alert\n  on rate international critical: block class international for 1h\n  \
on anomaly new-destination: alert\n}\n\n\
crypto {\n  tls: optional\n  srtp: optional\n}\n";

/// A small tenant (`tenants/tNNNN.tgp`) importing `../base/standard.tgp`:
/// about 50 rules (countries, 30 prefixes inside its national range, source
/// networks, a trunk, geo-blocking, limits and responses), one of four home
/// countries.
pub fn small_tenant_text(seed: u64, index: usize) -> String {
    // home, zone, a national prefix to deny numbers under, countries to allow
    const HOMES: [(&str, &str, &str, [&str; 3]); 4] = [
        ("US", "America/New_York", "1212", ["CA", "MX", "GB"]),
        ("GB", "Europe/London", "44207", ["IE", "FR", "US"]),
        ("DE", "Europe/Berlin", "4930", ["AT", "CH", "NL"]),
        ("FR", "Europe/Paris", "331", ["BE", "ES", "IT"]),
    ];
    let mut rng = Rng::new(seed ^ (index as u64).wrapping_mul(0x9e37_79b9));
    let (home, zone, national, allowed) = HOMES[index % HOMES.len()];
    let mut s = format!(
        "# generated: small tenant {index}, seed {seed}\ntenant t{index:04}\nimport \"../base/standard.tgp\"\n\n\
         home {home}\nzone {zone}\n\nwindow night-shift: mon-fri 22:00-06:00\n\n\
         destinations {{\n  allow country {}, {}\n  allow country {} during office\n",
        allowed[0], allowed[1], allowed[2]
    );
    let mut seen = HashSet::new();
    while seen.len() < 30 {
        let p = format!("{national}{}", rng.digits(4));
        if seen.insert(p.clone()) {
            let window = if seen.len() % 10 == 0 {
                " outside night-shift"
            } else {
                ""
            };
            let _ = writeln!(s, "  deny prefix +{p}{window}");
        }
    }
    let (a, b) = (index / 250, index % 250);
    s.push_str("}\n\nsources {\n");
    for net in 0..8 {
        let _ = writeln!(s, "  allow 10.{a}.{b}.{}/29", net * 8);
    }
    let _ = writeln!(s, "  deny 10.{a}.{b}.9");
    let _ = writeln!(s, "  allow 2001:db8:{index:x}::/48");
    let _ = writeln!(
        s,
        "  trunk carrier-a: 198.18.{a}.{b}, 198.19.{a}.{b}\n  deny country CN, RU, KP\n}}\n"
    );
    s.push_str(
        "limits {\n  concurrent: warning 40, critical 60\n  concurrent international: warning 5, critical 10\n}\n\n\
         responses {\n  on concurrent critical: block tenant for 15m\n  on anomaly unusual-hours: alert\n}\n",
    );
    s
}
