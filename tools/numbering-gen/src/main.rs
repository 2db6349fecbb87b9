//! Generates `policy-lang/data/numbering.tsv`: E.164 prefixes per country and
//! per number class, plus emergency short numbers, from libphonenumber's
//! metadata as shipped in the `phonenumber` crate.
//!
//! Usage: `numbering-gen [--check] <path>`; with `--check` nothing is written
//! and the exit status is 1 when the file at `<path>` differs from what would
//! be generated.
//!
//! # Method
//!
//! Every libphonenumber descriptor (`fixedLine`, `mobile`, `premiumRate`, ...)
//! is a regex over the national significant number plus a set of possible
//! lengths. Each is compiled to an anchored dense DFA (`regex-automata`) over
//! the digits, and prefixes are found by walking the digit trie below the
//! calling code, carrying the DFA state of every descriptor involved. At each
//! node, questions such as "is there a completion of a possible length that
//! region R accepts and no higher-priority region accepts?" are answered
//! exactly by a memoised search over the product of the DFAs.
//!
//! - A country whose calling code no other region uses is the whole calling
//!   code.
//! - For a shared calling code, each region's numbers are those matched by one
//!   of its descriptors (for +1 only `fixedLine` and `mobile`: the NANP
//!   non-geographic service codes 8XX, 900, 5XX, 600, 700 are NANP-wide and
//!   belong to no country). A number matched by several regions belongs to the
//!   region of highest priority: first the other regions' fixed-line ranges
//!   (geographic, hence specific: Western Sahara's 5288/5289 lie inside
//!   Morocco's fixed-line pattern), then the main country, then the other
//!   regions' remaining descriptors (often looser copies of the main
//!   country's mobile or service ranges); verbatim copies of main-country
//!   patterns are dropped. Descriptors with local-only
//!   lengths (no length in common with the region's fixed-line and mobile
//!   numbers, e.g. Canada's 7-digit 310-XXXX) are ignored. A trie node is emitted for
//!   region R as soon as R is the only region owning any number below it;
//!   nodes owned by nobody are dropped. At the depth cap (calling code +
//!   [`NATIONAL_DEPTH_CAP`] national digits) a node still shared by several
//!   regions is given to none of them (conservative for `allow country`) and
//!   recorded as `ambiguous`.
//! - Except for +1 (NANP), the main country of a shared code is then written
//!   as the whole calling code with the other regions' prefixes (and the
//!   ambiguous ones) as carve-outs; for NANP every region, the US included,
//!   keeps its explicit area-code list, so that an unassigned or future NANP
//!   area code is never part of any country.
//! - A number class takes, for every calling code, the union of the class's
//!   descriptors of all regions using the code; a node is emitted as soon as no
//!   number below it is valid (matched by one of the regions' typed
//!   descriptors: fixed-line, mobile, toll-free, ...) without being in the
//!   class at a length the class uses (numbers of other lengths cannot be
//!   told apart by a prefix and are covered too). At the depth cap a node that still mixes class and
//!   other numbers is included (conservative for `deny class`).

#![allow(
    clippy::print_stdout,
    reason = "command-line tool: status output is its interface"
)]

mod dialling;
mod emergency;
mod iso3166;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::process::ExitCode;

use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use regex_automata::dfa::Automaton;
use regex_automata::dfa::dense;
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::util::syntax;
use regex_automata::{Anchored, MatchKind};

/// The `phonenumber` crate version this file is generated from (pinned in
/// `Cargo.toml` with `=`); its build metadata is the libphonenumber version.
const CRATE_VERSION: &str = "0.3.10";
const LIBPHONENUMBER_VERSION: &str = "9.0.33";
/// Generation date written into the file header (fixed, so that `--check` is
/// reproducible; bump it when regenerating for a new metadata version).
const GENERATED: &str = "2026-11-24";
/// Maximum number of national digits below a calling code in a prefix.
const NATIONAL_DEPTH_CAP: usize = 6;

type Result<T> = std::result::Result<T, String>;

/// One descriptor: anchored DFA plus the possible national lengths.
struct Matcher {
    dfa: dense::DFA<Vec<u32>>,
    start: StateID,
    lengths: Vec<usize>,
}

impl Matcher {
    /// `meta` supplies the fallback lengths for a descriptor without its own
    /// (the metadata leaves them out of `generalDesc`).
    fn new(desc: &Descriptor, meta: &Metadata) -> Result<Option<Matcher>> {
        let pattern = desc.national_number().as_str().trim();
        if pattern.is_empty() || pattern == "NA" {
            return Ok(None);
        }
        let mut lengths: Vec<usize> = lengths_of(desc);
        if lengths.is_empty() {
            lengths = region_lengths(meta);
        }
        if lengths.is_empty() {
            return Ok(None);
        }
        let dfa = dense::Builder::new()
            .syntax(
                syntax::Config::new()
                    .unicode(false)
                    .utf8(false)
                    .ignore_whitespace(true),
            )
            .configure(
                dense::Config::new()
                    .match_kind(MatchKind::All)
                    .start_kind(regex_automata::dfa::StartKind::Anchored),
            )
            .build(&format!("^(?:{pattern})$"))
            .map_err(|e| format!("cannot compile {pattern:?}: {e}"))?;
        let start = dfa
            .start_state(&start::Config::new().anchored(Anchored::Yes))
            .map_err(|e| format!("no start state for {pattern:?}: {e}"))?;
        Ok(Some(Matcher {
            dfa,
            start,
            lengths,
        }))
    }

    fn accepts_at_end(&self, state: StateID, len: usize) -> bool {
        self.lengths.contains(&len) && self.dfa.is_match_state(self.dfa.next_eoi_state(state))
    }
}

/// The possible lengths of a region: its general descriptor's, or else the
/// union of its typed descriptors' lengths.
fn region_lengths(meta: &Metadata) -> Vec<usize> {
    let general = lengths_of(meta.descriptors().general());
    if !general.is_empty() {
        return general;
    }
    let all: BTreeSet<usize> = region_descriptors(meta)
        .iter()
        .flat_map(|(_, d)| lengths_of(d))
        .collect();
    all.into_iter().collect()
}

fn lengths_of(desc: &Descriptor) -> Vec<usize> {
    let mut v: Vec<usize> = desc
        .possible_length()
        .iter()
        .filter(|&&l| l > 0)
        .map(|&l| usize::from(l))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// (DFA states, total length, digits still to read).
type MemoKey = (Vec<StateID>, usize, usize);

/// Decides a completion from which matchers accept it.
type Predicate<'m> = Box<dyn Fn(&[bool]) -> bool + 'm>;

/// A question about the completions of a trie node: does some completion of
/// a possible length satisfy `pred`, given which matchers accept it?
struct Query<'m> {
    matchers: &'m [Matcher],
    pred: Predicate<'m>,
    memo: HashMap<MemoKey, bool>,
}

impl<'m> Query<'m> {
    fn new(matchers: &'m [Matcher], pred: impl Fn(&[bool]) -> bool + 'm) -> Self {
        Query {
            matchers,
            pred: Box::new(pred),
            memo: HashMap::new(),
        }
    }

    /// Whether some completion of the node (DFA states `states`, `depth`
    /// national digits consumed) satisfies the predicate.
    fn exists(&mut self, states: &[StateID], depth: usize) -> bool {
        let lengths: BTreeSet<usize> = self
            .matchers
            .iter()
            .flat_map(|m| m.lengths.iter().copied())
            .filter(|&l| l >= depth)
            .collect();
        lengths
            .into_iter()
            .any(|total| self.exists_len(states, total, total - depth))
    }

    fn exists_len(&mut self, states: &[StateID], total: usize, remaining: usize) -> bool {
        if remaining == 0 {
            let accepts: Vec<bool> = self
                .matchers
                .iter()
                .zip(states)
                .map(|(m, &s)| m.accepts_at_end(s, total))
                .collect();
            return (self.pred)(&accepts);
        }
        if self
            .matchers
            .iter()
            .zip(states)
            .all(|(m, &s)| m.dfa.is_dead_state(s))
        {
            return (self.pred)(&vec![false; states.len()]);
        }
        let key = (states.to_vec(), total, remaining);
        if let Some(&v) = self.memo.get(&key) {
            return v;
        }
        let mut found = false;
        for digit in b'0'..=b'9' {
            let next = step(self.matchers, states, digit);
            if self.exists_len(&next, total, remaining - 1) {
                found = true;
                break;
            }
        }
        self.memo.insert(key, found);
        found
    }
}

fn step(matchers: &[Matcher], states: &[StateID], digit: u8) -> Vec<StateID> {
    matchers
        .iter()
        .zip(states)
        .map(|(m, &s)| m.dfa.next_state(s, digit))
        .collect()
}

/// The regions (libphonenumber order: main country first) of a calling code.
fn regions_of(code: u16) -> Vec<&'static Metadata> {
    DATABASE.by_code(&code).unwrap_or_default()
}

/// All calling codes known to the metadata, ascending.
fn calling_codes() -> Vec<u16> {
    (1..1000u16)
        .filter(|c| !regions_of(*c).is_empty())
        .collect()
}

fn is_geographic(meta: &Metadata) -> bool {
    meta.id() != "001"
}

/// The descriptors that may identify a region inside a shared code.
fn region_descriptors(meta: &Metadata) -> Vec<(&'static str, &Descriptor)> {
    let d = meta.descriptors();
    [
        ("fixedLine", d.fixed_line()),
        ("mobile", d.mobile()),
        ("tollFree", d.toll_free()),
        ("premiumRate", d.premium_rate()),
        ("sharedCost", d.shared_cost()),
        ("personalNumber", d.personal_number()),
        ("voip", d.voip()),
        ("pager", d.pager()),
        ("uan", d.uan()),
        ("voicemail", d.voicemail()),
    ]
    .into_iter()
    .filter_map(|(k, d)| d.map(|d| (k, d)))
    .collect()
}

/// [`region_descriptors`] without local-only ranges: a descriptor none of
/// whose lengths is a fixed-line or mobile length of the region (e.g. the
/// Canadian 7-digit `310-XXXX` service numbers, which are not E.164
/// numbers and would otherwise share the +1 310 prefix with Los Angeles).
fn e164_region_descriptors(meta: &Metadata) -> Vec<(&'static str, &Descriptor)> {
    let d = meta.descriptors();
    let subscriber: BTreeSet<usize> = [d.fixed_line(), d.mobile()]
        .into_iter()
        .flatten()
        .flat_map(|x| lengths_of(x).into_iter())
        .collect();
    region_descriptors(meta)
        .into_iter()
        .filter(|(_, desc)| {
            subscriber.is_empty() || lengths_of(desc).iter().any(|l| subscriber.contains(l))
        })
        .collect()
}

#[derive(Default)]
struct CountryOut {
    calling_code: String,
    prefixes: BTreeSet<String>,
    carve_outs: BTreeSet<String>,
}

#[derive(Default)]
struct Stats {
    ambiguous: Vec<(String, Vec<String>)>,
    class_capped: BTreeMap<&'static str, usize>,
    class_length_mixed: BTreeMap<&'static str, usize>,
}

/// Splits a shared calling code between its regions (see the module docs).
fn split_shared_code(
    code: u16,
    regions: &[&Metadata],
    out: &mut BTreeMap<String, CountryOut>,
    stats: &mut Stats,
) -> Result<()> {
    let main_patterns: BTreeSet<String> = regions
        .first()
        .map(|m| {
            region_descriptors(m)
                .iter()
                .map(|(_, d)| normalise(d.national_number().as_str()))
                .collect()
        })
        .unwrap_or_default();
    let mut matchers = Vec::new();
    let mut owner = Vec::new(); // (priority rank, region index) per matcher
    for (ri, meta) in regions.iter().enumerate() {
        for (kind, desc) in e164_region_descriptors(meta) {
            // NANP: countries are their geographic area codes; the
            // non-geographic service codes (8XX, 900, 5XX, 600, 700) are
            // NANP-wide and belong to no country.
            if code == 1 && kind != "fixedLine" && kind != "mobile" {
                continue;
            }
            // A pattern the main country has verbatim is a shared range of
            // the main country (e.g. Svalbard's copy of Norway's mobiles).
            if ri != 0 && main_patterns.contains(&normalise(desc.national_number().as_str())) {
                continue;
            }
            if let Some(m) = Matcher::new(desc, meta)? {
                matchers.push(m);
                // Priority: the other regions' fixed lines (geographic, so
                // specific: Western Sahara 5288/5289 lies inside Morocco's
                // fixed-line pattern), then the main country, then the other
                // regions' remaining descriptors (often looser copies of the
                // main country's mobile or service ranges).
                let tier = match (ri, kind) {
                    (0, _) => 1,
                    (_, "fixedLine") => 0,
                    _ => 2,
                };
                owner.push((tier * (regions.len() + 1) + ri, ri));
            }
        }
    }
    let owner = &owner;
    // live[r]: some completion's highest-priority accepting matcher belongs
    // to region r.
    let mut live: Vec<Query<'_>> = (0..regions.len())
        .map(|r| {
            Query::new(&matchers, move |acc: &[bool]| {
                let first = acc
                    .iter()
                    .zip(owner)
                    .filter(|(a, _)| **a)
                    .map(|(_, o)| *o)
                    .min();
                first.map(|(_, region)| region) == Some(r)
            })
        })
        .collect();
    let mut owned: Vec<Vec<String>> = vec![Vec::new(); regions.len()];
    let mut ambiguous: Vec<(String, Vec<usize>)> = Vec::new();
    let start: Vec<StateID> = matchers.iter().map(|m| m.start).collect();
    let mut stack = vec![(String::new(), start)];
    while let Some((national, states)) = stack.pop() {
        let depth = national.len();
        let alive: Vec<usize> = (0..regions.len())
            .filter(|&r| live[r].exists(&states, depth))
            .collect();
        match alive.as_slice() {
            [] => {}
            [r] => owned[*r].push(format!("{code}{national}")),
            _ if depth >= NATIONAL_DEPTH_CAP => {
                ambiguous.push((format!("{code}{national}"), alive.clone()));
            }
            _ => {
                for digit in b'0'..=b'9' {
                    let next = step(&matchers, &states, digit);
                    stack.push((format!("{national}{}", char::from(digit)), next));
                }
            }
        }
    }
    let ambiguous_prefixes: Vec<String> = ambiguous.iter().map(|(p, _)| p.clone()).collect();
    for (p, rs) in ambiguous {
        stats
            .ambiguous
            .push((p, rs.iter().map(|&r| regions[r].id().to_owned()).collect()));
    }
    for (ri, meta) in regions.iter().enumerate() {
        if !is_geographic(meta) {
            continue;
        }
        let entry = out.entry(meta.id().to_owned()).or_default();
        entry.calling_code = code.to_string();
        if ri == 0 && code != 1 {
            entry.prefixes.insert(code.to_string());
            for (other, prefixes) in owned.iter().enumerate() {
                if other != 0 {
                    entry.carve_outs.extend(prefixes.iter().cloned());
                }
            }
            entry.carve_outs.extend(ambiguous_prefixes.iter().cloned());
        } else {
            entry.prefixes.extend(owned[ri].iter().cloned());
        }
    }
    Ok(())
}

fn normalise(pattern: &str) -> String {
    pattern.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Number-class prefixes below one calling code (see the module docs).
fn class_prefixes(
    code: u16,
    regions: &[&Metadata],
    class: &'static str,
    select: fn(&Metadata) -> Option<&Descriptor>,
    stats: &mut Stats,
) -> Result<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut valid = Vec::new();
    let mut in_class = Vec::new();
    for meta in regions {
        // Valid numbers: the typed descriptors (the general descriptor is
        // a much looser summary pattern).
        for (_, desc) in region_descriptors(meta) {
            if seen.insert((
                "v",
                normalise(desc.national_number().as_str()),
                lengths_of(desc),
            )) && let Some(m) = Matcher::new(desc, meta)?
            {
                valid.push(m);
            }
        }
        if let Some(desc) = select(meta)
            && seen.insert((
                "c",
                normalise(desc.national_number().as_str()),
                lengths_of(desc),
            ))
            && let Some(m) = Matcher::new(desc, meta)?
        {
            in_class.push(m);
        }
    }
    if in_class.is_empty() {
        return Ok(Vec::new());
    }
    let n_valid = valid.len();
    let mut matchers = valid;
    matchers.extend(in_class);
    let mut live = Query::new(&matchers, move |acc: &[bool]| {
        acc[n_valid..].iter().any(|a| *a)
    });
    let mut bad = Query::new(&matchers, move |acc: &[bool]| {
        acc[..n_valid].iter().any(|a| *a) && !acc[n_valid..].iter().any(|a| *a)
    });
    let mut result = Vec::new();
    let start: Vec<StateID> = matchers.iter().map(|m| m.start).collect();
    let mut stack = vec![(String::new(), start)];
    while let Some((national, states)) = stack.pop() {
        let depth = national.len();
        if !live.exists(&states, depth) {
            continue;
        }
        // Only lengths at which the class has numbers below the node count:
        // a prefix cannot tell lengths apart, and a shorter or longer number
        // of another type below a class range (e.g. 6-digit fixed lines and
        // 9-digit premium numbers both under +508 81) is blocked with it.
        let lengths: BTreeSet<usize> = matchers
            .iter()
            .flat_map(|m| m.lengths.iter().copied())
            .filter(|&l| l >= depth)
            .collect();
        let mut mixed = false;
        let mut other_lengths = false;
        for total in lengths {
            let class_here = live.exists_len(&states, total, total - depth);
            let bad_here = bad.exists_len(&states, total, total - depth);
            mixed |= class_here && bad_here;
            other_lengths |= !class_here && bad_here;
        }
        if !mixed {
            if other_lengths {
                *stats.class_length_mixed.entry(class).or_default() += 1;
            }
            result.push(format!("{code}{national}"));
        } else if depth >= NATIONAL_DEPTH_CAP {
            *stats.class_capped.entry(class).or_default() += 1;
            result.push(format!("{code}{national}"));
        } else {
            for digit in b'0'..=b'9' {
                let next = step(&matchers, &states, digit);
                stack.push((format!("{national}{}", char::from(digit)), next));
            }
        }
    }
    Ok(result)
}

/// Drops prefixes covered by a shorter one in the set.
fn minimal(prefixes: impl IntoIterator<Item = String>) -> Vec<String> {
    let sorted: BTreeSet<String> = prefixes.into_iter().collect();
    let mut out: Vec<String> = Vec::new();
    for p in sorted {
        // In lexicographic order a covering prefix sorts right before the
        // prefixes it covers, so comparing with the last kept one suffices.
        if out.last().is_some_and(|last| p.starts_with(last.as_str())) {
            continue;
        }
        out.push(p);
    }
    out
}

struct ClassDef {
    name: &'static str,
    description: &'static str,
    select: Option<fn(&Metadata) -> Option<&Descriptor>>,
    /// Whole non-geographic calling codes in the class (ITU-T E.164
    /// assignments, see `docs/numbering.md`).
    whole_codes: &'static [&'static str],
    /// Further prefixes (cited in `docs/numbering.md`).
    extra: &'static [&'static str],
}

const CLASSES: &[ClassDef] = &[
    ClassDef {
        name: "international-networks",
        description: "ITU-T E.164 shared codes for international networks (+882, +883) and disaster relief (+888)",
        select: None,
        whole_codes: &["882", "883", "888"],
        extra: &[],
    },
    ClassDef {
        name: "personal-number",
        description: "personal numbering ranges (e.g. UK 070) and Universal Personal Telecommunication (+878)",
        select: Some(|m| m.descriptors().personal_number()),
        whole_codes: &["878"],
        extra: &[],
    },
    ClassDef {
        name: "premium-rate",
        description: "premium-rate ranges of every country and International Premium Rate Service (+979)",
        select: Some(|m| m.descriptors().premium_rate()),
        whole_codes: &["979"],
        extra: &[],
    },
    ClassDef {
        name: "satellite",
        description: "mobile satellite services: Inmarsat (+870), GMSS (+881), Thuraya (+882 16)",
        select: None,
        whole_codes: &["870", "881"],
        extra: &["88216"],
    },
    ClassDef {
        name: "shared-cost",
        description: "shared-cost ranges of every country and International Shared Cost Service (+808)",
        select: Some(|m| m.descriptors().shared_cost()),
        whole_codes: &["808"],
        extra: &[],
    },
    ClassDef {
        name: "toll-free",
        description: "toll-free (freephone) ranges of every country and Universal International Freephone Numbers (+800)",
        select: Some(|m| m.descriptors().toll_free()),
        whole_codes: &["800"],
        extra: &[],
    },
];

/// Non-geographic calling codes the classes above are expected to cover;
/// the generator fails when libphonenumber lists one not accounted for.
const KNOWN_NON_GEOGRAPHIC: &[u16] = &[800, 808, 870, 878, 881, 882, 883, 888, 979];

fn generate() -> Result<(String, String)> {
    let mut countries: BTreeMap<String, CountryOut> = BTreeMap::new();
    let mut stats = Stats::default();
    let mut class_sets: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for code in calling_codes() {
        let regions = regions_of(code);
        let geographic: Vec<&Metadata> = regions
            .iter()
            .copied()
            .filter(|m| is_geographic(m))
            .collect();
        if geographic.is_empty() && !KNOWN_NON_GEOGRAPHIC.contains(&code) {
            return Err(format!(
                "non-geographic calling code +{code} is not assigned to a number class; extend CLASSES"
            ));
        }
        if geographic.len() == 1 {
            let entry = countries.entry(geographic[0].id().to_owned()).or_default();
            entry.calling_code = code.to_string();
            entry.prefixes.insert(code.to_string());
        } else if geographic.len() > 1 {
            split_shared_code(code, &geographic, &mut countries, &mut stats)?;
        }
        for class in CLASSES {
            if let Some(select) = class.select {
                let found = class_prefixes(code, &regions, class.name, select, &mut stats)?;
                class_sets.entry(class.name).or_default().extend(found);
            }
        }
    }

    let source = format!(
        "libphonenumber {LIBPHONENUMBER_VERSION} (phonenumber crate {CRATE_VERSION}), generated {GENERATED}"
    );
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "# Tollgate numbering data. GENERATED by tools/numbering-gen; do not edit."
    );
    let _ = writeln!(
        w,
        "# Regenerate: cargo run -p numbering-gen -- policy-lang/data/numbering.tsv"
    );
    let _ = writeln!(
        w,
        "# Source: libphonenumber {LIBPHONENUMBER_VERSION} PhoneNumberMetadata.xml via the phonenumber crate {CRATE_VERSION} (Apache-2.0)."
    );
    let _ = writeln!(
        w,
        "# Country names: ISO 3166-1 English short names (Debian iso-codes 4.15.0)."
    );
    let _ = writeln!(
        w,
        "# Emergency numbers: libphonenumber {LIBPHONENUMBER_VERSION} ShortNumberMetadata.xml <emergency> + cited additions (tools/numbering-gen/src/emergency.rs)."
    );
    let _ = writeln!(
        w,
        "# Method and approximations: docs/numbering.md. National depth cap: {NATIONAL_DEPTH_CAP} digits."
    );
    let _ = writeln!(
        w,
        "# Records (tab-separated): source TEXT | country ISO CALLING_CODE NAME | prefix ISO DIGITS | carve-out ISO DIGITS | ambiguous DIGITS ISO,ISO.. | class NAME DESCRIPTION | class-prefix NAME DIGITS | emergency ISO NUMBER | dial-code CALLING_CODE REGION | dial-lengths REGION L,L.. | dial-idd REGION DIGITS read|refuse | dial-trunk REGION DIGITS MODES | dial-lead CALLING_CODE DIGITS MODES"
    );
    let _ = writeln!(w, "source\t{source}");
    for (iso, c) in &countries {
        let name = iso3166::NAMES
            .binary_search_by(|(code, _)| code.cmp(&iso.as_str()))
            .map(|i| iso3166::NAMES[i].1)
            .unwrap_or("");
        let _ = writeln!(w, "country\t{iso}\t{}\t{name}", c.calling_code);
    }
    for (iso, c) in &countries {
        for p in minimal(c.prefixes.iter().cloned()) {
            let _ = writeln!(w, "prefix\t{iso}\t{p}");
        }
    }
    for (iso, c) in &countries {
        for p in minimal(c.carve_outs.iter().cloned()) {
            let _ = writeln!(w, "carve-out\t{iso}\t{p}");
        }
    }
    let mut ambiguous = stats.ambiguous.clone();
    ambiguous.sort();
    for (p, rs) in &ambiguous {
        let _ = writeln!(w, "ambiguous\t{p}\t{}", rs.join(","));
    }
    let mut class_sizes = Vec::new();
    for class in CLASSES {
        let _ = writeln!(w, "class\t{}\t{}", class.name, class.description);
    }
    for class in CLASSES {
        let mut all = class_sets.remove(class.name).unwrap_or_default();
        all.extend(class.whole_codes.iter().map(|c| (*c).to_owned()));
        all.extend(class.extra.iter().map(|c| (*c).to_owned()));
        let all = minimal(all);
        class_sizes.push(format!("{}={}", class.name, all.len()));
        for p in all {
            let _ = writeln!(w, "class-prefix\t{}\t{p}", class.name);
        }
    }
    for (iso, numbers) in emergency::EMERGENCY {
        let set: BTreeSet<&str> = numbers.iter().copied().collect();
        for n in set {
            let _ = writeln!(w, "emergency\t{iso}\t{n}");
        }
    }
    let dial = dialling::records(&calling_codes(), regions_of)?;
    let dial_summary = format!(
        "dialling: {} international prefixes, {} national-prefix strings",
        dial.lines().filter(|l| l.starts_with("dial-idd\t")).count(),
        dial.lines()
            .filter(|l| l.starts_with("dial-trunk\t"))
            .count()
    );
    s.push_str(&dial);
    let summary = format!(
        "{} countries; ambiguous prefixes at cap: {}; class prefixes: {}; class nodes decided at cap: {:?}; class prefixes also covering other-length numbers: {:?}; {dial_summary}",
        countries.len(),
        ambiguous.len(),
        class_sizes.join(", "),
        stats.class_capped,
        stats.class_length_mixed
    );
    Ok((s, summary))
}

fn main() -> ExitCode {
    let mut check = false;
    let mut path = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            _ if path.is_none() && !arg.starts_with('-') => path = Some(arg),
            _ => {
                eprintln!("usage: numbering-gen [--check] <path/to/numbering.tsv>");
                return ExitCode::from(2);
            }
        }
    }
    let Some(path) = path else {
        eprintln!("usage: numbering-gen [--check] <path/to/numbering.tsv>");
        return ExitCode::from(2);
    };
    let (text, summary) = match generate() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("numbering-gen: {e}");
            return ExitCode::FAILURE;
        }
    };
    if check {
        match std::fs::read_to_string(&path) {
            Ok(current) if current == text => {
                println!("{path} is up to date ({summary})");
                ExitCode::SUCCESS
            }
            Ok(_) => {
                eprintln!(
                    "{path} is stale: run `cargo run -p numbering-gen -- {path}` and commit the result"
                );
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("cannot read {path}: {e}");
                ExitCode::FAILURE
            }
        }
    } else {
        if let Err(e) = std::fs::write(&path, &text) {
            eprintln!("cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
        println!("wrote {path} ({summary})");
        ExitCode::SUCCESS
    }
}
