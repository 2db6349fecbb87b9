//! Pure helpers: db_text rows, the canonical view of what a tenant's rows
//! ask Kamailio to hold (compared with what Kamailio reports), and the
//! agent's own checks of a composed bundle.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use tollgate_kamailio::kamailio::{
    CLASS_KIND, COUNTRY_TABLE, COUNTRY_TREE, DEST_KIND, DIAL_TABLE, DIAL_TREE, ID_DIGITS,
    Placement, SHARDS, country_rows, dial_rows, parse_cidr, shard_of_table, shard_tree,
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

/// Trees with more entries than this are read back as [`TREE_SAMPLE`]
/// sampled exact-prefix lookups (listing a 100,000-prefix tree over
/// JSON-RPC takes over 30 s).
pub const FULL_LIST: usize = 5000;
/// Sampled prefixes of a big tree.
pub const TREE_SAMPLE: usize = 400;
/// A shard holding more rows than this is not listed: its tenants are read
/// back with `mtree.match` lookups of their view's prefixes, and its row
/// count is compared with the sum of its tenants' rows.
pub const LIST_MAX: usize = 20_000;

/// How much of a tenant's trees a view holds: a full view (the trial, a
/// repair, a full check) every entry of a tree up to [`FULL_LIST`] entries
/// and [`TREE_SAMPLE`] of a bigger one; a live view (the read-back after an
/// apply, `GET /v1/state?tenant=`, the background check) [`LIVE_SAMPLE`]
/// evenly spaced entries of each tree, looked up one by one, so reading a
/// tenant back costs the same whatever its shard holds (the trial read
/// every entry of the same rows; the shard's row count is compared too).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Depth {
    #[default]
    Live,
    Full,
}

/// Entries per tree of a live view.
pub const LIVE_SAMPLE: usize = 16;

/// The entries of a tree that a view of `depth` holds: all of a small tree;
/// of a bigger one, evenly spaced entries plus the last.
fn sample_of(
    entries: &BTreeMap<String, String>,
    depth: Depth,
) -> impl Iterator<Item = (&String, &String)> {
    let (all_up_to, sample) = match depth {
        Depth::Full => (FULL_LIST, TREE_SAMPLE),
        Depth::Live => (LIVE_SAMPLE, LIVE_SAMPLE),
    };
    let n = entries.len();
    let step = if n <= all_up_to {
        1
    } else {
        (n / sample).max(1)
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

/// The rows a tenant puts into its shard.
pub fn tree_rows(rows: &TenantRows) -> usize {
    rows.tables.get("mtree").map_or(0, Vec::len)
}

/// The `(table, key)` of every htable entry a tenant's rows (and its
/// placement) ask for.
pub fn htable_keys(rows: &TenantRows) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for table in HTABLES {
        for r in rows.tables.get(table).into_iter().flatten() {
            let f = split_row(r);
            if f.len() == 5 {
                out.insert((table.to_string(), f[0].clone()));
            }
        }
    }
    for k in ["key", "tree"] {
        out.insert(("tg_tenant".to_string(), format!("{}::{k}", rows.tenant)));
    }
    out
}

/// The `(table, key) → value` of a tenant's htable entries (with its
/// placement): what `htable.sets` gives Kamailio.
pub fn htable_entries(rows: &TenantRows, at: Placement) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for table in HTABLES {
        for r in rows.tables.get(table).into_iter().flatten() {
            let f = split_row(r);
            if f.len() == 5 {
                out.insert((table.to_string(), f[0].clone()), f[3].clone());
            }
        }
    }
    let t = &rows.tenant;
    out.insert(("tg_tenant".into(), format!("{t}::key")), at.0.to_string());
    out.insert(("tg_tenant".into(), format!("{t}::tree")), at.tree());
    out
}

/// What Kamailio should hold for the tenants an operation looks at,
/// computed once (so the live read-back does not re-parse 100,000 tree rows
/// while it runs).
#[derive(Clone, Debug, Default)]
pub struct Expected {
    /// tenant → its canonical view (empty: a tenant being removed).
    pub views: BTreeMap<String, BTreeSet<String>>,
    /// tenant → where its trees are (also for a tenant being removed: where
    /// they were).
    pub placed: BTreeMap<String, Placement>,
    /// tenant → logical tree → the prefixes its view holds (all, or the
    /// sample of a big tree), looked up one by one in a shard too big to
    /// list.
    pub prefixes: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// tenant → the trees whose view is a sample.
    pub sampled: BTreeMap<String, BTreeSet<String>>,
    /// tenant → the rows its trees have.
    pub rows: BTreeMap<String, usize>,
    /// How much of each tree the views hold.
    pub depth: Depth,
    /// The views hold the tenants' networks (the address table is dumped:
    /// every network of the SBC). An apply reads them when it changed the
    /// address table; a full read and the background check always.
    pub address: bool,
    /// tenant → the htable entries to read one by one (its own, and those
    /// its previous rows had).
    pub keys: BTreeMap<String, BTreeSet<(String, String)>>,
    /// shard → the rows it must hold; every shard when `full`.
    pub shard_items: BTreeMap<u32, usize>,
    /// The whole SBC is read (dumps and every shard), so anything held for
    /// a tenant that is not in `views` is unexpected.
    pub full: bool,
}

impl Expected {
    /// Everything for `rows` (every tenant a Kamailio holds): a full read.
    pub fn full(
        rows: &BTreeMap<String, TenantRows>,
        placed: &BTreeMap<String, Placement>,
    ) -> Expected {
        let mut e = Expected {
            full: true,
            depth: Depth::Full,
            address: true,
            shard_items: (0..SHARDS).map(|s| (s, 0)).collect(),
            ..Expected::default()
        };
        for (t, r) in rows {
            if let Some(p) = placed.get(t) {
                e.add(r, *p, None);
                *e.shard_items.entry(p.shard()).or_default() += tree_rows(r);
            }
        }
        e
    }

    /// Adds a tenant: its rows at `at`, plus the htable keys of `previous`
    /// (its rows before a change: read too, so a key it dropped is seen
    /// gone).
    pub fn add(&mut self, rows: &TenantRows, at: Placement, previous: Option<&TenantRows>) {
        let t = rows.tenant.clone();
        let tr = trees(rows);
        let mut prefixes = BTreeMap::new();
        let mut sampled = BTreeSet::new();
        for (name, entries) in &tr {
            let sample: Vec<String> = sample_of(entries, self.depth)
                .map(|(p, _)| p.clone())
                .collect();
            if sample.len() < entries.len() {
                sampled.insert(name.clone());
            }
            prefixes.insert(name.clone(), sample);
        }
        let mut keys = htable_keys(rows);
        if let Some(p) = previous {
            keys.extend(htable_keys(p));
        }
        self.rows.insert(t.clone(), tree_rows(rows));
        let mut view = canonical_with(rows, tr, Some(at), self.depth);
        if !self.address {
            view.retain(|e| !e.starts_with("address\t"));
        }
        self.views.insert(t.clone(), view);
        self.placed.insert(t.clone(), at);
        self.prefixes.insert(t.clone(), prefixes);
        self.sampled.insert(t.clone(), sampled);
        self.keys.insert(t, keys);
    }

    /// Adds a tenant being removed: nothing of it may be held; `previous`
    /// (its rows) says where to look.
    pub fn add_removed(&mut self, previous: &TenantRows, at: Placement) {
        let t = previous.tenant.clone();
        self.add(previous, at, None);
        self.views.insert(t, BTreeSet::new());
    }
}

/// What Kamailio should hold for one tenant, from its rows (without ids),
/// at its placement (`None`: without the placement's `tg_tenant` keys), in
/// a view of `depth`.
pub fn canonical_rows(rows: &TenantRows, at: Option<Placement>, depth: Depth) -> BTreeSet<String> {
    canonical_with(rows, trees(rows), at, depth)
}

fn canonical_with(
    rows: &TenantRows,
    trees: BTreeMap<String, BTreeMap<String, String>>,
    at: Option<Placement>,
    depth: Depth,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (tree, entries) in trees {
        for (p, v) in sample_of(&entries, depth) {
            out.insert(entry(&tree, p, v));
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
    if let Some(p) = at {
        let t = &rows.tenant;
        out.insert(entry("tg_tenant", &format!("{t}::key"), &p.0.to_string()));
        out.insert(entry("tg_tenant", &format!("{t}::tree"), &p.tree()));
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
/// renderer's), over the files it holds: every address row canonical (the
/// address as the standard parser prints it, length in range, no host
/// bits, grp = 129 - length, port 0, a tag of a known tenant); every shard
/// row of the shard's own tree, under the id of a tenant `placed` in that
/// shard, a kind digit and a 1–15 digit prefix; the fleet-wide country
/// tree exactly [`country_rows`], the dialling tree exactly [`dial_rows`].
/// `full`: every table must be there, and the fleet-wide trees are checked
/// (else only the address table and the shards it holds).
pub fn check_bundle(
    bundle: &Bundle,
    placed: &BTreeMap<String, Placement>,
    full: bool,
) -> Vec<String> {
    let mut errs = Vec::new();
    let mut bad = |m: String| {
        if errs.len() < 20 {
            errs.push(m);
        }
    };
    if full {
        for t in tollgate_kamailio::kamailio::tables().iter().map(|t| &t.0) {
            if !bundle.files.contains_key(t) {
                bad(format!("table `{t}` is missing from the bundle"));
            }
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
            if parts.len() != 4 || !placed.contains_key(parts[0]) {
                bad(format!(
                    "{at}: tag `{tag}` does not name a tenant of the bundle"
                ));
            } else if parts[1] != "allow" && parts[1] != "deny" {
                bad(format!("{at}: tag `{tag}`: action must be allow or deny"));
            }
        }
    }
    // id → shard of every tenant
    let ids: BTreeMap<String, u32> = placed
        .values()
        .map(|p| (p.0.to_string(), p.shard()))
        .collect();
    for (name, text) in &bundle.files {
        let Some(shard) = shard_of_table(name) else {
            continue;
        };
        let tree = shard_tree(shard);
        for (n, line) in text.lines().enumerate().skip(1) {
            let f = split_row(line);
            let at = format!("{name} line {}", n + 1);
            if f.len() != 4 {
                bad(format!("{at}: {} fields, want 4", f.len()));
                continue;
            }
            if f[1] != tree {
                bad(format!("{at}: tree `{}` in the table of `{tree}`", f[1]));
            }
            let key = &f[2];
            let (id, rest) = key.split_at(ID_DIGITS.min(key.len()));
            if ids.get(id) != Some(&shard) {
                bad(format!(
                    "{at}: key `{key}` is not under the id of a tenant of this shard"
                ));
                continue;
            }
            let mut rest = rest.chars();
            let kind = rest.next();
            let prefix = rest.as_str();
            if kind != Some(DEST_KIND) && kind != Some(CLASS_KIND) {
                bad(format!("{at}: key `{key}` has no tree kind after the id"));
            }
            if prefix.is_empty() || prefix.len() > 15 || !prefix.bytes().all(|b| b.is_ascii_digit())
            {
                bad(format!(
                    "{at}: key `{key}`: prefix `{prefix}` is not 1-15 digits"
                ));
            }
        }
    }
    if !full {
        // the fleet-wide trees are checked in the full bundle (the trial's:
        // the same rows of the same build)
        return errs;
    }
    if let Some(mt) = bundle.files.get(COUNTRY_TABLE) {
        let got: Vec<(usize, String, String)> = fleet_rows(mt, COUNTRY_TREE, &mut bad);
        let want = country_rows();
        let differ = got
            .iter()
            .zip(want)
            .find(|((_, p, c), (wp, wc))| p != wp || c != wc);
        if let Some(((line, p, c), (wp, wc))) = differ {
            bad(format!(
                "{COUNTRY_TABLE} line {line}: country tree row `{}` -> `{}`, want `{wp}` -> `{wc}`",
                p.escape_debug(),
                c.escape_debug()
            ));
        } else if got.len() != want.len() {
            bad(format!(
                "the country tree has {} rows, want {}",
                got.len(),
                want.len()
            ));
        }
    } else if full {
        bad("the country tree has 0 rows".into());
    }
    if let Some(mt) = bundle.files.get(DIAL_TABLE) {
        let got = fleet_rows(mt, DIAL_TREE, &mut bad);
        let want = dial_rows();
        let differ = got
            .iter()
            .zip(want)
            .find(|((_, k, v), (wk, wv))| k != wk || v != wv);
        if let Some(((line, k, v), (wk, wv))) = differ {
            bad(format!(
                "{DIAL_TABLE} line {line}: dialling tree row `{}` -> `{}`, want `{wk}` -> `{wv}`",
                k.escape_debug(),
                v.escape_debug()
            ));
        } else if got.len() != want.len() {
            bad(format!(
                "the dialling tree has {} rows, want {}",
                got.len(),
                want.len()
            ));
        }
    } else if full {
        bad("the dialling tree has 0 rows".into());
    }
    errs
}

/// `(line, prefix, value)` of a fleet-wide tree's table; a row of another
/// tree or of the wrong shape is reported.
fn fleet_rows(
    text: &str,
    tree: &str,
    bad: &mut impl FnMut(String),
) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f = split_row(line);
        if f.len() != 4 || f[1] != tree {
            bad(format!(
                "line {} of the table of `{tree}`: not a row of it",
                n + 1
            ));
            continue;
        }
        out.push((n + 1, f[2].clone(), f[3].clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn bundle_with_address(rows: &[&str]) -> Bundle {
        let acme = BTreeMap::from([(
            "acme".to_string(),
            TenantRows {
                tenant: "acme".into(),
                revision: "r".into(),
                tables: BTreeMap::new(),
                networks: vec![],
            },
        )]);
        let all: Vec<(&String, &TenantRows)> = acme.iter().collect();
        let mut b =
            tollgate_kamailio::kamailio::Kamailio::compose_placed(&all, &placed(), None).unwrap();
        let mut a = String::from("hdr\n");
        for r in rows {
            a.push_str(r);
            a.push('\n');
        }
        b.files.insert("address".into(), a);
        b
    }

    fn placed() -> BTreeMap<String, Placement> {
        BTreeMap::from([("acme".to_string(), Placement(10_000_005))])
    }

    #[test]
    fn big_trees_are_sampled() {
        let tree = |n: usize| -> BTreeMap<String, String> {
            (0..n).map(|i| (format!("{i:06}"), i.to_string())).collect()
        };
        let small = tree(10);
        let s: Vec<_> = sample_of(&small, Depth::Full).collect();
        assert_eq!(s, small.iter().collect::<Vec<_>>());
        let big = tree(100_000);
        let s: Vec<_> = sample_of(&big, Depth::Full).collect();
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
        assert_eq!(sample_of(&tree(FULL_LIST), Depth::Full).count(), FULL_LIST);
        assert!(sample_of(&tree(FULL_LIST + 1), Depth::Full).count() < FULL_LIST);
        // a live view: a few entries of any tree, the first and the last
        assert_eq!(sample_of(&small, Depth::Live).count(), 10);
        let mid = tree(1317);
        let live: Vec<_> = sample_of(&mid, Depth::Live).collect();
        assert!(live.len() <= LIVE_SAMPLE + 2, "{}", live.len());
        assert_eq!(live.last().copied(), mid.iter().next_back());
        assert_eq!(sample_of(&big, Depth::Live).count(), LIVE_SAMPLE + 1);
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
        let e = check_bundle(&b, &placed(), true);
        assert_eq!(e.len(), 1, "{e:?}");
        let b = bundle_with_address(&[
            r"1:113:127.10.0.0:16:0:acme|allow|src\:127.10.0.0/16|",
            r"2:97:127.10.9.1:32:0:acme|deny|src\:x|",
            r"3:65:2001\:db8\:\::64:0:acme|allow|r|",
        ]);
        assert_eq!(check_bundle(&b, &placed(), true), Vec::<String>::new());
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
            let e = check_bundle(&bundle_with_address(&[row]), &placed(), true);
            assert!(!e.is_empty(), "{row} passed");
        }
    }

    #[test]
    fn bad_shard_rows_are_refused() {
        let mut b = bundle_with_address(&[]);
        // acme is 10000005, in shard 10000005 % 1024 = 645
        let t = "tg_shard_0645";
        let tree = "tollgate-shard-0645";
        b.files.insert(
            t.into(),
            format!(
                "hdr\n1:{tree}:10000005133:a,x\n2:{tree}:10000006133:a,x\n3:{tree}:100000052:n\n\
                 4:tollgate-shard-0646:10000005133:a\n5:{tree}:10000005333:a\n"
            ),
        );
        let e = check_bundle(&b, &placed(), true);
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].contains("not under the id of a tenant"), "{e:?}");
        assert!(e[1].contains("prefix `` is not 1-15 digits"), "{e:?}");
        assert!(e[2].contains("in the table of"), "{e:?}");
        assert!(e[3].contains("no tree kind"), "{e:?}");
        // a tenant's rows in another shard than its own
        let mut b = bundle_with_address(&[]);
        b.files.insert(
            "tg_shard_0000".into(),
            "hdr\n1:tollgate-shard-0000:10000005133:a\n".into(),
        );
        assert_eq!(check_bundle(&b, &placed(), true).len(), 1);
    }

    #[test]
    fn the_country_tree_must_be_the_renderers() {
        let b = bundle_with_address(&[]);
        assert_eq!(check_bundle(&b, &placed(), true), Vec::<String>::new());
        let good = b.files[COUNTRY_TABLE].clone();
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
                String::from("\n"),
                format!(
                    "the country tree has {} rows, want {}",
                    rows.len() - 1,
                    rows.len()
                ),
            ),
        ] {
            let mut b = b.clone();
            let text = good.replacen(&from, &to, 1);
            // a dropped row: the line goes entirely
            let text: String = text
                .lines()
                .filter(|l| !l.ends_with(':') && !l.chars().all(|c| c.is_ascii_digit()))
                .map(|l| format!("{l}\n"))
                .collect();
            b.files.insert(COUNTRY_TABLE.into(), text);
            let e = check_bundle(&b, &placed(), true);
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(e[0].contains(&why), "{why}: {e:?}");
        }
        // a dialling row changed: the SBC would read numbers otherwise
        let (k, v) = &dial_rows()[0];
        let mut d = b.clone();
        let dial = b.files[DIAL_TABLE].replacen(
            &format!(":{DIAL_TREE}:{k}:{v}\n"),
            &format!(":{DIAL_TREE}:{k}:x\n"),
            1,
        );
        d.files.insert(DIAL_TABLE.into(), dial);
        let e = check_bundle(&d, &placed(), true);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains(&format!("dialling tree row `{k}` -> `x`")),
            "{e:?}"
        );
        // no fleet-wide tree at all: both are missing
        let mut b = b.clone();
        b.files.remove(COUNTRY_TABLE);
        b.files.remove(DIAL_TABLE);
        let e = check_bundle(&b, &placed(), true);
        assert!(
            e.iter().any(|e| e.contains("country tree has 0 rows")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|e| e.contains("dialling tree has 0 rows")),
            "{e:?}"
        );
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
        let v = canonical_rows(&rows, Some(Placement(10_000_005)), Depth::Full);
        assert!(v.contains("tg_tenant\tacme::cc\t1"));
        assert!(v.contains("tg_tenant\tacme::key\t10000005"));
        assert!(v.contains("tg_tenant\tacme::tree\ttollgate-shard-0645"));
        assert!(v.contains("d:acme\t33\ta,dst:country:FR"));
        assert!(v.contains("address\t113/127.10.0.0/16/0\tacme|allow|src:127.10.0.0/16|"));
        assert_eq!(view_hash(&v), view_hash(&v.clone()));
        assert!(view_hash(&v).starts_with("sha256:"));
    }
}
