//! Dialling data: what the normalizer needs to read dialled strings the way
//! libphonenumber does (docs/numbering.md, "Dialling data").
//!
//! For every region: its international prefixes (the `internationalPrefix`
//! regex expanded into the literal digit strings it matches), the strings a
//! national number may begin with that libphonenumber would take as a
//! national (trunk) prefix or carrier code (`nationalPrefixForParsing`, or
//! the `nationalPrefix`), whether such a prefix is always stripped, and the
//! possible lengths of national numbers. For every calling code: the region
//! whose metadata libphonenumber uses for numbers dialled with that code
//! (the main country, or `001` for non-geographic codes).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use phonenumber::metadata::Metadata;
use regex_automata::dfa::Automaton;
use regex_automata::dfa::dense;
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::util::syntax;
use regex_automata::{Anchored, MatchKind};

use crate::Result;

/// Deepest literal an international prefix pattern may expand to; deeper
/// means the pattern is not a small finite set and the generator fails.
const IDD_DEPTH: usize = 10;
/// Deepest string of the national-prefix cover; a string still undecided at
/// this depth is kept (it covers every longer match, conservatively).
const COVER_DEPTH: usize = 4;

/// A full-match DFA over digits for one libphonenumber pattern.
struct Dfa {
    dfa: dense::DFA<Vec<u32>>,
    start: StateID,
    /// state → some completion (possibly empty) is a full match
    live: HashMap<StateID, bool>,
}

impl Dfa {
    fn new(pattern: &str) -> Result<Dfa> {
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
            .build(&format!("^(?:{})$", pattern.trim()))
            .map_err(|e| format!("cannot compile {pattern:?}: {e}"))?;
        let start = dfa
            .start_state(&start::Config::new().anchored(Anchored::Yes))
            .map_err(|e| format!("no start state for {pattern:?}: {e}"))?;
        Ok(Dfa {
            dfa,
            start,
            live: HashMap::new(),
        })
    }

    fn step(&self, s: StateID, digit: u8) -> StateID {
        self.dfa.next_state(s, digit)
    }

    fn walk(&self, s: StateID, digits: &str) -> StateID {
        digits.bytes().fold(s, |s, d| self.step(s, d))
    }

    /// The digits read so far are a full match.
    fn accepts(&self, s: StateID) -> bool {
        self.dfa.is_match_state(self.dfa.next_eoi_state(s))
    }

    /// Some completion of the digits read so far (the empty one included)
    /// is a full match.
    fn can_match(&mut self, s: StateID) -> bool {
        if let Some(&v) = self.live.get(&s) {
            return v;
        }
        // breadth-first over the states reachable by digits
        let mut seen = BTreeSet::from([s]);
        let mut queue = vec![s];
        let mut found = false;
        while let Some(x) = queue.pop() {
            if self.accepts(x) {
                found = true;
                break;
            }
            if self.dfa.is_dead_state(x) {
                continue;
            }
            for d in b'0'..=b'9' {
                let y = self.step(x, d);
                if seen.insert(y) {
                    queue.push(y);
                }
            }
        }
        self.live.insert(s, found);
        found
    }
}

/// The digit strings a finite pattern matches in full, sorted.
fn literals(pattern: &str) -> Result<Vec<String>> {
    let mut dfa = Dfa::new(pattern)?;
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), dfa.start)];
    while let Some((w, s)) = stack.pop() {
        if !w.is_empty() && dfa.accepts(s) {
            out.push(w.clone());
        }
        for d in b'0'..=b'9' {
            let next = dfa.step(s, d);
            if !dfa.can_match(next) {
                continue;
            }
            if w.len() + 1 > IDD_DEPTH {
                return Err(format!(
                    "international prefix {pattern:?} matches strings longer than {IDD_DEPTH} digits"
                ));
            }
            stack.push((format!("{w}{}", char::from(d)), next));
        }
    }
    out.sort();
    Ok(out)
}

/// The minimal strings every non-empty match of `pattern` (as a prefix of a
/// national number) begins with: a string that is itself a full match, one
/// any digit may follow (a wildcard), or one still undecided at
/// [`COVER_DEPTH`] digits. A `$` in the pattern is taken as the end of the
/// match, not of the number: more strings than libphonenumber needs, which
/// only makes more forms refused.
fn cover(pattern: &str) -> Result<Vec<String>> {
    let mut dfa = Dfa::new(pattern)?;
    let mut out = Vec::new();
    let mut stack: Vec<(String, StateID)> = (b'0'..=b'9')
        .map(|d| (char::from(d).to_string(), dfa.step(dfa.start, d)))
        .collect();
    while let Some((w, s)) = stack.pop() {
        if !dfa.can_match(s) {
            continue;
        }
        // a wildcard (every digit goes on) is covered by the string
        // before it: fewer, coarser strings, refused alike
        let wildcard = (b'0'..=b'9').all(|d| {
            let n = dfa.step(s, d);
            dfa.can_match(n)
        });
        if dfa.accepts(s) || wildcard || w.len() >= COVER_DEPTH {
            out.push(w);
            continue;
        }
        for d in b'0'..=b'9' {
            stack.push((format!("{w}{}", char::from(d)), dfa.step(s, d)));
        }
    }
    out.sort();
    Ok(out)
}

/// Longest national number (trunk prefix included) the per-length modes
/// describe; longer dialled numbers are refused.
pub const MAX_LEN: usize = 17;

/// Per length `L` of a national number beginning with `p` (exactly what the
/// national-prefix pattern matches there, `p` included), what
/// libphonenumber does with `p`: `k` keeps it (every such number matches the
/// region's general pattern and none of the numbers left after stripping
/// would, so a reading without `p` is never a valid number either), `s`
/// strips it (no such number matches the general pattern, or none at all
/// begins with `p`, and the rest has a possible length), `r` anything else
/// (refused). `strip_always`: no number of the region begins with `p`.
fn modes(meta: &Metadata, p: &str, strip_always: bool, lengths: &[usize]) -> Result<String> {
    let general = meta.descriptors().general();
    let dfa = Dfa::new(general.national_number().as_str())?;
    // the phonenumber crate undoes a strip only when the rest is shorter
    // than the general descriptor's shortest possible length (and not a
    // local-only length)
    let proper_prefix_viable = {
        let mut s = dfa.start;
        let mut v = false;
        for d in p.bytes() {
            v |= dfa.accepts(s);
            s = dfa.step(s, d);
        }
        v
    };
    let advance = |set: &BTreeSet<StateID>| -> BTreeSet<StateID> {
        set.iter()
            .flat_map(|&s| (b'0'..=b'9').map(move |d| (s, d)))
            .map(|(s, d)| dfa.step(s, d))
            .collect()
    };
    // states after p and k more digits; states after k digits
    let mut after_p: BTreeSet<StateID> = BTreeSet::from([dfa.walk(dfa.start, p)]);
    let mut after_k: BTreeSet<StateID> = BTreeSet::from([dfa.start]);
    let mut out = String::new();
    for len in 0..=MAX_LEN {
        if len <= p.len() {
            out.push('r');
            continue;
        }
        let k = len - p.len();
        after_p = advance(&after_p);
        after_k = advance(&after_k);
        let all_viable = after_p.iter().all(|&s| dfa.accepts(s));
        let none_viable = !after_p.iter().any(|&s| dfa.accepts(s));
        let rest_none_viable = !after_k.iter().any(|&s| dfa.accepts(s));
        let mode = if (strip_always || none_viable) && !proper_prefix_viable && lengths.contains(&k)
        {
            's'
        } else if !strip_always && all_viable && rest_none_viable {
            'k'
        } else {
            'r'
        };
        out.push(mode);
    }
    Ok(out)
}

/// Per length of a national number beginning with `p`: `k` when every such
/// number matches the region's general pattern (the number as written is
/// one of the region's), else `r`.
fn lead_modes(meta: &Metadata, p: &str) -> Result<String> {
    let dfa = Dfa::new(meta.descriptors().general().national_number().as_str())?;
    let mut set: BTreeSet<StateID> = BTreeSet::from([dfa.walk(dfa.start, p)]);
    let mut out = String::new();
    for len in 0..=MAX_LEN {
        if len < p.len() {
            out.push('r');
            continue;
        }
        if len > p.len() {
            set = set
                .iter()
                .flat_map(|&s| (b'0'..=b'9').map(move |d| (s, d)))
                .map(|(s, d)| dfa.step(s, d))
                .collect();
        }
        out.push(if len > p.len() && set.iter().all(|&s| dfa.accepts(s)) {
            'k'
        } else {
            'r'
        });
    }
    Ok(out)
}

/// Whether some string matched by the region's general pattern begins with
/// `p` or is a proper prefix of it.
fn general_may_begin_with(meta: &Metadata, p: &str) -> Result<bool> {
    let pattern = meta.descriptors().general().national_number().as_str();
    let mut dfa = Dfa::new(pattern)?;
    let mut s = dfa.start;
    for d in p.bytes() {
        if dfa.accepts(s) {
            return Ok(true);
        }
        s = dfa.step(s, d);
    }
    Ok(dfa.can_match(s))
}

/// The possible lengths of a region's national numbers, local-only lengths
/// excluded.
fn lengths(meta: &Metadata) -> Vec<usize> {
    let general = meta.descriptors().general();
    let local: BTreeSet<usize> = general
        .possible_local_length()
        .iter()
        .map(|&l| usize::from(l))
        .collect();
    crate::region_lengths(meta)
        .into_iter()
        .filter(|l| !local.contains(l))
        .collect()
}

/// One region's dialling data.
pub struct Region {
    pub lengths: Vec<usize>,
    /// (literal, readable): not readable when a shorter literal is a prefix
    /// of it (which one libphonenumber strips is then a matter of the
    /// pattern's alternation order).
    pub idd: Vec<(String, bool)>,
    /// (string, per-length modes, see [`modes`]): a string that is not a
    /// plain literal national prefix is refused at every length.
    pub trunk: Vec<(String, String)>,
}

pub fn region(meta: &Metadata) -> Result<Region> {
    let mut idd = Vec::new();
    if let Some(re) = meta.international_prefix() {
        let lits = literals(re.as_str())?;
        for l in &lits {
            let shadowed = lits
                .iter()
                .any(|o| o.len() < l.len() && l.starts_with(o.as_str()));
            idd.push((l.clone(), !shadowed));
        }
    }
    let np = meta
        .national_prefix()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    let npfp = meta
        .national_prefix_for_parsing()
        .map(|r| r.as_str().trim().to_owned())
        .filter(|p| !p.is_empty());
    let transform = meta
        .national_prefix_transform_rule()
        .is_some_and(|t| !t.trim().is_empty());
    let mut strings: BTreeSet<String> = BTreeSet::new();
    if let Some(p) = &npfp {
        strings.extend(cover(p)?);
    }
    if let Some(p) = np {
        // the national prefix itself: libphonenumber's parser for a
        // region without a parsing pattern, and the phonenumber crate's
        // second strip, use it
        if p.bytes().all(|b| b.is_ascii_digit()) {
            strings.insert(p.to_owned());
        } else {
            strings.extend(cover(p)?);
        }
    }
    // minimal: a string covered by a shorter one adds nothing
    let mut minimal: Vec<String> = Vec::new();
    for s in strings {
        if !minimal.iter().any(|m| s.starts_with(m.as_str())) {
            minimal.push(s);
        }
    }
    let lengths = lengths(meta);
    // a string is read exactly when it is all the pattern can match there:
    // it is a match, nothing longer beginning with it is, and there is no
    // transform rule (which would rewrite rather than strip)
    let mut pattern_dfa = match &npfp {
        Some(p) => Some(Dfa::new(p)?),
        None => None,
    };
    let mut trunk = Vec::new();
    for s in &minimal {
        let exact = !transform
            && match pattern_dfa.as_mut() {
                None => np == Some(s.as_str()),
                Some(dfa) => {
                    let st = dfa.walk(dfa.start, s);
                    dfa.accepts(st)
                        && (b'0'..=b'9').all(|d| {
                            let n = dfa.step(st, d);
                            !dfa.can_match(n)
                        })
                }
            };
        let m = if exact {
            let always = !general_may_begin_with(meta, s)?;
            modes(meta, s, always, &lengths)?
        } else {
            "r".repeat(MAX_LEN + 1)
        };
        trunk.push((s.clone(), m));
    }
    Ok(Region {
        lengths,
        idd,
        trunk,
    })
}

/// The dialling records of the data file.
pub fn records(
    codes: &[u16],
    regions_of: impl Fn(u16) -> Vec<&'static Metadata>,
) -> Result<String> {
    let mut out = String::new();
    let mut seen: BTreeMap<String, Region> = BTreeMap::new();
    let mut code_rows = Vec::new();
    for &code in codes {
        let regions = regions_of(code);
        let Some(main) = regions.first() else {
            continue;
        };
        // libphonenumber reads a number dialled with this code by the
        // metadata of the code's main country (or of the non-geographic
        // entity `001`)
        let key = if main.id() == "001" {
            format!("001-{code}")
        } else {
            main.id().to_owned()
        };
        code_rows.push(format!("dial-code\t{code}\t{key}"));
        for meta in &regions {
            let key = if meta.id() == "001" {
                format!("001-{code}")
            } else {
                meta.id().to_owned()
            };
            if let std::collections::btree_map::Entry::Vacant(e) = seen.entry(key) {
                e.insert(region(meta)?);
            }
        }
    }
    for row in code_rows {
        out.push_str(&row);
        out.push('\n');
    }
    // The phonenumber crate strips the HOME country's national prefix from
    // numbers dialled with any calling code (libphonenumber uses the code's
    // own region): the normalizer refuses `+C <p>...` for a home national
    // prefix p unless C itself handles p, or numbers of C may begin with p
    // (then the literal reading is kept, at the lengths where every number
    // so written matches the code's pattern: `+39 06...` is Rome). These
    // records list the second case.
    let exact: BTreeSet<&str> = seen
        .values()
        .flat_map(|r| r.trunk.iter())
        .filter(|(_, m)| m.bytes().any(|b| b != b'r'))
        .map(|(s, _)| s.as_str())
        .collect();
    for &code in codes {
        let regions = regions_of(code);
        let Some(main) = regions.first() else {
            continue;
        };
        let key = if main.id() == "001" {
            format!("001-{code}")
        } else {
            main.id().to_owned()
        };
        let own: Vec<&str> = seen
            .get(&key)
            .map(|r| r.trunk.iter().map(|(s, _)| s.as_str()).collect())
            .unwrap_or_default();
        for p in &exact {
            if own.iter().any(|o| p.starts_with(o)) {
                continue;
            }
            if general_may_begin_with(main, p)? {
                let modes = lead_modes(main, p)?;
                if modes.contains('k') {
                    out.push_str(&format!("dial-lead\t{code}\t{p}\t{modes}\n"));
                }
            }
        }
    }
    for (key, r) in &seen {
        let lengths: Vec<String> = r.lengths.iter().map(usize::to_string).collect();
        out.push_str(&format!("dial-lengths\t{key}\t{}\n", lengths.join(",")));
        for (l, ok) in &r.idd {
            let mode = if *ok { "read" } else { "refuse" };
            out.push_str(&format!("dial-idd\t{key}\t{l}\t{mode}\n"));
        }
        for (s, modes) in &r.trunk {
            out.push_str(&format!("dial-trunk\t{key}\t{s}\t{modes}\n"));
        }
    }
    Ok(out)
}
