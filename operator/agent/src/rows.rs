//! Pure helpers: db_text rows, the canonical view of what a tenant's rows
//! ask Kamailio to hold (compared with what Kamailio reports), and the
//! agent's own checks of a composed bundle.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use tollgate_kamailio::kamailio::{
    COUNTRY_TREE, DIAL_TREE, SENTINEL_TREE, country_rows, dial_rows, parse_cidr,
};
use tollgate_kamailio::{Bundle, TenantRows};

/// The htable tables whose keys are `<tenant>::...` (tg_block is runtime state
/// and not part of a tenant's rows hash).
pub const HTABLES: [&str; 5] = ["tg_tenant", "tg_geo", "tg_emerg", "tg_limit", "tg_window"];

/// Splits one db_text row at unescaped `:` and unescapes each field.
pub fn split_row(row: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(5);
    let b = row.as_bytes();
    let (mut start, mut i, mut escaped) = (0, 0, false);
    while i < b.len() {
        match b[i] {
            b'\\' => {
                escaped = true;
                i += 2;
                continue;
            }
            b':' => {
                out.push(field(&row[start..i], escaped));
                start = i + 1;
                escaped = false;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(field(row.get(start..).unwrap_or(""), escaped));
    out
}

/// One field of a row, unescaped if it holds a `\`.
fn field(f: &str, escaped: bool) -> String {
    if !escaped {
        return f.to_owned();
    }
    let mut cur = String::with_capacity(f.len());
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => cur.push('\n'),
                Some('r') => cur.push('\r'),
                Some('t') => cur.push('\t'),
                Some(o) => cur.push(o),
                None => cur.push('\\'),
            },
            c => cur.push(c),
        }
    }
    cur
}

/// One entry of the canonical view: `table \t key \t value`.
fn entry(table: &str, key: &str, value: &str) -> String {
    format!("{table}\t{key}\t{value}")
}

/// Trees with more entries than this are read back as their entry count
/// plus [`TREE_SAMPLE`] sampled exact-prefix lookups (listing a
/// 100,000-prefix tree over JSON-RPC takes over 30 s).
pub const FULL_LIST: usize = 5000;
/// Sampled prefixes of a big tree.
pub const TREE_SAMPLE: usize = 400;

/// The entries of a tree that are read back: all of a small tree; of a big
/// one, [`TREE_SAMPLE`] evenly spaced over the sorted prefixes plus the last.
fn sample_of(entries: &BTreeMap<String, String>) -> impl Iterator<Item = (&String, &String)> {
    let n = entries.len();
    let step = if n <= FULL_LIST {
        1
    } else {
        (n / TREE_SAMPLE).max(1)
    };
    // every step-th entry, and the last one
    entries
        .iter()
        .enumerate()
        .filter(move |(i, _)| i % step == 0 || *i + 1 == n)
        .map(|(_, e)| e)
}

/// The trees of one tenant's rows: tree name → prefix → value.
pub fn trees(rows: &TenantRows) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for r in rows.tables.get("mtree").into_iter().flatten() {
        let f = split_row(r);
        if f.len() == 3 {
            out.entry(f[0].clone())
                .or_default()
                .insert(f[1].clone(), f[2].clone());
        }
    }
    out
}

/// What Kamailio should hold, computed once per apply from the rows (so the
/// live read-back does not re-parse 100,000 tree rows while it runs): the
/// canonical view per tenant and the prefixes sampled in each big tree.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    pub views: BTreeMap<String, BTreeSet<String>>,
    /// tree name → the prefixes read back with `mtree.match` (big trees).
    pub samples: BTreeMap<String, Vec<String>>,
}

impl Expected {
    pub fn of(rows: &BTreeMap<String, TenantRows>) -> Expected {
        let mut e = Expected::default();
        for (t, r) in rows {
            let tr = trees(r);
            for (name, entries) in &tr {
                if entries.len() > FULL_LIST {
                    let sample = sample_of(entries).map(|(p, _)| p.clone()).collect();
                    e.samples.insert(name.clone(), sample);
                }
            }
            e.views.insert(t.clone(), canonical_with(r, tr));
        }
        e
    }
}

/// What Kamailio should hold for one tenant, from its rows (without ids).
pub fn canonical_rows(rows: &TenantRows) -> BTreeSet<String> {
    canonical_with(rows, trees(rows))
}

fn canonical_with(
    rows: &TenantRows,
    trees: BTreeMap<String, BTreeMap<String, String>>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (tree, entries) in trees {
        if entries.len() <= FULL_LIST {
            for (p, v) in &entries {
                out.insert(entry(&tree, p, v));
            }
        } else {
            out.insert(entry(&tree, "#items", &entries.len().to_string()));
            for (p, v) in sample_of(&entries) {
                out.insert(entry(&tree, p, v));
            }
        }
    }
    for (table, list) in &rows.tables {
        if table == "mtree" {
            continue; // the trees: above
        }
        for r in list {
            let f = split_row(r);
            match table.as_str() {
                // grp, ip, mask, port, tag
                "address" if f.len() == 5 => {
                    out.insert(entry(
                        "address",
                        &format!("{}/{}/{}/{}", f[0], f[1], f[2], f[3]),
                        &f[4],
                    ));
                }
                t if HTABLES.contains(&t) && f.len() == 5 => {
                    out.insert(entry(t, &f[0], &f[3]));
                }
                "tg_block" | "pl_pipes" => {}
                t => {
                    out.insert(entry("unreadable", t, r));
                }
            }
        }
    }
    out
}

/// `sha256:<hex>` over a canonical view.
pub fn view_hash(view: &BTreeSet<String>) -> String {
    let mut h = Sha256::new();
    for e in view {
        h.update(e.as_bytes());
        h.update([b'\n']);
    }
    let d = h.finalize();
    let mut s = String::from("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Files the tenant name owns in a key: `<t>::...`, `d:<t>`, `<t>|...`.
pub fn tenant_of_key(key: &str) -> Option<&str> {
    key.split_once("::").map(|(t, _)| t)
}

/// The agent's own checks of a composed bundle (defence in depth, after the
/// renderer's): every address row canonical (the address as the standard
/// parser prints it, length in range, no host bits, grp = 129 - length,
/// port 0, a tag of a known tenant); every mtree row a `d:`/`c:` tree of a
/// known tenant with a digits-only prefix, the sentinel row, or a row of the
/// fleet-wide country tree, which must be exactly [`country_rows`], or of
/// the dialling tree, exactly [`dial_rows`].
pub fn check_bundle(bundle: &Bundle, tenants: &BTreeSet<String>) -> Vec<String> {
    let mut errs = Vec::new();
    let mut bad = |m: String| {
        if errs.len() < 20 {
            errs.push(m);
        }
    };
    for t in tollgate_kamailio::kamailio::TABLES.iter().map(|t| t.0) {
        if !bundle.files.contains_key(t) {
            bad(format!("table `{t}` is missing from the bundle"));
        }
    }
    if let Some(addr) = bundle.files.get("address") {
        for (n, line) in addr.lines().enumerate().skip(1) {
            let f = split_row(line);
            let at = format!("address line {}", n + 1);
            if f.len() != 6 {
                bad(format!("{at}: {} fields, want 6", f.len()));
                continue;
            }
            let (grp, ip, mask, port, tag) = (&f[1], &f[2], &f[3], &f[4], &f[5]);
            let cidr = format!("{ip}/{mask}");
            match parse_cidr(&cidr) {
                Some(net) if net.network().to_string() == *ip && net.addr().to_string() == *ip => {
                    if grp.parse::<u32>().ok() != Some(129 - u32::from(net.prefix_len())) {
                        bad(format!("{at}: group {grp} does not match /{mask}"));
                    }
                }
                Some(_) => bad(format!("{at}: `{cidr}` has host bits set")),
                None => bad(format!("{at}: `{cidr}` is not a canonical network")),
            }
            if port != "0" {
                bad(format!("{at}: port {port}, want 0"));
            }
            let parts: Vec<&str> = tag.split('|').collect();
            if parts.len() != 4 || !tenants.contains(parts[0]) {
                bad(format!(
                    "{at}: tag `{tag}` does not name a tenant of the bundle"
                ));
            } else if parts[1] != "allow" && parts[1] != "deny" {
                bad(format!("{at}: tag `{tag}`: action must be allow or deny"));
            }
        }
    }
    if let Some(mt) = bundle.files.get("mtree") {
        let want = country_rows();
        // (line, prefix, country) of the country tree's rows
        let mut countries: Vec<(usize, String, String)> = Vec::new();
        let mut dials: Vec<(usize, String, String)> = Vec::new();
        for (n, line) in mt.lines().enumerate().skip(1) {
            let f = split_row(line);
            let at = format!("mtree line {}", n + 1);
            if f.len() != 4 {
                bad(format!("{at}: {} fields, want 4", f.len()));
                continue;
            }
            if f[1] == SENTINEL_TREE && f[2] == "0" && f[3] == "-" {
                continue;
            }
            if f[1] == COUNTRY_TREE {
                countries.push((n + 1, f[2].clone(), f[3].clone()));
                continue;
            }
            if f[1] == DIAL_TREE {
                dials.push((n + 1, f[2].clone(), f[3].clone()));
                continue;
            }
            let known = f[1]
                .strip_prefix("d:")
                .or_else(|| f[1].strip_prefix("c:"))
                .is_some_and(|t| tenants.contains(t));
            if !known {
                bad(format!("{at}: tree `{}` is not a tree of a tenant", f[1]));
            }
            if f[2].is_empty() || f[2].len() > 15 || !f[2].bytes().all(|b| b.is_ascii_digit()) {
                bad(format!("{at}: prefix `{}` is not 1-15 digits", f[2]));
            }
        }
        // the renderer's rows, in its order
        let differ = countries
            .iter()
            .zip(want)
            .find(|((_, p, c), (wp, wc))| p != wp || c != wc);
        if let Some(((line, p, c), (wp, wc))) = differ {
            bad(format!(
                "mtree line {line}: country tree row `{}` -> `{}`, want `{wp}` -> `{wc}`",
                p.escape_debug(),
                c.escape_debug()
            ));
        } else if countries.len() != want.len() {
            bad(format!(
                "the country tree has {} rows, want {}",
                countries.len(),
                want.len()
            ));
        }
        // the dialling tree: exactly the renderer's rows, in its order
        let want = dial_rows();
        let differ = dials
            .iter()
            .zip(want)
            .find(|((_, k, v), (wk, wv))| k != wk || v != wv);
        if let Some(((line, k, v), (wk, wv))) = differ {
            bad(format!(
                "mtree line {line}: dialling tree row `{}` -> `{}`, want `{wk}` -> `{wv}`",
                k.escape_debug(),
                v.escape_debug()
            ));
        } else if dials.len() != want.len() {
            bad(format!(
                "the dialling tree has {} rows, want {}",
                dials.len(),
                want.len()
            ));
        }
    }
    errs
}

/// Groups a fleet-wide canonical view by tenant.
pub fn by_tenant(view: BTreeSet<(String, String)>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (t, e) in view {
        out.entry(t).or_default().insert(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn bundle_with_address(rows: &[&str]) -> Bundle {
        let mut files = BTreeMap::new();
        for (t, h, _) in tollgate_kamailio::kamailio::TABLES {
            files.insert(t.to_string(), format!("{h}\n"));
        }
        let mut a = String::from("hdr\n");
        for r in rows {
            a.push_str(r);
            a.push('\n');
        }
        files.insert("address".into(), a);
        files.insert("mtree".into(), mtree_with(""));
        Bundle::new(files)
    }

    /// An mtree file: the header, `rows`, the fleet-wide trees (countries,
    /// dialled-number reading) and the sentinel.
    fn mtree_with(rows: &str) -> String {
        let mut m = format!("hdr\n{rows}");
        for (i, (p, iso)) in country_rows().iter().enumerate() {
            m.push_str(&format!("{}:{COUNTRY_TREE}:{p}:{iso}\n", i + 100));
        }
        for (i, (k, v)) in dial_rows().iter().enumerate() {
            m.push_str(&format!("{}:{DIAL_TREE}:{k}:{v}\n", i + 10_000));
        }
        m.push_str(&format!("99999:{SENTINEL_TREE}:0:-\n"));
        m
    }

    fn tenants() -> BTreeSet<String> {
        ["acme".to_string()].into_iter().collect()
    }

    #[test]
    fn big_trees_are_sampled() {
        let tree = |n: usize| -> BTreeMap<String, String> {
            (0..n).map(|i| (format!("{i:06}"), i.to_string())).collect()
        };
        let small = tree(10);
        let s: Vec<_> = sample_of(&small).collect();
        assert_eq!(s, small.iter().collect::<Vec<_>>());
        let big = tree(100_000);
        let s: Vec<_> = sample_of(&big).collect();
        assert!(
            s.len() >= TREE_SAMPLE && s.len() <= TREE_SAMPLE + 2,
            "{}",
            s.len()
        );
        assert_eq!(s.first().copied(), big.iter().next());
        assert_eq!(s.last().copied(), big.iter().next_back());
        // evenly spaced: every 250th, then the last
        assert_eq!(s[1].0, "000250");
        assert_eq!(s[s.len() - 2].0, "099750");
        // one over the full-list size is sampled, at the edge all is read
        assert_eq!(sample_of(&tree(FULL_LIST)).count(), FULL_LIST);
        assert!(sample_of(&tree(FULL_LIST + 1)).count() < FULL_LIST);
    }

    #[test]
    fn split_unescapes() {
        assert_eq!(
            split_row(r"1:d\:acme:33:a,dst\:x\\y\n"),
            ["1", "d:acme", "33", "a,dst:x\\y\n"]
        );
        assert_eq!(split_row(""), [""]);
        // an escaped backslash before a separator; a lone one at the end
        assert_eq!(split_row(r"a\\:b:c\"), ["a\\", "b", "c\\"]);
        assert_eq!(split_row(r"é\é:x"), ["éé", "x"]);
        assert_eq!(split_row("::"), ["", "", ""]);
    }

    #[test]
    fn canonical_address_rows_pass() {
        let b = bundle_with_address(&[
            r"1:113:127.10.0.0:16:0:acme|allow|src\:127.10.0.0/16|",
            r"2:97:127.10.9.1:32:0:acme|deny|src\:x|",
            r"3:65:2001:db8::/64:0:acme|allow|r|",
        ]);
        // the IPv6 row above is split at its colons: not canonical
        let e = check_bundle(&b, &tenants());
        assert_eq!(e.len(), 1, "{e:?}");
        let b = bundle_with_address(&[
            r"1:113:127.10.0.0:16:0:acme|allow|src\:127.10.0.0/16|",
            r"2:97:127.10.9.1:32:0:acme|deny|src\:x|",
            r"3:65:2001\:db8\:\::64:0:acme|allow|r|",
        ]);
        assert_eq!(check_bundle(&b, &tenants()), Vec::<String>::new());
    }

    #[test]
    fn non_canonical_addresses_are_refused() {
        for row in [
            r"1:97:127.0.0.300:32:0:acme|allow|r|",
            r"1:113:127.010.0.0:16:0:acme|allow|r|",
            r"1:113:127.10.0.1:16:0:acme|allow|r|",
            r"1:105:127.10.0.0:16:0:acme|allow|r|",
            r"1:113:127.10.0.0:16:5060:acme|allow|r|",
            r"1:113:127.10.0.0:16:0:globex|allow|r|",
            r"1:113:127.10.0.0:16:0:acme|maybe|r|",
            r"1:113:127.10.0.0:016:0:acme|allow|r|",
            r"1:113:127.10.0.0:0:acme|allow|r|",
        ] {
            let e = check_bundle(&bundle_with_address(&[row]), &tenants());
            assert!(!e.is_empty(), "{row} passed");
        }
    }

    #[test]
    fn bad_mtree_rows_are_refused() {
        let mut b = bundle_with_address(&[]);
        b.files.insert(
            "mtree".into(),
            mtree_with("1:d\\:acme:33:a,x\n2:d\\:acmee:33:a,x\n3:c\\:acme:3a:n\n"),
        );
        let e = check_bundle(&b, &tenants());
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn the_country_tree_must_be_the_renderers() {
        let b = bundle_with_address(&[]);
        assert_eq!(check_bundle(&b, &tenants()), Vec::<String>::new());
        let good = b.files["mtree"].clone();
        let rows = country_rows();
        assert!(rows.len() > 500, "{}", rows.len());
        let (p, iso) = &rows[0];
        let (lp, liso) = &rows[rows.len() - 1];
        for (from, to, why) in [
            // another country
            (
                format!(":{COUNTRY_TREE}:{p}:{iso}\n"),
                format!(":{COUNTRY_TREE}:{p}:XX\n"),
                format!("country tree row `{p}` -> `XX`, want `{p}` -> `{iso}`"),
            ),
            // the last row dropped
            (
                format!(":{COUNTRY_TREE}:{lp}:{liso}\n"),
                format!(":{SENTINEL_TREE}:0:-\n"),
                format!(
                    "the country tree has {} rows, want {}",
                    rows.len() - 1,
                    rows.len()
                ),
            ),
        ] {
            let mut b = b.clone();
            b.files.insert("mtree".into(), good.replacen(&from, &to, 1));
            let e = check_bundle(&b, &tenants());
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(e[0].contains(&why), "{why}: {e:?}");
        }
        // a dialling row changed: the SBC would read numbers otherwise
        let (k, v) = &dial_rows()[0];
        let mut d = b.clone();
        d.files.insert(
            "mtree".into(),
            good.replacen(
                &format!(":{DIAL_TREE}:{k}:{v}\n"),
                &format!(":{DIAL_TREE}:{k}:x\n"),
                1,
            ),
        );
        let e = check_bundle(&d, &tenants());
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains(&format!("dialling tree row `{k}` -> `x`")),
            "{e:?}"
        );
        // no fleet-wide tree at all: both are missing
        let mut b = b.clone();
        b.files
            .insert("mtree".into(), format!("hdr\n1:{SENTINEL_TREE}:0:-\n"));
        let e = check_bundle(&b, &tenants());
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("country tree has 0 rows"), "{e:?}");
        assert!(e[1].contains("dialling tree has 0 rows"), "{e:?}");
    }

    #[test]
    fn canonical_view_and_hash() {
        let mut tables = BTreeMap::new();
        tables.insert(
            "tg_tenant".to_string(),
            vec![r"acme\:\:cc:0:0:1:0".to_string()],
        );
        tables.insert(
            "mtree".to_string(),
            vec![r"d\:acme:33:a,dst\:country\:FR".to_string()],
        );
        tables.insert(
            "address".to_string(),
            vec![r"113:127.10.0.0:16:0:acme|allow|src\:127.10.0.0/16|".to_string()],
        );
        let rows = TenantRows {
            tenant: "acme".into(),
            revision: "r1".into(),
            tables,
            networks: vec![],
        };
        let v = canonical_rows(&rows);
        assert!(v.contains("tg_tenant\tacme::cc\t1"));
        assert!(v.contains("d:acme\t33\ta,dst:country:FR"));
        assert!(v.contains("address\t113/127.10.0.0/16/0\tacme|allow|src:127.10.0.0/16|"));
        assert_eq!(view_hash(&v), view_hash(&v.clone()));
        assert!(view_hash(&v).starts_with("sha256:"));
    }
}
