//! Telephone-numbering data: E.164 prefixes per country and per number
//! class, and emergency short numbers per home country.
//!
//! The data is `data/numbering.tsv`, generated from libphonenumber's metadata
//! by `tools/numbering-gen` (see `docs/numbering.md` for the method and its
//! approximations) and embedded at compile time; this crate does not depend
//! on libphonenumber at run time. The file is parsed once, on first use.
//!
//! Countries sharing a calling code are split: `allow country US` must not
//! allow Canada, so [`Country::prefixes`] of a NANP country are its own area
//! codes, and a main country such as GB is its calling code with the other
//! regions' ranges listed in [`Country::carve_outs`] (Guernsey, Jersey, Isle
//! of Man). [`country_of`] does the longest-prefix match that honours them.

use std::collections::BTreeMap;
use std::sync::OnceLock;

const DATA: &str = include_str!("../data/numbering.tsv");

/// Where the data comes from, e.g. "libphonenumber 9.0.33 (phonenumber crate
/// 0.3.10), generated 2026-11-24" (the file's `source` record).
pub fn data_source() -> &'static str {
    data().source
}

/// A country (libphonenumber region id, an ISO 3166-1 alpha-2 code or one of
/// the user-assigned AC, TA, XK) and its share of the E.164 numbering space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Country {
    /// ISO 3166-1 alpha-2 code, uppercase.
    pub iso: &'static str,
    /// English short name (ISO 3166-1), or empty.
    pub name: String,
    /// The calling code, e.g. "44".
    pub calling_code: String,
    /// E.164 digit prefixes (calling code included) of the country's
    /// numbers: sorted, none covering another.
    pub prefixes: Vec<String>,
    /// Prefixes under [`Self::prefixes`] that are not the country's (another
    /// country's, or shared by several): sorted, minimal.
    pub carve_outs: Vec<String>,
}

/// A class of numbers across all countries, e.g. `premium-rate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberClass {
    pub name: &'static str,
    pub description: &'static str,
    /// E.164 digit prefixes: sorted, none covering another.
    pub prefixes: Vec<String>,
}

/// The country with this exact (uppercase) ISO alpha-2 code.
pub fn country(iso: &str) -> Option<&'static Country> {
    let countries = countries();
    countries
        .binary_search_by(|c| c.iso.cmp(iso))
        .ok()
        .and_then(|i| countries.get(i))
}

/// All countries, sorted by ISO code.
pub fn countries() -> &'static [Country] {
    &data().countries
}

/// The country an E.164 number (digits only, no `+`) belongs to: longest
/// prefix match over all countries' prefixes, where a matching carve-out
/// longer than the country's prefix excludes it. `None` for non-geographic
/// codes (+800, +882, ...), unassigned ranges and shared NANP service codes.
pub fn country_of(digits: &str) -> Option<&'static Country> {
    let data = data();
    // Longest first: the longest matching prefix or carve-out decides.
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    (1..=digits.len())
        .rev()
        .find_map(|len| data.by_prefix.get(digits.get(..len)?))
        .copied()
        .flatten()
        .and_then(|i| data.countries.get(i))
}

/// The number class with this name.
pub fn class(name: &str) -> Option<&'static NumberClass> {
    let classes = classes();
    classes
        .binary_search_by(|c| c.name.cmp(name))
        .ok()
        .and_then(|i| classes.get(i))
}

/// All number classes, sorted by name.
pub fn classes() -> &'static [NumberClass] {
    &data().classes
}

/// The emergency short numbers of a home country: sorted, deduplicated,
/// always including 112 and 911 (3GPP TS 22.101 requires mobile equipment to
/// treat both as emergency numbers everywhere).
pub fn emergency_numbers(iso: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = vec!["112", "911"];
    if let Some(numbers) = data().emergency.get(iso) {
        out.extend(numbers.iter().copied());
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// What the normalizer needs to read dialled numbers of one region the way
/// libphonenumber does (module `dialling`; docs/numbering.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DialRegion {
    /// Possible lengths of a national (significant) number, local-only
    /// lengths excluded.
    pub lengths: Vec<usize>,
    /// International prefixes as literal digits, and whether each can be
    /// read (not when a shorter one is a prefix of it).
    pub idd: Vec<(&'static str, bool)>,
    /// Strings a national number may begin with that libphonenumber may take
    /// as a national (trunk) prefix, with one mode per length of the number
    /// (index = length, prefix included): `s` strip, `k` keep, `r` refuse.
    pub trunk: Vec<(&'static str, &'static str)>,
}

/// The dialling data of a region: an ISO code, or `001-<code>` for a
/// non-geographic calling code.
pub fn dial_region(key: &str) -> Option<&'static DialRegion> {
    data().dial_regions.get(key)
}

/// (calling code, digits, per-length modes): numbers of the code may begin
/// with these digits, which are some home country's national prefix; `k` at
/// the lengths (of the national number) where every such number matches the
/// code's pattern (module `dialling`).
pub fn dial_leads() -> &'static [(&'static str, &'static str, &'static str)] {
    &data().dial_leads
}

/// Calling code → the region whose dialling data libphonenumber uses for
/// numbers with that code (the code's main country, or `001-<code>`).
pub fn dial_codes() -> &'static BTreeMap<&'static str, &'static str> {
    &data().dial_codes
}

#[derive(Debug)]
struct Data {
    source: &'static str,
    countries: Vec<Country>,
    classes: Vec<NumberClass>,
    emergency: BTreeMap<&'static str, Vec<&'static str>>,
    /// Every prefix and carve-out: the index of the owning country, or
    /// `None` for a carve-out no country owns.
    by_prefix: BTreeMap<String, Option<usize>>,
    dial_regions: BTreeMap<&'static str, DialRegion>,
    dial_codes: BTreeMap<&'static str, &'static str>,
    dial_leads: Vec<(&'static str, &'static str, &'static str)>,
}

fn data() -> &'static Data {
    static DATA_CELL: OnceLock<Data> = OnceLock::new();
    DATA_CELL.get_or_init(|| {
        // The file is generated and checked by `tests::committed_file_parses`;
        // should it ever be malformed, the bad records are skipped rather than
        // aborting the compiler.
        parse(DATA).unwrap_or_else(|_| Data {
            source: "",
            countries: Vec::new(),
            classes: Vec::new(),
            emergency: BTreeMap::new(),
            by_prefix: BTreeMap::new(),
            dial_regions: BTreeMap::new(),
            dial_codes: BTreeMap::new(),
            dial_leads: Vec::new(),
        })
    })
}

/// A malformed line of the data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    pub line: usize,
    pub message: String,
}

fn is_digits(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse(text: &'static str) -> Result<Data, DataError> {
    let mut source = None;
    let mut countries: BTreeMap<&'static str, Country> = BTreeMap::new();
    let mut classes: BTreeMap<&'static str, NumberClass> = BTreeMap::new();
    let mut emergency: BTreeMap<&'static str, Vec<&'static str>> = BTreeMap::new();
    let mut dial_regions: BTreeMap<&'static str, DialRegion> = BTreeMap::new();
    let mut dial_codes: BTreeMap<&'static str, &'static str> = BTreeMap::new();
    let mut dial_leads: Vec<(&'static str, &'static str, &'static str)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let err = |message: &str| DataError {
            line: index + 1,
            message: message.to_owned(),
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&'static str> = line.split('\t').collect();
        match fields.as_slice() {
            ["source", text] => source = Some(*text),
            ["country", iso, code, name] => {
                if iso.len() != 2 || !is_digits(code, 3) {
                    return Err(err("bad country record"));
                }
                countries.insert(
                    iso,
                    Country {
                        iso,
                        name: (*name).to_owned(),
                        calling_code: (*code).to_owned(),
                        prefixes: Vec::new(),
                        carve_outs: Vec::new(),
                    },
                );
            }
            [kind @ ("prefix" | "carve-out"), iso, digits] => {
                if !is_digits(digits, 15) {
                    return Err(err("prefix is not 1-15 digits"));
                }
                let country = countries
                    .get_mut(iso)
                    .ok_or_else(|| err("prefix of an undeclared country"))?;
                if *kind == "prefix" {
                    country.prefixes.push((*digits).to_owned());
                } else {
                    country.carve_outs.push((*digits).to_owned());
                }
            }
            ["ambiguous", digits, _regions] => {
                if !is_digits(digits, 15) {
                    return Err(err("prefix is not 1-15 digits"));
                }
            }
            ["class", name, description] => {
                classes.insert(
                    name,
                    NumberClass {
                        name,
                        description,
                        prefixes: Vec::new(),
                    },
                );
            }
            ["class-prefix", name, digits] => {
                if !is_digits(digits, 15) {
                    return Err(err("prefix is not 1-15 digits"));
                }
                classes
                    .get_mut(name)
                    .ok_or_else(|| err("prefix of an undeclared class"))?
                    .prefixes
                    .push((*digits).to_owned());
            }
            ["emergency", iso, number] => {
                if !is_digits(number, 6) {
                    return Err(err("emergency number is not 1-6 digits"));
                }
                emergency.entry(iso).or_default().push(number);
            }
            ["dial-code", code, region] => {
                if !is_digits(code, 3) {
                    return Err(err("calling code is not 1-3 digits"));
                }
                dial_codes.insert(code, region);
            }
            ["dial-lead", code, digits, modes] => {
                if !is_digits(code, 3)
                    || !is_digits(digits, 10)
                    || modes.len() != 18
                    || !modes.bytes().all(|b| matches!(b, b'k' | b'r'))
                {
                    return Err(err("bad lead record"));
                }
                dial_leads.push((code, digits, modes));
            }
            ["dial-lengths", region, lengths] => {
                let lengths: Option<Vec<usize>> = lengths
                    .split(',')
                    .filter(|l| !l.is_empty())
                    .map(|l| l.parse().ok().filter(|n| (1..=17).contains(n)))
                    .collect();
                dial_regions.entry(region).or_default().lengths =
                    lengths.ok_or_else(|| err("bad lengths"))?;
            }
            ["dial-idd", region, digits, mode] => {
                if !is_digits(digits, 10) || !matches!(*mode, "read" | "refuse") {
                    return Err(err("bad international prefix record"));
                }
                dial_regions
                    .entry(region)
                    .or_default()
                    .idd
                    .push((digits, *mode == "read"));
            }
            ["dial-trunk", region, digits, modes] => {
                if !is_digits(digits, 10)
                    || modes.len() != 18
                    || !modes.bytes().all(|b| matches!(b, b's' | b'k' | b'r'))
                {
                    return Err(err("bad national prefix record"));
                }
                dial_regions
                    .entry(region)
                    .or_default()
                    .trunk
                    .push((digits, modes));
            }
            _ => return Err(err("unknown record")),
        }
    }
    let source = source.ok_or(DataError {
        line: 0,
        message: "no source record".to_owned(),
    })?;
    let countries: Vec<Country> = countries
        .into_values()
        .map(|mut c| {
            c.prefixes.sort();
            c.carve_outs.sort();
            c
        })
        .collect();
    let mut by_prefix: BTreeMap<String, Option<usize>> = BTreeMap::new();
    for c in &countries {
        for p in &c.carve_outs {
            by_prefix.entry(p.clone()).or_insert(None);
        }
    }
    for (i, c) in countries.iter().enumerate() {
        for p in &c.prefixes {
            by_prefix.insert(p.clone(), Some(i));
        }
    }
    let classes = classes
        .into_values()
        .map(|mut c| {
            c.prefixes.sort();
            c
        })
        .collect();
    Ok(Data {
        source,
        countries,
        classes,
        emergency,
        by_prefix,
        dial_regions,
        dial_codes,
        dial_leads,
    })
}

#[cfg(test)]
#[allow(clippy::panic, reason = "test assertions")]
mod tests {
    use super::*;

    fn iso_of(digits: &str) -> Option<&'static str> {
        country_of(digits).map(|c| c.iso)
    }

    fn covers(prefixes: &[String], digits: &str) -> bool {
        prefixes.iter().any(|p| digits.starts_with(p.as_str()))
    }

    #[test]
    fn committed_file_parses() {
        let parsed = parse(DATA);
        assert!(parsed.is_ok(), "{parsed:?}");
        assert!(countries().len() > 200);
        assert_eq!(classes().len(), 6);
    }

    #[test]
    fn data_source_is_cited() {
        assert_eq!(
            data_source(),
            "libphonenumber 9.0.33 (phonenumber crate 0.3.10), generated 2026-11-24"
        );
    }

    #[test]
    fn malformed_data_is_an_error() {
        assert!(parse("source\tx\nprefix\tZZ\t1\n").is_err());
        assert!(parse("source\tx\ncountry\tFR\t33\tFrance\nprefix\tFR\t3x\n").is_err());
        assert!(parse("nonsense\n").is_err());
        assert!(parse("# only a comment\n").is_err());
    }

    #[test]
    fn us_and_canada_are_disjoint() {
        let (Some(us), Some(ca)) = (country("US"), country("CA")) else {
            panic!("US and CA must exist");
        };
        assert_eq!(us.calling_code, "1");
        assert_eq!(ca.calling_code, "1");
        for p in &us.prefixes {
            assert!(!covers(&ca.prefixes, p), "CA covers US {p}");
            assert!(
                !ca.prefixes.iter().any(|q| q.starts_with(p.as_str())),
                "US {p} covers CA"
            );
        }
        assert!(covers(&us.prefixes, "12125550100"));
        assert!(!covers(&ca.prefixes, "12125550100"));
        assert!(covers(&ca.prefixes, "14165550100"));
        assert!(!covers(&us.prefixes, "14165550100"));
        // Jamaica (876) is neither; nor are the NANP-wide service codes.
        for n in ["18765550100", "18005550100", "19005550100"] {
            assert!(!covers(&us.prefixes, n), "US covers {n}");
            assert!(!covers(&ca.prefixes, n), "CA covers {n}");
        }
        assert!(!us.prefixes.contains(&"1".to_owned()));
        assert_eq!(iso_of("12125550100"), Some("US"));
        assert_eq!(iso_of("14165550100"), Some("CA"));
        assert_eq!(iso_of("18765550100"), Some("JM"));
        assert_eq!(iso_of("18005550100"), None);
    }

    #[test]
    fn country_of_several_countries() {
        for (number, iso) in [
            ("33142685300", "FR"),
            ("4930123456", "DE"),
            ("442079460000", "GB"),
            ("447700900123", "GB"),
            ("441481712345", "GG"),
            ("441534712345", "JE"),
            ("441624712345", "IM"),
            ("74951234567", "RU"),
            ("77172123456", "KZ"),
            ("390612345678", "IT"),
            ("3906698123", "VA"),
            ("4722123456", "NO"),
            ("4779123456", "SJ"),
            ("61212345678", "AU"),
            ("61891621234", "CC"),
            ("61891641234", "CX"),
            ("212522123456", "MA"),
            ("212528812345", "EH"),
            ("358912345678", "FI"),
            ("358181234567", "AX"),
            ("81312345678", "JP"),
            ("8613812345678", "CN"),
            ("919876543210", "IN"),
        ] {
            assert_eq!(iso_of(number), Some(iso), "{number}");
        }
        assert_eq!(iso_of("881612345678"), None);
        assert_eq!(iso_of("88212345678"), None);
        assert_eq!(iso_of(""), None);
        assert_eq!(iso_of("+33142685300"), None);
    }

    #[test]
    fn gb_does_not_cover_crown_dependencies() {
        let Some(gb) = country("GB") else {
            panic!("GB must exist");
        };
        assert_eq!(gb.prefixes, vec!["44".to_owned()]);
        for p in ["441481", "441534", "441624"] {
            assert!(covers(&gb.carve_outs, p), "{p} not carved out of GB");
        }
        assert_eq!(gb.name, "United Kingdom");
    }

    #[test]
    fn france_is_its_calling_code() {
        let Some(fr) = country("FR") else {
            panic!("FR must exist");
        };
        assert_eq!(fr.prefixes, vec!["33".to_owned()]);
        assert!(fr.carve_outs.is_empty());
        assert_eq!(country("fr"), None);
    }

    #[test]
    fn countries_are_sorted_and_minimal() {
        let all = countries();
        assert!(all.windows(2).all(|w| w[0].iso < w[1].iso));
        for c in all {
            assert!(!c.prefixes.is_empty(), "{} has no prefixes", c.iso);
            for list in [&c.prefixes, &c.carve_outs] {
                assert!(list.windows(2).all(|w| w[0] < w[1]));
                for p in list.iter() {
                    assert!(p.starts_with(c.calling_code.as_str()), "{} {p}", c.iso);
                    assert!(!list.iter().any(|q| q != p && p.starts_with(q.as_str())));
                }
            }
            for p in &c.carve_outs {
                assert!(
                    covers(&c.prefixes, p),
                    "{} carve-out {p} not under a prefix",
                    c.iso
                );
            }
        }
    }

    #[test]
    fn classes_contain_expected_ranges() {
        let (Some(premium), Some(satellite), Some(networks)) = (
            class("premium-rate"),
            class("satellite"),
            class("international-networks"),
        ) else {
            panic!("classes must exist");
        };
        assert!(covers(&premium.prefixes, "449012345678"), "UK 09 premium");
        assert!(covers(&premium.prefixes, "19005550100"), "NANP 900");
        assert!(!covers(&premium.prefixes, "442079460000"));
        assert!(!covers(&premium.prefixes, "12125550100"));
        assert!(satellite.prefixes.contains(&"881".to_owned()));
        assert!(satellite.prefixes.contains(&"870".to_owned()));
        assert!(networks.prefixes.contains(&"882".to_owned()));
        assert!(networks.prefixes.contains(&"883".to_owned()));
        assert!(class("shared-cost").is_some());
        assert!(class("nope").is_none());
        let names: Vec<&str> = classes().iter().map(|c| c.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        for c in classes() {
            assert!(c.prefixes.windows(2).all(|w| w[0] < w[1]), "{}", c.name);
            for p in &c.prefixes {
                assert!(is_digits(p, 15), "{} {p}", c.name);
                assert!(
                    !c.prefixes
                        .iter()
                        .any(|q| q != p && p.starts_with(q.as_str())),
                    "{} {p} not minimal",
                    c.name
                );
            }
        }
    }

    #[test]
    fn emergency_numbers_always_include_112_and_911() {
        assert_eq!(emergency_numbers("GB"), vec!["112", "911", "999"]);
        assert_eq!(emergency_numbers("US"), vec!["112", "911"]);
        assert_eq!(emergency_numbers("XX"), vec!["112", "911"]);
        assert!(emergency_numbers("AU").contains(&"000"));
        for n in ["110", "118", "119"] {
            assert!(emergency_numbers("JP").contains(&n));
        }
        for n in ["15", "17", "18", "114", "115", "119", "191", "196", "197"] {
            assert!(emergency_numbers("FR").contains(&n), "FR {n}");
        }
        let de = emergency_numbers("DE");
        assert_eq!(de, vec!["110", "112", "911"]);
    }
}
