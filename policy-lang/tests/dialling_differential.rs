//! Differential test of the dialled-number reader against libphonenumber
//! (the `phonenumber` crate, the implementation the numbering data is
//! generated from): for generated dialled strings of every home country of
//! the numbering table, whenever libphonenumber reads a string as a valid
//! number, Tollgate reads the same number or refuses the string.
//!
//! The strings: every example number libphonenumber's metadata gives (fixed
//! line, mobile, toll-free, premium-rate, shared-cost, ...) of the home
//! country in its national forms (with and without each national prefix
//! string, with the calling code but no `+`), and example numbers of other
//! countries (premium-rate and shared-cost examples from every 24th home,
//! the rest from every 180th, rotating so that every example is tried) in international forms (`+`, each international
//! prefix of the home country, with the destination's and the home
//! country's national prefix where people put them: `+44 (0) 20 ...`),
//! each written with several separator styles. The counts are printed.

#![allow(clippy::print_stdout, reason = "the test reports its coverage")]
#![allow(clippy::unwrap_used, reason = "test")]

use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use phonenumber::{Mode, country};
use tollgate_policy::dialling::{Reading, read};
use tollgate_policy::numbering;

/// Example national numbers of a region: (kind, digits).
fn examples(meta: &Metadata) -> Vec<(&'static str, String)> {
    let d = meta.descriptors();
    let typed: [(&'static str, Option<&Descriptor>); 9] = [
        ("fixed", d.fixed_line()),
        ("mobile", d.mobile()),
        ("toll-free", d.toll_free()),
        ("premium", d.premium_rate()),
        ("shared-cost", d.shared_cost()),
        ("personal", d.personal_number()),
        ("voip", d.voip()),
        ("uan", d.uan()),
        ("pager", d.pager()),
    ];
    typed
        .into_iter()
        .filter_map(|(k, d)| Some((k, d?.example()?.to_string())))
        .filter(|(_, e)| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()))
        .collect()
}

/// The digits written in several styles people use.
fn styles(prefix: &str, digits: &str) -> Vec<String> {
    let (a, b) = digits.split_at(digits.len().min(3));
    let (b1, b2) = b.split_at(b.len() / 2);
    let mut out = vec![
        format!("{prefix}{digits}"),
        format!("{prefix} {a} {b1} {b2}"),
        format!("{prefix}-({a}) {b1}.{b2}"),
        format!("{prefix} [{a}] {b1}/{b2}"),
    ];
    out.retain(|s| !s.is_empty());
    out
}

fn readable_idd(r: &numbering::DialRegion) -> Vec<&'static str> {
    r.idd
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(i, _)| *i)
        .collect()
}

/// The national prefix strings to write numbers with: the shortest three
/// (a region whose metadata lists a hundred carrier codes is tried with a
/// few of them; the rest are refused alike by construction).
fn trunk_literals(r: &numbering::DialRegion) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = r.trunk.iter().map(|(s, _)| *s).collect();
    v.sort_by_key(|s| (s.len(), *s));
    v.truncate(3);
    v
}

/// The phonenumber crate strips the default (home) region's national prefix
/// from a number of another calling code (libphonenumber, the reference,
/// uses the code's own region, whose numbers here may begin with those
/// digits): `+39 0848 123456` from a `0` country is +39 848 123456 to the
/// crate and +39 0848 123456 to libphonenumber. Tollgate reads as the
/// reference does only where every number so written matches the code's
/// pattern (an `l` row with `k` at that length: `+39 06...` is Rome), and
/// refuses elsewhere; the SBC forwards its reading, so the carrier dials
/// what was decided. These strings are counted apart, not as agreement.
fn crate_deviation(home: &str, ours: &str, lib: &phonenumber::PhoneNumber) -> bool {
    let Some(h) = numbering::dial_region(home) else {
        return false;
    };
    let code = lib.code().value().to_string();
    let Some(national) = ours.strip_prefix(code.as_str()) else {
        return false;
    };
    let Some(cc_home) = numbering::country(home).map(|c| c.calling_code.as_str()) else {
        return false;
    };
    code != cc_home
        && h.trunk.iter().any(|(p, _)| {
            national.starts_with(p)
                && format!("+{code}{}", &national[p.len()..])
                    == lib.format().mode(Mode::E164).to_string()
                && numbering::dial_leads().iter().any(|(c, l, m)| {
                    *c == code && l == p && m.as_bytes().get(national.len()) == Some(&b'k')
                })
        })
}

#[derive(Default)]
struct Counts {
    strings: usize,
    lib_valid: usize,
    same: usize,
    refused_valid: usize,
    tollgate_read: usize,
    disagreements: usize,
    crate_deviations: usize,
    /// Ordinary forms (national with the home's own prefix or none, `+C N`,
    /// international prefix + `C N`): valid to libphonenumber, read alike.
    ordinary_valid: usize,
    ordinary_same: usize,
    failures: Vec<String>,
}

fn check(home: &str, id: country::Id, s: &str, ordinary: bool, c: &mut Counts) {
    c.strings += 1;
    let ours = read(s, home);
    if matches!(ours, Reading::Number(_)) {
        c.tollgate_read += 1;
    }
    let Ok(lib) = phonenumber::parse(Some(id), s) else {
        return;
    };
    if !lib.is_valid() {
        return;
    }
    c.lib_valid += 1;
    let want = lib.format().mode(Mode::E164).to_string();
    if ordinary {
        c.ordinary_valid += 1;
        if matches!(&ours, Reading::Number(n) if format!("+{n}") == want) {
            c.ordinary_same += 1;
        }
    }
    match ours {
        Reading::Number(n) if format!("+{n}") == want => c.same += 1,
        Reading::Number(n) if crate_deviation(home, &n, &lib) => c.crate_deviations += 1,
        Reading::Number(n) => {
            c.disagreements += 1;
            if c.failures.len() < 40 {
                c.failures.push(format!(
                    "home {home}: `{s}`: libphonenumber {want}, Tollgate +{n}"
                ));
            }
        }
        _ => c.refused_valid += 1,
    }
}

#[test]
fn tollgate_reads_what_libphonenumber_reads_or_refuses() {
    let mut c = Counts::default();
    // every region's examples, by calling code
    let mut foreign: Vec<(String, &'static str, String, Vec<&'static str>)> = Vec::new();
    for meta in DATABASE.iter() {
        let code = meta.country_code().to_string();
        let key = if meta.id() == "001" {
            format!("001-{code}")
        } else {
            meta.id().to_string()
        };
        let trunk = numbering::dial_region(&key)
            .map(trunk_literals)
            .unwrap_or_default();
        for (kind, e) in examples(meta) {
            foreign.push((code.clone(), kind, e, trunk.clone()));
        }
    }
    foreign.sort();
    let mut homes = 0usize;
    for (hi, home) in numbering::countries().iter().enumerate() {
        let Ok(id) = home.iso.parse::<country::Id>() else {
            continue;
        };
        let (Some(meta), Some(dial)) = (DATABASE.by_id(home.iso), numbering::dial_region(home.iso))
        else {
            continue;
        };
        homes += 1;
        let cc = home.calling_code.as_str();
        let idd = readable_idd(dial);
        let trunk = trunk_literals(dial);
        // national forms of the home country's own numbers
        for (_, e) in examples(meta) {
            let mut forms = vec![(e.clone(), true), (format!("{cc}{e}"), false)];
            for t in &trunk {
                forms.push((format!("{t}{e}"), true));
                forms.push((format!("{t}{t}{e}"), false));
                forms.push((format!("{cc}{t}{e}"), false));
            }
            // a local number without its area code
            if e.len() > 4 {
                forms.push((e[3..].to_string(), false));
            }
            for (f, ordinary) in forms {
                for s in styles("", &f) {
                    check(home.iso, id, &s, ordinary, &mut c);
                }
            }
        }
        // international forms: premium-rate and shared-cost examples of
        // every country, a rotating sample of the rest
        for (fi, (code, kind, e, dest_trunk)) in foreign.iter().enumerate() {
            // every example is tried from some homes: premium-rate and
            // shared-cost ones from every fourth, the rest from every 30th
            let every = if matches!(*kind, "premium" | "shared-cost") {
                24
            } else {
                180
            };
            let sampled = (fi + hi) % every == 0;
            if !sampled {
                continue;
            }
            let mut nationals = vec![(e.clone(), true)];
            for t in dest_trunk.iter().chain(trunk.iter()) {
                nationals.push((format!("{t}{e}"), false));
                nationals.push((format!("({t}){e}"), false));
            }
            for (n, ordinary) in &nationals {
                let mut forms = vec![
                    (format!("+{code} {n}"), *ordinary),
                    (format!("+{code}{n}"), *ordinary),
                ];
                for i in &idd {
                    forms.push((format!("{i} {code} {n}"), *ordinary));
                }
                forms.push((format!("{code} {n}"), false));
                for (f, o) in forms {
                    check(home.iso, id, &f, o, &mut c);
                }
            }
            for s in styles(&format!("+{code}"), e) {
                check(home.iso, id, &s, true, &mut c);
            }
            if let Some(i) = idd.first() {
                for s in styles(&format!("{i}{code}"), e) {
                    check(home.iso, id, &s, true, &mut c);
                }
            }
        }
    }
    println!(
        "dialling differential: {} strings over {homes} home countries; libphonenumber read {} as valid numbers: Tollgate read {} of them alike and refused {}; {} disagreements; {} where the phonenumber crate strips the home's national prefix from another code's valid number (libphonenumber does not; Tollgate reads as libphonenumber); Tollgate read {} strings in all",
        c.strings,
        c.lib_valid,
        c.same,
        c.refused_valid,
        c.disagreements,
        c.crate_deviations,
        c.tollgate_read
    );
    assert!(homes > 200, "only {homes} home countries covered");
    assert!(c.strings > 100_000, "only {} strings", c.strings);
    assert!(
        c.failures.is_empty(),
        "Tollgate reads differently from libphonenumber ({} strings), e.g.:\n{}",
        c.disagreements,
        c.failures.join("\n")
    );
    // the ordinary forms of valid numbers must be read (refusing everything
    // would pass the property but fail the tenants)
    println!(
        "ordinary forms (national with the home's prefix or none, +CC N, international prefix CC N): {} valid, {} read alike",
        c.ordinary_valid, c.ordinary_same
    );
    assert!(
        c.ordinary_same * 100 >= c.ordinary_valid * 90,
        "Tollgate read only {} of {} valid strings in ordinary forms",
        c.ordinary_same,
        c.ordinary_valid
    );
}
