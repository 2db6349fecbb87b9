//! The Kamailio backend: a compiled policy → the `db_text` tables the static
//! `sbc/kamailio/tollgate.cfg` enforces. `docs/sbc.md` is the contract: the
//! table formats, escaping, the `address` groups, the `d:`/`c:` tree
//! encodings and every htable key are defined there.
//!
//! Every value is validated here before it reaches Kamailio: addresses are
//! re-parsed (Kamailio's own parser reads `127.0.0.300` as 127.0.0.44), names
//! and rule ids must not contain the separators of the encodings, prefixes
//! are digits, and two tenants of one fleet may not claim the same network.

use super::{Backend, Bundle, RenderError, TenantRows};
use ipnet::IpNet;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tollgate_ir::{
    CompiledPolicy, DestinationRule, GeoMode, LimitMetric, TimeWindow, Verdict, WindowWhen,
};
use tollgate_policy::window;

/// Most entries in one destination chain (the script's loop bound).
pub const MAX_CHAIN: usize = 64;
/// Most classes of one number (the script's loop bound).
pub const MAX_CLASSES: usize = 32;
/// Most open intervals of one window (the script reads at most 1024 numbers).
pub const MAX_WINDOW_INTERVALS: usize = 512;
/// `max_subnets` of the permissions module in tollgate.cfg (a unit test
/// keeps the two equal). The module allocates two tables of this many slots
/// in shared memory at start: measured on Kamailio 5.6.3, 109 bytes per
/// slot (20,000 slots: 15.4 MB of shm in use at start; 200,000: 35.1 MB),
/// docs/sbc.md "Sources".
pub const MAX_SUBNETS: usize = 200_000;
/// Days of window intervals rendered after `now` (the agent refreshes daily).
pub const WINDOW_DAYS: i64 = 8;
/// Longest rule id, name or revision accepted.
pub const MAX_TEXT: usize = 256;

const HTABLE_HEADER: &str =
    "id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) expires(int)";
const MTREE_HEADER: &str = "id(int,auto) tname(string) tprefix(string) tvalue(string)";

/// The shards that hold the tenants' destination and class trees: named
/// mtree trees `tollgate-shard-NNN`, each in its own table `tg_shard_NNN`
/// and reloaded alone (`mtree.reload tollgate-shard-NNN`), so a tenant's
/// change costs its shard, not the SBC (docs/sbc.md, "Shards"). A tenant's
/// rows live in the shard of its id ([`shard_of`]).
pub const SHARDS: u32 = 1024;
/// The first tenant id: ids have [`ID_DIGITS`] digits, the first never 0,
/// so no key is a prefix of another tenant's.
pub const FIRST_ID: u64 = 10_000_000;
/// The last tenant id.
pub const LAST_ID: u64 = 99_999_999;
/// Digits of a tenant id.
pub const ID_DIGITS: usize = 8;
/// Key digit after the id: the destination chains (`d:`), the classes (`c:`).
pub const DEST_KIND: char = '1';
/// See [`DEST_KIND`].
pub const CLASS_KIND: char = '2';
/// The table of the fleet-wide country tree.
pub const COUNTRY_TABLE: &str = "tg_country";
/// The table of the fleet-wide dialling tree.
pub const DIAL_TABLE: &str = "tg_dial";

/// The shard of a tenant id.
pub fn shard_of(id: u64) -> u32 {
    (id % u64::from(SHARDS)) as u32
}

/// The mtree tree name of a shard.
pub fn shard_tree(shard: u32) -> String {
    format!("tollgate-shard-{shard:04}")
}

/// The db_text table (file) of a shard.
pub fn shard_table(shard: u32) -> String {
    format!("tg_shard_{shard:04}")
}

/// The shard a table name is (`tg_shard_NNN`), if it is one.
pub fn shard_of_table(table: &str) -> Option<u32> {
    let n = table.strip_prefix("tg_shard_")?;
    (n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit()))
        .then(|| n.parse().ok())
        .flatten()
        .filter(|s| *s < SHARDS)
}

/// The tollgate.cfg lines that declare the shards (between `# BEGIN shards`
/// and `# END shards`; a unit test keeps the cfg equal to them).
pub fn shard_modparams() -> String {
    (0..SHARDS)
        .map(|i| {
            format!(
                "modparam(\"mtree\", \"mtree\", \"name={};dbtable={};type=0\")\n",
                shard_tree(i),
                shard_table(i)
            )
        })
        .collect()
}

/// Where a tenant's trees live on an SBC: its id, hence its shard and the
/// key prefix of its rows (`tg_tenant` `<t>::tree` and `<t>::key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Placement(pub u64);

impl Placement {
    pub fn shard(self) -> u32 {
        shard_of(self.0)
    }
    pub fn tree(self) -> String {
        shard_tree(self.shard())
    }
    pub fn table(self) -> String {
        shard_table(self.shard())
    }
    /// The key of a logical tree's prefix: `<id><kind><prefix>`; `tree` is
    /// `d:<t>` or `c:<t>` (`None` for any other name).
    pub fn key(self, tree: &str, prefix: &str) -> Option<String> {
        let kind = if tree.starts_with("d:") {
            DEST_KIND
        } else if tree.starts_with("c:") {
            CLASS_KIND
        } else {
            return None;
        };
        Some(format!("{}{kind}{prefix}", self.0))
    }
    /// The tenant's `tg_tenant` rows that name its shard and key.
    pub fn rows(self, tenant: &str) -> [String; 2] {
        [
            ht_row(&format!("{tenant}::key"), &self.0.to_string()),
            ht_row(&format!("{tenant}::tree"), &self.tree()),
        ]
    }
    /// The logical tree and prefix of a physical key (`None` if the key is
    /// not this id's).
    pub fn logical(self, tenant: &str, key: &str) -> Option<(String, String)> {
        let rest = key.strip_prefix(&self.0.to_string())?;
        let mut chars = rest.chars();
        let tree = match chars.next()? {
            DEST_KIND => format!("d:{tenant}"),
            CLASS_KIND => format!("c:{tenant}"),
            _ => return None,
        };
        Some((tree, chars.as_str().to_string()))
    }
}

/// Placements for tenants that have none yet: ids from [`FIRST_ID`] in
/// name order (what `tollgate-render` and the plain [`Backend::compose`] use).
pub fn placements_in_order<'a>(
    tenants: impl Iterator<Item = &'a String>,
) -> BTreeMap<String, Placement> {
    tenants
        .enumerate()
        .map(|(i, t)| (t.clone(), Placement(FIRST_ID + i as u64)))
        .collect()
}

/// The tables of the data directory: file name, header line, table version
/// (the fixed ones, then the shards).
pub fn tables() -> &'static [(String, &'static str, u32)] {
    static T: std::sync::OnceLock<Vec<(String, &'static str, u32)>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut v: Vec<(String, &'static str, u32)> = vec![
            (
                "address".into(),
                "id(int,auto) grp(int) ip_addr(string) mask(int) port(int) tag(string)",
                6,
            ),
            (COUNTRY_TABLE.into(), MTREE_HEADER, 1),
            (DIAL_TABLE.into(), MTREE_HEADER, 1),
            ("tg_tenant".into(), HTABLE_HEADER, 2),
            ("tg_geo".into(), HTABLE_HEADER, 2),
            ("tg_emerg".into(), HTABLE_HEADER, 2),
            ("tg_limit".into(), HTABLE_HEADER, 2),
            ("tg_window".into(), HTABLE_HEADER, 2),
            ("tg_block".into(), HTABLE_HEADER, 2),
            (
                "pl_pipes".into(),
                "id(int,auto) pipeid(string) algorithm(string) plimit(int)",
                1,
            ),
        ];
        v.extend((0..SHARDS).map(|i| (shard_table(i), MTREE_HEADER, 1)));
        v
    })
}

/// The header line of a table.
pub fn header_of(table: &str) -> Option<&'static str> {
    tables().iter().find(|t| t.0 == table).map(|t| t.1)
}

/// The `version` file: every table with its version.
pub fn version_file() -> String {
    let mut version = String::from("table_name(string) table_version(int)\n");
    for (table, _, v) in tables() {
        version.push_str(&format!("{table}:{v}\n"));
    }
    version
}

/// The JSON-RPC command that makes Kamailio re-read a table (after its file
/// changed): method and parameters. Each tree is reloaded alone; the
/// tenants' htables are normally changed key by key (`htable.sets` and
/// `htable.delete`), a reload re-reads the whole table.
pub fn reload_command(table: &str) -> Option<(&'static str, Vec<String>)> {
    Some(match table {
        "address" => ("permissions.addressReload", vec![]),
        COUNTRY_TABLE => ("mtree.reload", vec![COUNTRY_TREE.to_string()]),
        DIAL_TABLE => ("mtree.reload", vec![DIAL_TREE.to_string()]),
        "tg_tenant" | "tg_geo" | "tg_emerg" | "tg_limit" | "tg_window" | "tg_block" => {
            ("htable.reload", vec![table.to_string()])
        }
        t => ("mtree.reload", vec![shard_tree(shard_of_table(t)?)]),
    })
}

/// The Kamailio backend (stateless).
#[derive(Clone, Copy, Debug, Default)]
pub struct Kamailio;

/// A block in force (set by a response), written to `tg_block` so it
/// survives an SBC restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveBlock {
    /// `None` blocks the whole tenant, `Some(class)` one destination class.
    pub class: Option<String>,
    /// When the block ends; `None` = until acknowledged.
    pub expires: Option<Timestamp>,
}

impl Backend for Kamailio {
    fn name(&self) -> &'static str {
        "kamailio"
    }

    fn render_tenant(
        &self,
        policy: &CompiledPolicy,
        revision: &str,
        now: Timestamp,
    ) -> Result<TenantRows, RenderError> {
        Renderer::new(policy, now)?.render(revision)
    }

    fn compose(&self, tenants: &BTreeMap<String, TenantRows>) -> Result<Bundle, RenderError> {
        let placed = placements_in_order(tenants.keys());
        let all: Vec<(&String, &TenantRows)> = tenants.iter().collect();
        Kamailio::compose_placed(&all, &placed, None)
    }
}

impl Kamailio {
    /// The files of one SBC from the rows of its tenants, each at its
    /// placement (every tenant needs one): all of them (`only: None`, with
    /// the bundle's hash) or the named ones (no hash: an apply hashes the
    /// files it writes) (an SBC's apply writes the files its change touches: the
    /// changed tenants' shards, the htables, the address table). The checks
    /// across tenants (a network claimed twice, more networks than the SBC
    /// takes, two tenants at one id) always cover every tenant.
    pub fn compose_placed(
        tenants: &[(&String, &TenantRows)],
        placed: &BTreeMap<String, Placement>,
        only: Option<&BTreeSet<String>>,
    ) -> Result<Bundle, RenderError> {
        let mut owner: HashMap<IpNet, &str> = HashMap::new();
        let mut ids: HashMap<u64, &str> = HashMap::new();
        let by_name: HashMap<&str, &TenantRows> =
            tenants.iter().map(|(t, r)| (t.as_str(), *r)).collect();
        for &(name, rows) in tenants {
            if *name != rows.tenant {
                return Err(RenderError::Fleet(format!(
                    "rows of tenant `{}` filed under `{name}`",
                    rows.tenant
                )));
            }
            let Some(p) = placed.get(name) else {
                return Err(RenderError::Fleet(format!("tenant `{name}` has no id")));
            };
            if !(FIRST_ID..=LAST_ID).contains(&p.0) {
                return Err(RenderError::Fleet(format!(
                    "tenant `{name}`: id {} is not {ID_DIGITS} digits",
                    p.0
                )));
            }
            if let Some(first) = ids.insert(p.0, name) {
                return Err(RenderError::Fleet(format!(
                    "tenants `{first}` and `{name}` have the same id {}",
                    p.0
                )));
            }
            for net in &rows.networks {
                if let Some(first) = owner.insert(*net, name) {
                    return Err(RenderError::DuplicateNetwork {
                        network: net.to_string(),
                        first: first.to_string(),
                        second: name.to_string(),
                    });
                }
            }
        }
        if owner.len() > MAX_SUBNETS {
            return Err(RenderError::Fleet(format!(
                "{} source networks in the fleet; the SBC takes at most {MAX_SUBNETS} (max_subnets in tollgate.cfg, docs/sbc.md \"Sources\")",
                owner.len()
            )));
        }
        let wanted = |name: &str| only.is_none_or(|o| o.contains(name));
        let mut by_shard: BTreeMap<u32, Vec<(&String, Placement)>> = BTreeMap::new();
        for (t, p) in placed {
            if by_name.contains_key(t.as_str()) {
                by_shard.entry(p.shard()).or_default().push((t, *p));
            }
        }
        let mut files = BTreeMap::new();
        for (table, header, _) in tables() {
            if !wanted(table) {
                continue;
            }
            let mut text = format!("{header}\n");
            let mut id = 0u64;
            // written in place: no String per row (the htable files hold
            // every tenant's rows and are composed on every apply)
            let mut push = |text: &mut String, row: &str| {
                use std::fmt::Write as _;
                id += 1;
                let _ = writeln!(text, "{id}:{row}");
            };
            match table.as_str() {
                COUNTRY_TABLE => {
                    for (prefix, iso) in country_rows() {
                        push(&mut text, &format!("{COUNTRY_TREE}:{prefix}:{iso}"));
                    }
                }
                DIAL_TABLE => {
                    for (key, value) in dial_rows() {
                        push(&mut text, &format!("{DIAL_TREE}:{key}:{value}"));
                    }
                }
                t => {
                    if let Some(shard) = shard_of_table(t) {
                        let tree = shard_tree(shard);
                        for (name, p) in by_shard.get(&shard).into_iter().flatten() {
                            let rows = by_name[name.as_str()];
                            for r in rows.tables.get("mtree").into_iter().flatten() {
                                push(&mut text, &physical_row(name, *p, &tree, r)?);
                            }
                        }
                    } else {
                        for &(name, rows) in tenants {
                            for r in rows.tables.get(t).into_iter().flatten() {
                                push(&mut text, r);
                            }
                            if t == "tg_tenant" {
                                for r in placed[name].rows(name) {
                                    push(&mut text, &r);
                                }
                            }
                        }
                    }
                }
            }
            files.insert(table.clone(), text);
        }
        if wanted("version") {
            files.insert("version".to_string(), version_file());
        }
        Ok(if only.is_some() {
            Bundle::unhashed(files)
        } else {
            Bundle::new(files)
        })
    }
}

/// A tenant's logical tree row (`d\:<t>:<prefix>:<value>` or `c\:...`) at
/// its place in its shard: `<shard tree>:<id><kind><prefix>:<value>`.
fn physical_row(tenant: &str, p: Placement, tree: &str, row: &str) -> Result<String, RenderError> {
    for (logical, kind) in [("d:", DEST_KIND), ("c:", CLASS_KIND)] {
        let head = format!("{}:", escape(&format!("{logical}{tenant}")));
        if let Some(rest) = row.strip_prefix(&head) {
            return Ok(format!("{tree}:{}{kind}{rest}", p.0));
        }
    }
    Err(RenderError::Fleet(format!(
        "tenant `{tenant}`: a tree row of another tree: `{}`",
        row.escape_debug()
    )))
}

impl Kamailio {
    /// Adds the tenant's blocks in force to its `tg_block` rows (replacing
    /// any there). Keys: `<t>` (tenant) or `<t>::<class>`; value: expiry
    /// epoch seconds, 0 = until acknowledged.
    pub fn set_blocks(rows: &mut TenantRows, blocks: &[ActiveBlock]) -> Result<(), RenderError> {
        let t = rows.tenant.clone();
        let mut out = BTreeMap::new();
        for (i, b) in blocks.iter().enumerate() {
            let key = match &b.class {
                None => t.clone(),
                Some(c) => {
                    check_name(&t, format_args!("blocks[{i}].class"), c)?;
                    format!("{t}::{c}")
                }
            };
            let exp = b.expires.map_or(0, |e| e.as_second().max(1));
            // two blocks of one key: the longer one holds (0 = forever)
            let e = out.entry(key).or_insert(exp);
            if *e != 0 && (exp == 0 || exp > *e) {
                *e = exp;
            }
        }
        rows.tables.insert(
            "tg_block".into(),
            out.into_iter()
                .map(|(k, v)| ht_row(&k, &v.to_string()))
                .collect(),
        );
        Ok(())
    }
}

/// Every first digit of an E.164 number: the trees' rows for the root.
const FIRST_DIGITS: [&str; 9] = ["1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// The fleet-wide country tree every bundle carries (its own table,
/// [`COUNTRY_TABLE`]): E.164 prefix → ISO 3166-1 alpha-2 code of the
/// country the numbers under it belong to, from the project's numbering
/// table (`tollgate_policy::numbering`, docs/numbering.md). A longest-prefix
/// lookup gives what [`tollgate_policy::numbering::country_of`] gives: every
/// country prefix with its country, every carve-out that is no country's
/// prefix with [`NO_COUNTRY`]; a number under no row (non-geographic codes,
/// NANP service codes, unassigned ranges) matches nothing. tollgate.cfg
/// looks it up for every allowed call and counts `<t>::country::<CC>` in
/// `tg_stat` (`ZZ` when nothing matches). Not a tenant's tree: the
/// read-back ignores it; the agent's bundle check accepts exactly
/// [`country_rows`].
pub const COUNTRY_TREE: &str = "tollgate-country";

/// The fleet-wide dialling tree every bundle carries (its own table,
/// [`DIAL_TABLE`]): how a dialled string is read, per home country
/// (`tollgate_policy::dialling::rows`, the table the evaluator reads by).
/// tollgate.cfg `route[NORMALIZE]` looks it up for every call that is not
/// an emergency call. Not a tenant's tree: the read-back ignores it; the
/// agent's bundle check accepts exactly [`dial_rows`].
pub const DIAL_TREE: &str = "tollgate-dial";

/// The rows of [`DIAL_TREE`]: (key, value), sorted by key; digits-only keys
/// and values without db_text's separators (checked, else left out: the
/// lookup then refuses the forms they would read).
pub fn dial_rows() -> &'static [(String, String)] {
    static ROWS: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    ROWS.get_or_init(|| {
        tollgate_policy::dialling::rows()
            .iter()
            .filter(|(k, v)| {
                !k.is_empty()
                    && k.len() <= 20
                    && k.bytes().all(|b| b.is_ascii_digit())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b',' || b == b'-')
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

/// The country code of numbers in no country (user-assigned in ISO 3166-1).
pub const NO_COUNTRY: &str = "ZZ";

/// The rows of [`COUNTRY_TREE`]: (prefix, ISO code), sorted by prefix.
/// Computed once; the same for every bundle of one build.
pub fn country_rows() -> &'static [(String, &'static str)] {
    static ROWS: std::sync::OnceLock<Vec<(String, &'static str)>> = std::sync::OnceLock::new();
    ROWS.get_or_init(|| {
        let mut rows: BTreeMap<String, &'static str> = BTreeMap::new();
        let countries = tollgate_policy::numbering::countries();
        for c in countries {
            for p in &c.carve_outs {
                rows.entry(p.clone()).or_insert(NO_COUNTRY);
            }
        }
        for c in countries {
            for p in &c.prefixes {
                rows.insert(p.clone(), c.iso);
            }
        }
        // what reaches Kamailio: digits only, two capital letters
        rows.retain(|p, iso| {
            !p.is_empty()
                && p.len() <= 15
                && p.bytes().all(|b| b.is_ascii_digit())
                && iso.len() == 2
                && iso.bytes().all(|b| b.is_ascii_uppercase())
        });
        rows.into_iter().collect()
    })
}

/// db_text escaping of one field value: `\`, `:`, newline, CR and tab.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ':' => out.push_str("\\:"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// An htable row without its id: `key:0:0:value:0`.
fn ht_row(key: &str, value: &str) -> String {
    format!("{}:0:0:{}:0", escape(key), escape(value))
}

/// Characters that separate fields in the encodings (`|` in address tags,
/// `,` and `;` in chains and lists), end headers (CR, LF) or quoted strings
/// (`"`, `\`).
const FORBIDDEN: [char; 5] = ['|', ',', ';', '"', '\\'];

/// A rule id or revision: printable, none of [`FORBIDDEN`], no white space.
fn check_text(tenant: &str, field: impl std::fmt::Display, s: &str) -> Result<(), RenderError> {
    if s.is_empty() || s.len() > MAX_TEXT {
        return Err(RenderError::invalid(
            tenant,
            field.to_string(),
            format!("must have 1 to {MAX_TEXT} characters"),
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || FORBIDDEN.contains(c))
    {
        return Err(RenderError::invalid(
            tenant,
            field.to_string(),
            format!(
                "`{}` contains the forbidden character {c:?}",
                s.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// A window, class or trunk name: `[A-Za-z0-9][A-Za-z0-9._@+-]*`, at most 63
/// characters (no `:`: names are parts of htable keys).
fn check_name(tenant: &str, field: impl std::fmt::Display, s: &str) -> Result<(), RenderError> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'+' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(RenderError::invalid(
            tenant,
            field.to_string(),
            format!(
                "`{}` is not a name (letters, digits, `._@+-`, at most 63)",
                s.escape_debug()
            ),
        ))
    }
}

fn check_digits(
    tenant: &str,
    field: impl std::fmt::Display,
    s: &str,
    min: usize,
) -> Result<(), RenderError> {
    if s.len() < min || s.len() > 15 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RenderError::invalid(
            tenant,
            field.to_string(),
            format!("`{}` must be {min} to 15 digits", s.escape_debug()),
        ));
    }
    Ok(())
}

/// A DNS label (RFC 1123), as tenant names are.
fn check_tenant(t: &str) -> Result<(), RenderError> {
    let b = t.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-';
    if ok {
        Ok(())
    } else {
        Err(RenderError::invalid(
            t,
            "tenant",
            "must be a DNS label (a-z, 0-9, `-`, at most 63)",
        ))
    }
}

struct Renderer<'p> {
    p: &'p CompiledPolicy,
    t: &'p str,
    now: Timestamp,
    /// window name → zone
    windows: BTreeMap<&'p str, (&'p TimeWindow, TimeZone)>,
}

impl<'p> Renderer<'p> {
    fn new(p: &'p CompiledPolicy, now: Timestamp) -> Result<Self, RenderError> {
        let t = p.tenant.as_str();
        check_tenant(t)?;
        let mut windows = BTreeMap::new();
        for (i, w) in p.windows.iter().enumerate() {
            check_name(t, format_args!("windows[{i}].name"), &w.name)?;
            check_text(t, format_args!("windows[{i}].rule"), &w.rule)?;
            let tz = TimeZone::get(&w.zone).map_err(|_| {
                RenderError::invalid(
                    t,
                    format!("windows[{i}].zone"),
                    format!("unknown time zone `{}`", w.zone),
                )
            })?;
            if windows.insert(w.name.as_str(), (w, tz)).is_some() {
                return Err(RenderError::invalid(
                    t,
                    format!("windows[{i}].name"),
                    format!("window `{}` is declared twice", w.name),
                ));
            }
        }
        Ok(Renderer { p, t, now, windows })
    }

    fn render(&self, revision: &str) -> Result<TenantRows, RenderError> {
        let t = self.t;
        let mut tables = BTreeMap::new();
        let (address, networks) = self.address()?;
        tables.insert("address".to_string(), address);
        let mut mtree = self.destinations()?;
        mtree.extend(self.classes()?);
        tables.insert("mtree".to_string(), mtree);
        tables.insert("tg_tenant".to_string(), self.tenant(revision)?);
        tables.insert("tg_geo".to_string(), self.geo()?);
        tables.insert("tg_emerg".to_string(), self.emergency()?);
        tables.insert("tg_limit".to_string(), self.limits()?);
        tables.insert("tg_window".to_string(), self.window_rows()?);
        tables.insert("tg_block".to_string(), Vec::new());
        Ok(TenantRows {
            tenant: t.to_string(),
            revision: revision.to_string(),
            tables,
            networks,
        })
    }

    /// `grp:ip_addr:mask:port:tag`, grp = 129 - prefix length.
    fn address(&self) -> Result<(Vec<String>, Vec<IpNet>), RenderError> {
        let t = self.t;
        let mut rows = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, n) in self.p.sources.networks.iter().enumerate() {
            let field = format!("sources.networks[{i}]");
            let net = parse_cidr(&n.cidr).ok_or_else(|| {
                RenderError::invalid(
                    t,
                    format!("{field}.cidr"),
                    format!("`{}` is not a CIDR network", n.cidr.escape_debug()),
                )
            })?;
            if net.trunc() != net {
                return Err(RenderError::invalid(
                    t,
                    format!("{field}.cidr"),
                    format!(
                        "`{}` has host bits set (network is {})",
                        n.cidr,
                        net.trunc()
                    ),
                ));
            }
            if !seen.insert(net) {
                return Err(RenderError::invalid(
                    t,
                    format!("{field}.cidr"),
                    format!("network {net} is listed twice"),
                ));
            }
            check_text(t, format_args!("{field}.rule"), &n.rule)?;
            if let Some(trunk) = &n.trunk {
                check_name(t, format_args!("{field}.trunk"), trunk)?;
            }
            let action = match n.action {
                Verdict::Allow => "allow",
                Verdict::Deny => "deny",
            };
            let tag = format!(
                "{t}|{action}|{}|{}",
                n.rule,
                n.trunk.as_deref().unwrap_or("")
            );
            let len = net.prefix_len();
            rows.push(format!(
                "{}:{}:{len}:0:{}",
                129 - u32::from(len),
                escape(&net.network().to_string()),
                escape(&tag)
            ));
        }
        Ok((rows, seen.into_iter().collect()))
    }

    /// `d:<tenant>` rows: for every prefix, its evaluation chain.
    fn destinations(&self) -> Result<Vec<String>, RenderError> {
        let t = self.t;
        let mut by_prefix: HashMap<&str, Vec<&DestinationRule>> = HashMap::new();
        for (i, d) in self.p.destinations.iter().enumerate() {
            // (field names are formatted only for an error: 100,000 rows)
            if !d.prefix.is_empty() {
                check_digits(t, format_args!("destinations[{i}].prefix"), &d.prefix, 1)?;
            }
            check_text(t, format_args!("destinations[{i}].rule"), &d.rule)?;
            if let Some(w) = &d.window
                && !self.windows.contains_key(w.name.as_str())
            {
                return Err(RenderError::invalid(
                    t,
                    format!("destinations[{i}].window"),
                    format!("no window `{}`", w.name),
                ));
            }
            by_prefix.entry(d.prefix.as_str()).or_default().push(d);
        }
        // the evaluation list: own entries in order, then the enclosing
        // prefixes', longest first, through the first unconditional entry
        let chain = |prefix: &str| -> Vec<&DestinationRule> {
            let mut out = Vec::new();
            for len in (0..=prefix.len()).rev() {
                for e in by_prefix.get(&prefix[..len]).into_iter().flatten() {
                    out.push(*e);
                    if e.window.is_none() {
                        return out;
                    }
                }
            }
            out
        };
        let mut prefixes: BTreeSet<&str> = by_prefix
            .keys()
            .filter(|p| !p.is_empty())
            .copied()
            .collect();
        // the root entry is represented by every first digit
        prefixes.extend(FIRST_DIGITS);
        let tname = escape(&format!("d:{t}"));
        let mut rows = Vec::with_capacity(prefixes.len());
        for p in &prefixes {
            let entries = chain(p);
            if entries.len() > MAX_CHAIN {
                return Err(RenderError::invalid(
                    t,
                    "destinations",
                    format!(
                        "prefix +{p} has {} entries to evaluate; the SBC reads at most {MAX_CHAIN}",
                        entries.len()
                    ),
                ));
            }
            let value = if entries.is_empty() {
                // no entry applies: what the evaluator (and the script) decide anyway
                "d,dst:international".to_string()
            } else {
                entries
                    .iter()
                    .map(|e| {
                        let a = match e.action {
                            Verdict::Allow => "a",
                            Verdict::Deny => "d",
                        };
                        match &e.window {
                            None => format!("{a},{}", e.rule),
                            Some(w) => {
                                let when = match w.when {
                                    WindowWhen::During => "i",
                                    WindowWhen::Outside => "o",
                                };
                                format!("{a},{},{},{when}", e.rule, w.name)
                            }
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(";")
            };
            rows.push(format!("{tname}:{p}:{}", escape(&value)));
        }
        Ok(rows)
    }

    /// `c:<tenant>` rows: the evaluator's class list of numbers under each
    /// class prefix (and under every first digit).
    fn classes(&self) -> Result<Vec<String>, RenderError> {
        let t = self.t;
        let mut by_prefix: HashMap<&str, Vec<&str>> = HashMap::new();
        for (i, c) in self.p.classes.iter().enumerate() {
            check_digits(t, format_args!("classes[{i}].prefix"), &c.prefix, 1)?;
            check_name(t, format_args!("classes[{i}].class"), &c.class)?;
            by_prefix
                .entry(c.prefix.as_str())
                .or_default()
                .push(c.class.as_str());
        }
        let mut prefixes: BTreeSet<&str> = by_prefix.keys().copied().collect();
        prefixes.extend(FIRST_DIGITS);
        let tname = escape(&format!("c:{t}"));
        let mut rows = Vec::with_capacity(prefixes.len());
        for p in &prefixes {
            // as the evaluator's class lists (eval.rs, class_list): longest
            // first, `national` as a flag, the others deduplicated and
            // sorted, the scope class first
            let mut out: Vec<&str> = Vec::new();
            let mut national = false;
            for len in (1..=p.len()).rev() {
                for c in by_prefix.get(&p[..len]).into_iter().flatten() {
                    if *c == "national" {
                        national = true;
                    } else if !out.contains(c) {
                        out.push(c);
                    }
                }
            }
            out.sort_unstable();
            out.insert(
                0,
                if national {
                    "national"
                } else {
                    "international"
                },
            );
            if out.len() > MAX_CLASSES {
                return Err(RenderError::invalid(
                    t,
                    "classes",
                    format!(
                        "numbers under +{p} have {} classes; the SBC reads at most {MAX_CLASSES}",
                        out.len()
                    ),
                ));
            }
            rows.push(format!("{tname}:{p}:{}", escape(&out.join(","))));
        }
        Ok(rows)
    }

    fn tenant(&self, revision: &str) -> Result<Vec<String>, RenderError> {
        let t = self.t;
        let p = self.p;
        let cc = tollgate_policy::numbering::country(&p.home_country)
            .map(|c| c.calling_code.clone())
            .filter(|cc| (1..=3).contains(&cc.len()) && cc.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                RenderError::invalid(
                    t,
                    "homeCountry",
                    format!(
                        "no calling code known for `{}`",
                        p.home_country.escape_debug()
                    ),
                )
            })?;
        // the home country's key in the dialling tree
        let home = tollgate_policy::dialling::home_key(&p.home_country)
            .filter(|h| tollgate_policy::dialling::rows().contains_key(&format!("0{h}")))
            .ok_or_else(|| {
                RenderError::invalid(
                    t,
                    "homeCountry",
                    format!("no dialling data for `{}`", p.home_country.escape_debug()),
                )
            })?;
        let mut rows = vec![
            ht_row(&format!("{t}::cc"), &cc),
            ht_row(&format!("{t}::home"), &home),
        ];
        if !revision.is_empty() {
            check_text(t, "revision", revision)?;
            rows.push(ht_row(&format!("{t}::rev"), revision));
        }
        if let Some(geo) = &p.sources.geo {
            check_text(t, "sources.geo.rule", &geo.rule)?;
            let mode = match geo.mode {
                GeoMode::Deny => "deny",
                GeoMode::AllowOnly => "allow",
            };
            rows.push(ht_row(&format!("{t}::geo"), mode));
            rows.push(ht_row(&format!("{t}::geo::rule"), &geo.rule));
        }
        let c = &p.crypto;
        for (on, key) in [
            (c.require_tls, "tls"),
            (c.require_client_certificate, "cert"),
            (c.require_srtp, "srtp"),
        ] {
            if on {
                rows.push(ht_row(&format!("{t}::{key}"), "1"));
            }
        }
        Ok(rows)
    }

    fn geo(&self) -> Result<Vec<String>, RenderError> {
        let t = self.t;
        let Some(geo) = &self.p.sources.geo else {
            return Ok(Vec::new());
        };
        let mut set = BTreeSet::new();
        for (i, c) in geo.countries.iter().enumerate() {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(RenderError::invalid(
                    t,
                    format!("sources.geo.countries[{i}]"),
                    format!("`{}` is not an ISO 3166-1 alpha-2 code", c.escape_debug()),
                ));
            }
            set.insert(c.as_str());
        }
        Ok(set
            .into_iter()
            .map(|c| ht_row(&format!("{t}::{c}"), "1"))
            .collect())
    }

    fn emergency(&self) -> Result<Vec<String>, RenderError> {
        let t = self.t;
        let mut set = BTreeSet::new();
        for (i, n) in self.p.emergency_numbers.iter().enumerate() {
            check_digits(t, format_args!("emergencyNumbers[{i}]"), n, 1)?;
            set.insert(n.as_str());
        }
        Ok(set
            .into_iter()
            .map(|n| ht_row(&format!("{t}::{n}"), "1"))
            .collect())
    }

    /// `tg_limit` rows: per limit `critical`, `warning`, `rule`, then
    /// `<t>::limits` = 8 + the metrics with a limit (1 concurrent, 2 rate, 4
    /// duration): the script skips the lookups of a metric the tenant does
    /// not limit (and looks at every metric when the row is missing).
    fn limits(&self) -> Result<Vec<String>, RenderError> {
        let t = self.t;
        let mut seen = BTreeSet::new();
        let mut rows = Vec::new();
        let mut metrics = 8u8;
        for (i, l) in self.p.limits.iter().enumerate() {
            let field = format!("limits[{i}]");
            check_text(t, format_args!("{field}.rule"), &l.rule)?;
            let (metric, bit) = match l.metric {
                LimitMetric::Concurrent => ("concurrent", 1),
                LimitMetric::Rate => ("rate", 2),
                LimitMetric::Duration => ("duration", 4),
            };
            metrics |= bit;
            let base = match &l.class {
                None => format!("{t}::{metric}"),
                Some(c) => {
                    check_name(t, format_args!("{field}.class"), c)?;
                    format!("{t}::{metric}::{c}")
                }
            };
            if !seen.insert(base.clone()) {
                return Err(RenderError::invalid(
                    t,
                    field,
                    format!(
                        "a second {metric} limit for {}",
                        l.class.as_deref().unwrap_or("the tenant")
                    ),
                ));
            }
            if let Some(c) = l.critical {
                rows.push(ht_row(&format!("{base}::critical"), &c.to_string()));
            }
            if let (Some(w), false) = (l.warning, l.metric == LimitMetric::Duration) {
                rows.push(ht_row(&format!("{base}::warning"), &w.to_string()));
            }
            rows.push(ht_row(&format!("{base}::rule"), &l.rule));
        }
        rows.push(ht_row(&format!("{t}::limits"), &metrics.to_string()));
        Ok(rows)
    }

    fn window_rows(&self) -> Result<Vec<String>, RenderError> {
        let t = self.t;
        let mut rows = Vec::new();
        for (name, (w, tz)) in &self.windows {
            let list = open_intervals(w, tz, self.now)
                .map_err(|e| RenderError::invalid(t, format!("windows.{name}"), e.to_string()))?;
            if list.len() > MAX_WINDOW_INTERVALS {
                return Err(RenderError::invalid(
                    t,
                    format!("windows.{name}"),
                    format!(
                        "{} open intervals in {WINDOW_DAYS} days; the SBC reads at most {MAX_WINDOW_INTERVALS}",
                        list.len()
                    ),
                ));
            }
            let value = if list.is_empty() {
                // an empty interval: never open (an empty value is not a row)
                "0,0".to_string()
            } else {
                list.iter()
                    .map(|(a, b)| format!("{a},{b}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            rows.push(ht_row(&format!("{t}::{name}"), &value));
        }
        Ok(rows)
    }
}

/// `ADDRESS/LENGTH`, strictly: the address as the standard library reads it
/// (no leading zeros, no shorthand such as `127.1`; ipnet's own parser takes
/// `127.010.0.0`, which other parsers read as octal), the length in decimal
/// without leading zeros and within the family's range.
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    let (addr, len) = s.split_once('/')?;
    let addr: std::net::IpAddr = addr.parse().ok()?;
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if len.len() > 1 && len.starts_with('0') {
        return None;
    }
    IpNet::new(addr, len.parse().ok()?).ok()
}

/// Why a window's open intervals cannot be listed.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// An instant out of the calendar's range.
    #[error("{0}")]
    Time(#[source] jiff::Error),
    /// The zone's offset is not whole minutes (the SBC checks whole minutes).
    #[error("zone {zone} has an offset of odd seconds at {at}")]
    OddOffset {
        /// The window's zone.
        zone: String,
        /// When.
        at: Timestamp,
    },
}

/// The intervals `[start, end)` (UTC epoch seconds, sorted, disjoint, not
/// adjacent) in which `window` is open, as `window::is_open_in` decides it:
/// every interval that ends after `now`, its end cut at `now + 8 days` and
/// its start at `now - 1 day`. Exact because window edges are whole local
/// minutes and zone offsets whole minutes (checked), so the open state only
/// changes on whole UTC minutes; sampling each minute gives the set.
pub fn open_intervals(
    window: &TimeWindow,
    tz: &TimeZone,
    now: Timestamp,
) -> Result<Vec<(i64, i64)>, WindowError> {
    let now_s = now.as_second();
    let start = (now_s.div_euclid(60) - 1440) * 60;
    let horizon = now_s + WINDOW_DAYS * 86_400;
    let mut out = Vec::new();
    let mut open_since: Option<i64> = None;
    let mut at = start;
    while at < horizon {
        let ts = Timestamp::from_second(at).map_err(WindowError::Time)?;
        if tz.to_offset(ts).seconds() % 60 != 0 {
            return Err(WindowError::OddOffset {
                zone: window.zone.clone(),
                at: ts,
            });
        }
        let open = window::is_open_in(window, ts, tz);
        match (open, open_since) {
            (true, None) => open_since = Some(at),
            (false, Some(s)) => {
                out.push((s, at));
                open_since = None;
            }
            _ => {}
        }
        at += 60;
    }
    if let Some(s) = open_since {
        out.push((s, horizon));
    }
    out.retain(|(_, end)| *end > now_s);
    Ok(out)
}

#[cfg(test)]
mod tests;
