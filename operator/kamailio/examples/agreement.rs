//! Helper of `scripts/test-agreement.sh`: the evaluator against the real SBC.
//!
//! ```console
//! agreement prepare POLICY_ROOT OUT [--seed N] [--now RFC3339]
//! agreement compare OUT
//! ```
//!
//! `prepare` compiles every tenant of `POLICY_ROOT/tenants/*.tgp` and makes a
//! TEST COPY of each compiled policy:
//! - every IPv4 source network `a.b.c.d/len` becomes `127.b.c.d/len` (so SIPp
//!   can call from it over loopback); IPv6 networks are kept as they are
//!   (rendered and loaded by Kamailio, but no call comes from them);
//! - every calls-per-minute limit gets critical 1000000 (and no warning):
//!   SIPp places hundreds of calls a minute, and the SBC counts rates in
//!   fixed 60 s intervals the evaluator cannot know;
//! - a tenant that requires TLS, certificates or SRTP (SIPp here has no TLS)
//!   is rendered twice: as it is, and as `<tenant>-plain` with the crypto
//!   requirements cleared and its IPv4 networks at `127.(b^128).c.d/len`
//!   (IPv6 dropped), so its destinations are exercised too;
//! - a tenant with time windows is also rendered as `<tenant>-open`: crypto
//!   cleared, every window open all week, networks at `127.(b^64).c.d/len`
//!   (IPv6 dropped), called from one allowed source: the SBC's clock cannot
//!   be set, so this is how `during` entries are seen applying whatever the
//!   hour of the run (the real windows are rendered for the real instant).
//!
//! It renders them all into ONE data dir (`OUT/data`, a shared fleet) with
//! the library (`tollgate_kamailio::kamailio`), picks test sources
//! inside every network (with GeoIP countries: home, geo-blocked, unknown),
//! generates a seeded list of dialed numbers, and writes per source a SIPp
//! injection file (`OUT/calls/<ip>.csv`), plus `OUT/plan.tsv`,
//! `OUT/geo.txt` (`ip/32 CC`, for the test GeoIP database),
//! `OUT/fleet/*.yaml` (the test copies) and `OUT/now` (the render instant).
//!
//! `compare` reads the SIPp logs `OUT/calls/<ip>.log` (`RESULT <number>
//! <code> <rule> <phrase>`) and compares each call with the evaluator's
//! decision at the render instant AND at the compare instant (a window edge
//! between the two makes either answer right; such calls are counted apart):
//! SIP code (hence outcome) and rule. Prints `N agree, N disagree` and every
//! disagreement; exits 1 if any.
//!
//! It also holds the SBC to libphonenumber's reading: for every dialled
//! string libphonenumber reads as a valid number of the source tenant's home
//! region, the policy's verdict on that reading (`+E.164`) is computed; when
//! it denies, the SBC must not have connected the call (no 200 from the
//! UAS). Such a call is a failure (`LIBPHONENUMBER`), counted in the summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use ipnet::{IpNet, Ipv4Net};
use jiff::Timestamp;
use tollgate_ir::{CompiledPolicy, GeoMode, LimitMetric, Verdict, Weekday, WeeklySpan};
use tollgate_kamailio::kamailio::{Kamailio, parse_cidr};
use tollgate_kamailio::{Backend, write};
use tollgate_policy::check;
use tollgate_policy::eval::{Call, Evaluator, Outcome, Stage};
use tollgate_policy::load::Workspace;

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("prepare") if args.len() >= 3 => prepare(&args[1], &args[2], &args[3..]),
        Some("compare") if args.len() == 2 => compare(Path::new(&args[1])),
        _ => Err("usage: agreement prepare POLICY_ROOT OUT [--seed N] [--now RFC3339] | agreement compare OUT".into()),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// A test source: an address inside one of the fleet's networks (or none).
#[derive(Clone, Debug)]
struct Source {
    ip: Ipv4Addr,
    country: Option<String>,
    label: String,
}

/// Which test copy of a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// The policy as compiled (sources mapped, rates lifted).
    AsIs,
    /// Crypto requirements cleared; `<tenant>-plain`.
    Plain,
    /// Crypto cleared and every window open all week; `<tenant>-open`.
    Open,
}

impl Variant {
    /// XOR on the second octet of the mapped networks (keeps the variants apart).
    fn flip(self) -> u8 {
        match self {
            Variant::AsIs => 0,
            Variant::Plain => 0x80,
            Variant::Open => 0x40,
        }
    }
}

fn map_v4(net: &Ipv4Net, v: Variant) -> Result<Ipv4Net> {
    let min = match v {
        Variant::AsIs => 8,
        Variant::Plain => 9,
        Variant::Open => 10,
    };
    if net.prefix_len() < min {
        return Err(format!("{net} is too wide to map into 127.0.0.0/8"));
    }
    let o = net.network().octets();
    Ipv4Net::new(
        Ipv4Addr::new(127, o[1] ^ v.flip(), o[2], o[3]),
        net.prefix_len(),
    )
    .map_err(|e| e.to_string())
}

/// The test copy of a compiled policy (see the module doc).
fn test_copy(p: &CompiledPolicy, v: Variant) -> Result<CompiledPolicy> {
    let mut p = p.clone();
    let mut networks = Vec::new();
    for n in &p.sources.networks {
        let net = parse_cidr(&n.cidr).ok_or_else(|| format!("bad network {}", n.cidr))?;
        let mut n = n.clone();
        match net {
            IpNet::V4(v4) => {
                let m = map_v4(&v4, v)?;
                n.cidr = m.to_string();
                n.rule = n.rule.replace(&v4.to_string(), &m.to_string());
            }
            IpNet::V6(_) if v != Variant::AsIs => continue,
            IpNet::V6(_) => {}
        }
        networks.push(n);
    }
    networks.sort_by(|a, b| a.cidr.cmp(&b.cidr));
    p.sources.networks = networks;
    for l in &mut p.limits {
        if l.metric == LimitMetric::Rate {
            l.critical = Some(1_000_000);
            l.warning = None;
        }
    }
    match v {
        Variant::AsIs => {}
        Variant::Plain => {
            p.tenant = format!("{}-plain", p.tenant);
            p.crypto = Default::default();
        }
        Variant::Open => {
            p.tenant = format!("{}-open", p.tenant);
            p.crypto = Default::default();
            for w in &mut p.windows {
                w.spans = vec![WeeklySpan {
                    days: vec![
                        Weekday::Mon,
                        Weekday::Tue,
                        Weekday::Wed,
                        Weekday::Thu,
                        Weekday::Fri,
                        Weekday::Sat,
                        Weekday::Sun,
                    ],
                    start_minute: 0,
                    end_minute: 1440,
                }];
            }
        }
    }
    Ok(p)
}

fn sources_of(p: &CompiledPolicy) -> Vec<Source> {
    let mut out = Vec::new();
    let home = p.home_country.clone();
    let blocked_country = p.sources.geo.as_ref().map(|g| match g.mode {
        GeoMode::Deny => g.countries[0].clone(),
        GeoMode::AllowOnly => ["US", "JP", "BR"]
            .iter()
            .find(|c| !g.countries.iter().any(|x| x == *c))
            .map_or("AQ".to_string(), |c| c.to_string()),
    });
    for n in &p.sources.networks {
        let Some(IpNet::V4(net)) = parse_cidr(&n.cidr) else {
            continue;
        };
        let kind = match (&n.trunk, n.action) {
            (Some(t), _) => format!("trunk {t}"),
            (None, Verdict::Allow) => "allowed".into(),
            (None, Verdict::Deny) => "denied".into(),
        };
        let host = |i: u32| -> Ipv4Addr {
            if net.prefix_len() >= 31 {
                net.network()
            } else {
                Ipv4Addr::from(u32::from(net.network()) + i)
            }
        };
        let label = |what: &str| format!("{} {kind} {} {what}", p.tenant, n.cidr);
        if n.trunk.is_some() {
            // trunks skip geo: give them a country the geo list would block
            let c = blocked_country.clone().unwrap_or_else(|| home.clone());
            out.push(Source {
                ip: host(20),
                country: Some(c.clone()),
                label: label(&format!("from {c}")),
            });
        } else if n.action == Verdict::Allow && net.prefix_len() < 30 {
            out.push(Source {
                ip: host(20),
                country: Some(home.clone()),
                label: label(&format!("from {home}")),
            });
            if let Some(c) = &blocked_country {
                out.push(Source {
                    ip: host(21),
                    country: Some(c.clone()),
                    label: label(&format!("from {c}")),
                });
                out.push(Source {
                    ip: host(22),
                    country: None,
                    label: label("from an unknown country"),
                });
            }
        } else {
            out.push(Source {
                ip: host(20),
                country: Some(home.clone()),
                label: label(&format!("from {home}")),
            });
        }
    }
    out
}

/// xorshift64*: a small seeded generator (no dependency).
struct Rng(u64);
impl Rng {
    fn digit(&mut self) -> char {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33;
        char::from(b'0' + (v % 10) as u8)
    }
}

/// Templates: `X` = a random digit; the count = how many to draw. The
/// numbers are dialed as written (SIP-escaped where needed, see `escape`).
const TEMPLATES: &[(&str, usize)] = &[
    // NANP: US national, toll-free, premium; Canada; the Caribbean shares +1
    ("+1212555XXXX", 5),
    ("+1415555XXXX", 3),
    ("+1800555XXXX", 3),
    ("+1888555XXXX", 2),
    ("+1900555XXXX", 3),
    ("+1416555XXXX", 3),
    ("+1604555XXXX", 2),
    ("+1204555XXXX", 1),
    ("+1876555XXXX", 3),
    ("+1809555XXXX", 2),
    ("+124697XXXXX", 2),
    ("+1264555XXXX", 1),
    ("+1441555XXXX", 1),
    // GB and the islands sharing +44; mobiles, personal, premium, shared cost
    ("+4420794XXXXX", 4),
    ("+447700900XXX", 3),
    ("+4470XXXXXXXX", 3),
    ("+449XXXXXXXXX", 3),
    ("+4487XXXXXXXX", 2),
    ("+4484XXXXXXXX", 2),
    ("+441481XXXXXX", 3),
    ("+441534XXXXXX", 2),
    ("+441624XXXXXX", 1),
    ("+44800XXXXXXX", 2),
    ("+443XXXXXXXXX", 1),
    // Europe and beyond
    ("+331XXXXXXXX", 3),
    ("+336XXXXXXXX", 2),
    ("+3389XXXXXXX", 2),
    ("+3381XXXXXXX", 1),
    ("+4930XXXXXXXX", 3),
    ("+49151XXXXXXXX", 2),
    ("+49160XXXXXXX", 1),
    ("+49171XXXXXXX", 1),
    ("+49900XXXXXXX", 2),
    ("+491805XXXXXX", 1),
    ("+49800XXXXXXX", 1),
    ("+49700XXXXXXXX", 1),
    ("+431XXXXXXX", 2),
    ("+4144XXXXXXX", 2),
    ("+3120XXXXXXX", 2),
    ("+3531XXXXXXX", 2),
    ("+5255XXXXXXXX", 2),
    ("+7495XXXXXXX", 1),
    ("+7727XXXXXXX", 1),
    ("+8610XXXXXXXX", 1),
    ("+8502XXXXXXX", 1),
    ("+813XXXXXXXX", 1),
    ("+612XXXXXXXX", 1),
    // satellite, international networks, UIFN, international premium / shared cost, UPT
    ("+8816XXXXXXXX", 2),
    ("+8707XXXXXXXX", 2),
    ("+882XXXXXXXXX", 1),
    ("+883XXXXXXXXXX", 1),
    ("+800XXXXXXXX", 1),
    ("+979XXXXXXXX", 1),
    ("+808XXXXXXXX", 1),
    ("+878XXXXXXXXXX", 1),
    // national and international forms (read per tenant: US, GB or DE)
    ("212555XXXX", 3),
    ("1212555XXXX", 2),
    ("1-212-555-XXXX", 1),
    ("(212)555-XXXX", 1),
    ("212.555.XXXX", 1),
    ("1(800)555-XXXX", 1),
    ("1 876 555 XXXX", 1),
    ("011 44 20 794X XXXX", 1),
    ("01133XXXXXXXXX", 1),
    ("0207946XXXX", 2),
    ("020 7946 XXXX", 1),
    ("07700900XXX", 1),
    ("0044 20 7946 XXXX", 1),
    ("00 33 1 XX XX XX XX", 1),
    ("030XXXXXXXX", 2),
    ("030 XXXXXXX", 1),
    ("0151XXXXXXXX", 1),
    ("0900XXXXXXX", 1),
    ("0049 30 XXXXXXX", 1),
    ("0043 1 XXXXXXX", 1),
    ("001 212 555 XXXX", 1),
    ("+44 (0)20 7946 XXXX", 1),
    ("+1.212.555.XXXX", 1),
    ("1+212555XXXX", 1),
    // dialled forms read per home country as libphonenumber reads them, or
    // refused (docs/language.md, "Dialled numbers")
    ("+44 0909 XXX XXXX", 2),
    ("+44 (0)909 XXX XXXX", 1),
    ("+1 0 900 XXX XXXX", 2),
    ("+1 1 900 555 XXXX", 1),
    ("+49 (0)30 XXXXXXX", 1),
    ("+49 0 900 XXXXXXX", 1),
    ("44 20 7946 XXXX", 1),
    ("49 30 XXXXXXXX", 1),
    ("20 7946 XXXX", 1),
    ("(030) XXXX/XXXX", 1),
    ("[030] XXXXXXXX", 1),
    ("0 0 44 20 7946 XXXX", 1),
    ("00 0XX XXXX XXXX", 1),
    ("555-XXXX", 1),
    ("+7 812 XXX XXXX", 1),
    ("+7 8 812 XXX XXXX", 1),
    ("+39 06 XXXX XXXX", 1),
    ("+39 0848 XXXXXX", 1),
    ("011 39 06 XXXX XXXX", 1),
    ("+33 (0)1 XX XX XX XX", 1),
    ("+33 0 89X XX XX XX", 1),
    ("00 44 (0) 909 XXX XXXX", 1),
    ("+00 44 20 7946 XXXX", 1),
    ("+011 44 20 7946 XXXX", 1),
];

/// Fixed cases: emergency numbers (and what is not one) and unreadable input.
const FIXED: &[&str] = &[
    "911",
    "112",
    "999",
    "110",
    "15",
    "9 1 1",
    "911abc",
    "+911",
    " +911",
    "\u{a0}+911",
    "0911",
    "1-1-2",
    "abc",
    "12345",
    "+0123",
    "+1234567890123456",
    "*99#",
    "+44abc",
    "0",
    "00",
    "011",
    "+",
    "\t+12125550100",
    "\t911",
    "\u{a0}911",
    "911\u{a0}",
    "\u{a0}+12125550100",
];

/// R-URI users sent as they are: broken escapes (never a number).
const RAW_USERS: &[&str] = &[
    "%",
    "%4",
    "%zz1",
    "9%1",
    "%39%31%31",
    "%39%31%31%09",
    "%09%zz911",
    "%7F112",
];

/// The R-URI users to call: escaped dialed numbers, then [`RAW_USERS`].
fn users(seed: u64) -> Vec<String> {
    let mut out: Vec<String> = numbers(seed).iter().map(|n| escape(n)).collect();
    out.extend(RAW_USERS.iter().map(|s| s.to_string()));
    out
}

fn numbers(seed: u64) -> Vec<String> {
    let mut rng = Rng(seed.max(1));
    let mut out: Vec<String> = FIXED.iter().map(|s| s.to_string()).collect();
    for (t, n) in TEMPLATES {
        // E.164 forms twice as many: the classes and prefixes live there
        let n = if t.starts_with('+') { n * 2 } else { *n };
        let mut made = 0;
        let mut tries = 0;
        while made < n && tries < 100 {
            tries += 1;
            let s: String = t
                .chars()
                .map(|c| if c == 'X' { rng.digit() } else { c })
                .collect();
            if !out.contains(&s) {
                out.push(s);
                made += 1;
            }
        }
    }
    out
}

/// The R-URI user part: unreserved characters and `+()-.*` as they are,
/// everything else %-escaped (the SBC unescapes the user before it reads it).
fn escape(dialed: &str) -> String {
    let mut s = String::new();
    for b in dialed.bytes() {
        if b.is_ascii_alphanumeric() || b"+()-.*_!~'".contains(&b) {
            s.push(char::from(b));
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
}

fn unescape(user: &str) -> String {
    let b = user.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = user
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn compile(root: &Path) -> Result<Vec<CompiledPolicy>> {
    let dir = root.join("tenants");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tgp"))
        .collect();
    files.sort();
    let mut ws = Workspace::on_disk(std::env::current_dir().map_err(|e| e.to_string())?);
    let mut out = Vec::new();
    for f in &files {
        let c = check::check(&mut ws, f).map_err(|e| format!("{}: {e}", f.display()))?;
        if c.has_errors() {
            return Err(format!("{} has errors", f.display()));
        }
        out.push(
            c.policy
                .ok_or_else(|| format!("{} is not a tenant", f.display()))?,
        );
    }
    Ok(out)
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn prepare(root: &str, out: &str, opts: &[String]) -> Result<ExitCode> {
    let mut seed = 20_260_101u64;
    let mut now = Timestamp::now();
    let mut it = opts.iter();
    while let Some(o) = it.next() {
        let v = it.next().ok_or(format!("{o} needs a value"))?;
        match o.as_str() {
            "--seed" => seed = v.parse().map_err(|_| "bad --seed")?,
            "--now" => now = v.parse().map_err(|e| format!("--now: {e}"))?,
            _ => return Err(format!("unknown option {o}")),
        }
    }
    let out = PathBuf::from(out);
    for d in ["calls", "fleet"] {
        std::fs::create_dir_all(out.join(d)).map_err(|e| e.to_string())?;
    }
    let compiled = compile(Path::new(root))?;
    let mut fleet = Vec::new();
    for p in &compiled {
        fleet.push(test_copy(p, Variant::AsIs)?);
        let c = &p.crypto;
        if c.require_tls || c.require_srtp || c.require_client_certificate {
            fleet.push(test_copy(p, Variant::Plain)?);
        }
        if !p.windows.is_empty() {
            fleet.push(test_copy(p, Variant::Open)?);
        }
    }
    let t0 = std::time::Instant::now();
    let mut tenants = BTreeMap::new();
    for p in &fleet {
        let rows = Kamailio
            .render_tenant(p, &format!("{}-test", p.tenant), now)
            .map_err(|e| e.to_string())?;
        tenants.insert(p.tenant.clone(), rows);
    }
    let bundle = Kamailio.compose(&tenants).map_err(|e| e.to_string())?;
    let took = t0.elapsed();
    write::write_bundle(&out.join("data"), &bundle, SystemTime::now())
        .map_err(|e| e.to_string())?;
    for p in &fleet {
        let y = tollgate_ir::yaml::to_yaml(p).map_err(|e| e.to_string())?;
        write_text(&out.join("fleet").join(format!("{}.yaml", p.tenant)), &y)?;
    }
    let mut sources: Vec<Source> = Vec::new();
    for p in &fleet {
        let all = sources_of(p);
        if p.tenant.ends_with("-open") {
            // the open twins: one allowed source is enough
            sources.extend(
                all.into_iter()
                    .filter(|s| s.label.contains(" allowed "))
                    .take(1),
            );
        } else {
            sources.extend(all);
        }
    }
    sources.push(Source {
        ip: Ipv4Addr::new(127, 99, 0, 1),
        country: None,
        label: "no tenant's network".into(),
    });
    let nums = users(seed);
    let mut plan = String::from("# source\tcountry\tuser\tlabel\n");
    let mut geo = String::new();
    for s in &sources {
        let mut csv = String::from("SEQUENTIAL\n");
        for user in &nums {
            let _ = writeln!(csv, "{user};RTP/AVP");
            let _ = writeln!(
                plan,
                "{}\t{}\t{user}\t{}",
                s.ip,
                s.country.as_deref().unwrap_or("-"),
                s.label
            );
        }
        write_text(&out.join("calls").join(format!("{}.csv", s.ip)), &csv)?;
        if let Some(c) = &s.country {
            let _ = writeln!(geo, "{}/32 {c}", s.ip);
        }
    }
    write_text(&out.join("plan.tsv"), &plan)?;
    write_text(&out.join("geo.txt"), &geo)?;
    write_text(&out.join("now"), &format!("{now}\n"))?;
    let srcs: String = sources
        .iter()
        .map(|s| format!("{}\t{}\n", s.ip, s.label))
        .collect();
    write_text(&out.join("sources.tsv"), &srcs)?;
    println!(
        "fleet: {} tenants ({}), rendered in {} ms, bundle {}",
        fleet.len(),
        fleet
            .iter()
            .map(|p| p.tenant.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        took.as_millis(),
        bundle.hash
    );
    println!(
        "{} numbers x {} sources = {} calls",
        nums.len(),
        sources.len(),
        nums.len() * sources.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// What the SBC should answer: SIP code and rule.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Expected {
    code: u16,
    rule: String,
}

fn outcome_of(code: u16) -> &'static str {
    match code {
        200..=299 => "allow",
        486 => "limit",
        _ => "deny",
    }
}

fn expected(
    fleet: &[(IpNet, usize)],
    evals: &[Evaluator<'_>],
    src: Ipv4Addr,
    country: Option<&str>,
    dialed: &str,
    at: Timestamp,
) -> Expected {
    // the SBC's lookup: the longest network of any tenant
    let Some((_, i)) = fleet
        .iter()
        .filter(|(n, _)| n.contains(&IpAddr::V4(src)))
        .max_by_key(|(n, _)| n.prefix_len())
    else {
        return Expected {
            code: 403,
            rule: "src:unknown".into(),
        };
    };
    let mut call = Call::new(dialed, IpAddr::V4(src), at);
    call.source_country = country.map(str::to_string);
    let d = evals[*i].decide(&call, false);
    let code = match (d.outcome, d.stage) {
        (Outcome::Allow, _) => 200,
        (Outcome::Limit, _) => 486,
        (Outcome::Deny, Stage::Number) => 484,
        (Outcome::Deny, Stage::Crypto) if d.rule == "crypto:srtp" => 488,
        (Outcome::Deny, _) => 403,
    };
    Expected {
        code,
        rule: d.rule.into_owned(),
    }
}

/// libphonenumber's reading of `dialed` for a tenant at home in `home`, as
/// `+E.164`, when it reads a valid number.
fn libphonenumber_reading(dialed: &str, home: &str) -> Option<String> {
    let region: phonenumber::country::Id = home.parse().ok()?;
    let n = phonenumber::parse(Some(region), dialed).ok()?;
    n.is_valid()
        .then(|| n.format().mode(phonenumber::Mode::E164).to_string())
}

fn compare(out: &Path) -> Result<ExitCode> {
    let read =
        |p: PathBuf| std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()));
    let t_render: Timestamp = read(out.join("now"))?
        .trim()
        .parse()
        .map_err(|e| format!("now: {e}"))?;
    let t_now = Timestamp::now();
    let mut policies = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(out.join("fleet"))
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    for f in names {
        let p: CompiledPolicy = tollgate_ir::yaml::from_yaml(&read(f.clone())?)
            .map_err(|e| format!("{}: {e}", f.display()))?;
        policies.push(p);
    }
    let evals: Vec<Evaluator<'_>> = policies.iter().map(Evaluator::new).collect();
    let mut fleet = Vec::new();
    for (i, p) in policies.iter().enumerate() {
        for n in &p.sources.networks {
            if let Some(net) = parse_cidr(&n.cidr) {
                fleet.push((net, i));
            }
        }
    }
    // actual results per source: user -> (code, rule, phrase)
    let mut actual: BTreeMap<(String, String), (u16, String, String)> = BTreeMap::new();
    let mut logs = 0;
    for e in std::fs::read_dir(out.join("calls")).map_err(|e| e.to_string())? {
        let path = e.map_err(|e| e.to_string())?.path();
        if path.extension().is_none_or(|x| x != "log") {
            continue;
        }
        logs += 1;
        let ip = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for line in read(path.clone())?.lines() {
            let Some(rest) = line.strip_prefix("RESULT ") else {
                continue;
            };
            let mut f = rest.splitn(4, ' ');
            let (user, code, rule, phrase) = (
                f.next().unwrap_or(""),
                f.next().unwrap_or(""),
                f.next().unwrap_or(""),
                f.next().unwrap_or(""),
            );
            actual.insert(
                (ip.clone(), user.to_string()),
                (
                    code.parse().unwrap_or(0),
                    rule.to_string(),
                    phrase.to_string(),
                ),
            );
        }
    }
    let (mut agree, mut disagree, mut boundary, mut missing) = (0, 0, 0, 0);
    // libphonenumber's oracle: strings it reads as valid, those whose
    // reading the policy denies, and of those the ones the SBC connected
    let (mut lib_valid, mut lib_denied, mut lib_connected, mut lib_edge) = (0, 0, 0, 0);
    let mut by_code: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_rule: BTreeMap<String, usize> = BTreeMap::new();
    let mut report = String::new();
    for line in read(out.join("plan.tsv"))?
        .lines()
        .filter(|l| !l.starts_with('#'))
    {
        let f: Vec<&str> = line.splitn(4, '\t').collect();
        let [ip, country, user, label] = f[..] else {
            continue;
        };
        let src: Ipv4Addr = ip.parse().map_err(|_| format!("bad source {ip}"))?;
        let country = (country != "-").then_some(country);
        let dialed = unescape(user);
        let e1 = expected(&fleet, &evals, src, country, &dialed, t_render);
        let e2 = expected(&fleet, &evals, src, country, &dialed, t_now);
        let Some((code, rule, phrase)) = actual.get(&(ip.to_string(), user.to_string())) else {
            missing += 1;
            let _ = writeln!(
                report,
                "  NO RESULT  {ip} ({label}) {user:?}: expected {} {} {}",
                outcome_of(e1.code),
                e1.code,
                e1.rule
            );
            continue;
        };
        let got = Expected {
            code: *code,
            rule: rule.clone(),
        };
        let home = fleet
            .iter()
            .filter(|(n, _)| n.contains(&IpAddr::V4(src)))
            .max_by_key(|(n, _)| n.prefix_len())
            .map(|(_, i)| policies[*i].home_country.as_str());
        if let Some(e164) = home.and_then(|h| libphonenumber_reading(&dialed, h)) {
            lib_valid += 1;
            let by_lib = expected(&fleet, &evals, src, country, &e164, t_render);
            if by_lib.code != 200 {
                lib_denied += 1;
                // a window edge between the render and the compare instant
                // may allow the reading at the instant of the call
                let by_lib_now = expected(&fleet, &evals, src, country, &e164, t_now);
                if got.code == 200 && by_lib_now.code == 200 {
                    lib_edge += 1;
                    let _ = writeln!(
                        report,
                        "  LIBPHONENUMBER WINDOW EDGE {ip} {dialed:?}: {e164} {} {} then {} {}, connected",
                        by_lib.code, by_lib.rule, by_lib_now.code, by_lib_now.rule
                    );
                } else if got.code == 200 {
                    lib_connected += 1;
                    let _ = writeln!(
                        report,
                        "  LIBPHONENUMBER {ip} ({label}) dialed {dialed:?}: libphonenumber reads {e164}, which the policy denies ({} {}), yet the SBC connected it",
                        by_lib.code, by_lib.rule
                    );
                }
            }
        }
        *by_code
            .entry(format!("{} {}", got.code, outcome_of(got.code)))
            .or_default() += 1;
        *by_rule.entry(got.rule.clone()).or_default() += 1;
        if got == e1 && got == e2 {
            agree += 1;
        } else if got == e1 || got == e2 {
            boundary += 1;
            let _ = writeln!(
                report,
                "  WINDOW EDGE {ip} {user:?}: {} {} then {} {}, got {} {}",
                e1.code, e1.rule, e2.code, e2.rule, got.code, got.rule
            );
        } else {
            disagree += 1;
            let _ = writeln!(
                report,
                "  DISAGREE   {ip} ({label}) dialed {dialed:?} (R-URI user {user}): expected {} {} {}, SBC {} {} {} ({phrase})",
                outcome_of(e1.code),
                e1.code,
                e1.rule,
                outcome_of(got.code),
                got.code,
                got.rule
            );
        }
    }
    println!(
        "render instant {t_render}, compare instant {t_now}; {logs} SIPp logs, {} results",
        actual.len()
    );
    println!("SBC answers by code:");
    for (k, v) in &by_code {
        println!("  {v:5}  {k}");
    }
    println!("SBC answers by rule ({} distinct):", by_rule.len());
    for (k, v) in &by_rule {
        println!("  {v:5}  {k}");
    }
    print!("{report}");
    println!(
        "libphonenumber: {lib_valid} strings read as valid numbers of the tenant's home; the policy denies {lib_denied} of those readings; the SBC connected {lib_connected} of them ({lib_edge} more at a window edge, accepted)"
    );
    println!(
        "{agree} agree, {disagree} disagree ({boundary} at a window edge, accepted; {missing} without a result)"
    );
    Ok(if disagree == 0 && missing == 0 && lib_connected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
