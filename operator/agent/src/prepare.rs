//! The pure part of an apply (steps 1–2 of docs/agent.md): render the
//! changed tenants, place new ones, own checks, the trial's bundle and the
//! live files the change touches, the htable entries it sets and deletes,
//! and the expected read-backs. No I/O. Its cost follows the changed
//! tenants (and their shards), plus one pass over the SBC's networks and
//! htable rows to compose those files.

use std::collections::{BTreeMap, BTreeSet};
use tollgate_ir::CompiledPolicy;
use tollgate_kamailio::kamailio::{
    COUNTRY_TABLE, DIAL_TABLE, FIRST_ID, Kamailio, LAST_ID, Placement, escape, header_of,
    placements_in_order,
};
use tollgate_kamailio::{Backend, Bundle, TenantRows};

use crate::error::ApplyError;
use crate::rows::{Expected, check_bundle, htable_entries, tree_rows};

/// A block with expiry `e` (epoch seconds, 0 = until lifted) at `now`.
pub(crate) fn block_in_force(e: i64, now: i64) -> bool {
    e == 0 || e > now
}

/// One tenant's change: a revision to apply, or `None` to remove it.
pub type Change = Option<(String, CompiledPolicy)>;

/// What the SBC holds now, as an apply sees it.
#[derive(Clone, Copy, Debug)]
pub struct Current<'a> {
    pub rows: &'a BTreeMap<String, TenantRows>,
    pub placed: &'a BTreeMap<String, Placement>,
    pub blocks: &'a BTreeMap<String, i64>,
}

/// What an apply checked before any Kamailio is touched.
#[derive(Debug)]
pub struct Prepared {
    /// The changed tenants' rows after the change (`None`: removed).
    pub cand: BTreeMap<String, Option<TenantRows>>,
    /// Every changed tenant's placement (a new tenant's is new).
    pub placed: BTreeMap<String, Placement>,
    /// The trial's files: the fleet-wide trees and the candidates alone.
    pub trial: Bundle,
    /// What the trial must hold (a full read of it).
    pub trial_expected: Expected,
    /// The live files the change touches, composed over every tenant.
    pub live: Bundle,
    /// What the live SBC must hold for the changed tenants afterwards.
    pub expected: Expected,
    /// htable entries to set (`Some`) and delete (`None`) on the live SBC.
    pub htable_ops: Vec<(String, String, Option<String>)>,
    /// The policies the trial probes, at their placements in the trial.
    pub probes: Vec<(CompiledPolicy, Placement)>,
}

/// The next free id at or after `from` (ids in use: `used`).
pub(crate) fn free_id(used: &BTreeSet<u64>, from: u64) -> Option<u64> {
    (from.max(FIRST_ID)..=LAST_ID)
        .chain(FIRST_ID..from.max(FIRST_ID))
        .find(|i| !used.contains(i))
}

/// The pure part of an apply (steps 1–2 of docs/agent.md) for one or more
/// tenants' changes: render, place, compose, own checks, expected
/// read-backs. A new tenant gets the first free id after `next_id`.
pub fn prepare(
    cur: Current<'_>,
    changes: &BTreeMap<String, Change>,
    next_id: u64,
    now: jiff::Timestamp,
) -> Result<Prepared, ApplyError> {
    let mut cand: BTreeMap<String, Option<TenantRows>> = BTreeMap::new();
    let mut probes = Vec::new();
    let mut placed: BTreeMap<String, Placement> = BTreeMap::new();
    let mut used: BTreeSet<u64> = cur.placed.values().map(|p| p.0).collect();
    let mut next = next_id;
    let mut reasons = Vec::new();
    let mut probed: BTreeSet<[u8; 32]> = BTreeSet::new();
    for (tenant, change) in changes {
        match change {
            Some((rev, policy)) => {
                if policy.tenant != *tenant {
                    reasons.push(format!(
                        "the policy is for tenant `{}`, not `{tenant}`",
                        policy.tenant
                    ));
                    continue;
                }
                let rows = match Kamailio.render_tenant(policy, rev, now) {
                    Ok(r) => r,
                    Err(e) => {
                        reasons.push(e.to_string());
                        continue;
                    }
                };
                let at = match cur.placed.get(tenant) {
                    Some(p) => *p,
                    None => {
                        let Some(id) = free_id(&used, next) else {
                            return Err(ApplyError::Rejected(vec![
                                "no tenant id is free on this SBC".into(),
                            ]));
                        };
                        used.insert(id);
                        next = id + 1;
                        Placement(id)
                    }
                };
                placed.insert(tenant.clone(), at);
                // tenants whose probed inputs are equal answer equally: one
                // of them is probed (a base change to many tenants)
                if probed.insert(probe_key(policy, &rows)) {
                    probes.push(policy.clone());
                }
                cand.insert(tenant.clone(), Some(rows));
            }
            None => {
                let Some(at) = cur.placed.get(tenant) else {
                    return Err(ApplyError::NotFound(format!("no tenant `{tenant}`")));
                };
                placed.insert(tenant.clone(), *at);
                cand.insert(tenant.clone(), None);
            }
        }
    }
    if !reasons.is_empty() {
        return Err(ApplyError::Rejected(reasons));
    }
    // every tenant after the change, in name order (references only)
    let mut all: Vec<(&String, &TenantRows)> = cur
        .rows
        .iter()
        .filter(|(t, _)| !cand.contains_key(*t))
        .collect();
    all.extend(cand.iter().filter_map(|(t, r)| r.as_ref().map(|r| (t, r))));
    all.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut all_placed: BTreeMap<String, Placement> = cur
        .placed
        .iter()
        .filter(|(t, _)| cand.get(*t).is_none_or(Option::is_some))
        .map(|(t, p)| (t.clone(), *p))
        .collect();
    all_placed.extend(
        placed
            .iter()
            .filter(|(t, _)| cand.get(*t).is_some_and(Option::is_some))
            .map(|(t, p)| (t.clone(), *p)),
    );
    // the live files the change touches
    let mut touched: BTreeSet<String> =
        ["version", "tg_block", "pl_pipes", COUNTRY_TABLE, DIAL_TABLE]
            .iter()
            .map(ToString::to_string)
            .collect();
    let mut ops = Vec::new();
    for (t, new) in &cand {
        let at = placed[t];
        touched.insert(at.table());
        let old = cur.rows.get(t);
        let table_of = |r: Option<&TenantRows>, name: &str| -> Vec<String> {
            r.and_then(|r| r.tables.get(name))
                .cloned()
                .unwrap_or_default()
        };
        if table_of(old, "address") != table_of(new.as_ref(), "address") {
            touched.insert("address".into());
        }
        let before = old.map(|r| htable_entries(r, at)).unwrap_or_default();
        let after = new
            .as_ref()
            .map(|r| htable_entries(r, at))
            .unwrap_or_default();
        for ((table, key), v) in &after {
            if before.get(&(table.clone(), key.clone())) != Some(v) {
                ops.push((table.clone(), key.clone(), Some(v.clone())));
                touched.insert(table.clone());
            }
        }
        for (table, key) in before.keys() {
            if !after.contains_key(&(table.clone(), key.clone())) {
                ops.push((table.clone(), key.clone(), None));
                touched.insert(table.clone());
            }
        }
    }
    // a tenant's rev and placement last: its other entries are in place
    // before its revision says so
    ops.sort_by_key(|(table, key, _)| {
        table == "tg_tenant" && (key.ends_with("::rev") || key.ends_with("::key"))
    });
    let mut live = Kamailio::compose_placed(&all, &all_placed, Some(&touched))
        .map_err(|e| ApplyError::Rejected(vec![e.to_string()]))?;
    let blocks = block_file(cur.blocks, &all_placed);
    live.files.insert("tg_block".into(), blocks);
    // the trial: the candidates alone
    let trial_rows: BTreeMap<String, TenantRows> = cand
        .iter()
        .filter_map(|(t, r)| r.clone().map(|r| (t.clone(), r)))
        .collect();
    // in the trial each candidate has a shard of its own (up to 1024): its
    // read-back lists just its rows (a listing costs more per row the
    // bigger the shard); the live placement is the SBC's
    let trial_placed = placements_in_order(trial_rows.keys());
    let trial_refs: Vec<(&String, &TenantRows)> = trial_rows.iter().collect();
    let trial = Kamailio::compose_placed(&trial_refs, &trial_placed, None)
        .map_err(|e| ApplyError::Rejected(vec![e.to_string()]))?;
    let mut errs = check_bundle(&trial, &trial_placed, true);
    // the live files (their fleet-wide trees are the trial's, checked above)
    errs.extend(check_bundle(&live, &all_placed, false));
    if !errs.is_empty() {
        return Err(ApplyError::Rejected(errs));
    }
    let trial_expected = Expected::full(&trial_rows, &trial_placed);
    let probes = probes
        .into_iter()
        .map(|p| {
            let at = trial_placed[&p.tenant];
            (p, at)
        })
        .collect();
    // the live read-back: the changed tenants, and their shards' sizes
    let mut expected = Expected {
        address: touched.contains("address"),
        ..Expected::default()
    };
    for (t, new) in &cand {
        let at = placed[t];
        match (new, cur.rows.get(t)) {
            (Some(r), old) => expected.add(r, at, old),
            (None, Some(old)) => expected.add_removed(old, at),
            (None, None) => {}
        }
    }
    let shards: BTreeSet<u32> = placed.values().map(|p| p.shard()).collect();
    for s in shards {
        let n = all
            .iter()
            .filter(|(t, _)| all_placed.get(*t).is_some_and(|p| p.shard() == s))
            .map(|(_, r)| tree_rows(r))
            .sum();
        expected.shard_items.insert(s, n);
    }
    Ok(Prepared {
        cand,
        placed,
        trial,
        trial_expected,
        live,
        expected,
        htable_ops: ops,
        probes,
    })
}

/// What the trial's probes of a tenant depend on, without its name: the
/// policy's destination stage (home, emergency numbers, destinations,
/// classes, windows) and the rendered trees and window intervals. Two
/// candidates with the same key get the same answers from the evaluator and
/// from their trees, so a batch probes one of them (the read-back still
/// checks every candidate's rows).
fn probe_key(p: &CompiledPolicy, rows: &TenantRows) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let parts = (
        &p.home_country,
        &p.emergency_numbers,
        &p.destinations,
        &p.classes,
        &p.windows,
    );
    h.update(serde_json::to_vec(&parts).unwrap_or_default());
    let t = &rows.tenant;
    let heads = [
        escape(&format!("d:{t}")),
        escape(&format!("c:{t}")),
        escape(&format!("{t}::")),
    ];
    for table in ["mtree", "tg_window"] {
        for row in rows.tables.get(table).into_iter().flatten() {
            match heads
                .iter()
                .enumerate()
                .find_map(|(i, head)| row.strip_prefix(head.as_str()).map(|rest| (i, rest)))
            {
                Some((i, rest)) => {
                    h.update([i as u8]);
                    h.update(rest.as_bytes());
                }
                None => {
                    h.update([9]);
                    h.update(row.as_bytes());
                }
            }
            h.update([0]);
        }
        h.update([1]);
    }
    h.finalize().into()
}

/// The `tg_block` file: every block in force of a tenant the SBC holds.
pub(crate) fn block_file(
    blocks: &BTreeMap<String, i64>,
    placed: &BTreeMap<String, Placement>,
) -> String {
    let now = jiff::Timestamp::now().as_second();
    let header = header_of("tg_block").unwrap_or("");
    let mut text = format!("{header}\n");
    let mut id = 0;
    for (key, e) in blocks {
        let tenant = key.split_once("::").map_or(key.as_str(), |(t, _)| t);
        if !placed.contains_key(tenant) || !block_in_force(*e, now) {
            continue;
        }
        id += 1;
        let exp = if *e == 0 { 0 } else { (*e).max(1) };
        text.push_str(&format!("{id}:{}:0:0:{exp}:0\n", escape(key)));
    }
    text
}

/// Every file of the SBC (a full compose: recovery, start), with the blocks.
pub(crate) fn compose_all(
    rows: &BTreeMap<String, TenantRows>,
    placed: &BTreeMap<String, Placement>,
    blocks: &BTreeMap<String, i64>,
) -> Result<Bundle, Vec<String>> {
    let all: Vec<(&String, &TenantRows)> = rows.iter().collect();
    let mut b = Kamailio::compose_placed(&all, placed, None).map_err(|e| vec![e.to_string()])?;
    b.files
        .insert("tg_block".into(), block_file(blocks, placed));
    Ok(Bundle::new(b.files))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(tenant: &str, net: &str, deny_1201: bool) -> CompiledPolicy {
        let mut dest = vec![
            serde_json::json!({"prefix": "", "action": "deny", "rule": "dst:international"}),
            serde_json::json!({"prefix": "1", "action": "allow", "rule": "dst:national"}),
        ];
        if deny_1201 {
            dest.push(
                serde_json::json!({"prefix": "1201", "action": "deny", "rule": "dst:prefix:1201"}),
            );
        }
        serde_json::from_value(serde_json::json!({
            "tenant": tenant,
            "homeCountry": "US",
            "numberingPlan": "test",
            "emergencyNumbers": ["911"],
            "destinations": dest,
            "classes": [],
            "sources": {"networks": [{"cidr": net, "action": "allow", "rule": "src:net"}]},
            "windows": [],
            "limits": [],
            "responses": [],
            "crypto": {"requireTls": false, "requireSrtp": false, "requireClientCertificate": false},
            "rules": []
        }))
        .expect("a policy")
    }

    #[test]
    fn a_batch_places_new_tenants_and_probes_equal_ones_once() {
        let (rows, placed, blocks) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        let cur = Current {
            rows: &rows,
            placed: &placed,
            blocks: &blocks,
        };
        let changes: BTreeMap<String, Change> = [
            ("a", "127.1.0.0/16", false),
            ("b", "127.2.0.0/16", false),
            ("c", "127.3.0.0/16", true),
        ]
        .iter()
        .map(|(t, n, d)| (t.to_string(), Some(("r1".to_string(), policy(t, n, *d)))))
        .collect();
        let p = prepare(cur, &changes, FIRST_ID, jiff::Timestamp::UNIX_EPOCH).expect("prepared");
        // ids in name order from the first free one, one shard each
        let ids: Vec<u64> = p.placed.values().map(|p| p.0).collect();
        assert_eq!(ids, [FIRST_ID, FIRST_ID + 1, FIRST_ID + 2]);
        // a and b differ only by name and network: one of them is probed
        let probed: Vec<&str> = p.probes.iter().map(|(q, _)| q.tenant.as_str()).collect();
        assert_eq!(probed, ["a", "c"]);
        // every candidate is read back, and the shards they are in
        assert_eq!(p.trial_expected.views.len(), 3);
        assert_eq!(p.expected.views.len(), 3);
        assert_eq!(p.expected.shard_items.len(), 3);
        for t in ["a", "b", "c"] {
            assert!(p.live.files.contains_key(&p.placed[t].table()), "{t}");
        }
        // a new tenant's htable entries are set, its key and rev last
        let last: Vec<&str> = p
            .htable_ops
            .iter()
            .rev()
            .take(6)
            .map(|o| o.1.as_str())
            .collect();
        assert!(
            last.iter()
                .all(|k| k.ends_with("::rev") || k.ends_with("::key")),
            "{last:?}"
        );
        // two tenants claiming one network: refused, naming both
        let mut two = changes.clone();
        two.insert(
            "d".into(),
            Some(("r1".into(), policy("d", "127.1.0.0/16", false))),
        );
        let e = prepare(cur, &two, FIRST_ID, jiff::Timestamp::UNIX_EPOCH).expect_err("refused");
        assert!(
            format!("{e:?}").contains("claimed by tenant `a` and by tenant `d`"),
            "{e:?}"
        );
    }

    #[test]
    fn a_change_writes_its_shard_and_sets_only_what_changed() {
        let (blocks, now) = (BTreeMap::new(), jiff::Timestamp::UNIX_EPOCH);
        let first: BTreeMap<String, Change> = ["a", "b"]
            .iter()
            .zip(["127.1.0.0/16", "127.2.0.0/16"])
            .map(|(t, n)| (t.to_string(), Some(("r1".to_string(), policy(t, n, false)))))
            .collect();
        let (e, pe) = (BTreeMap::new(), BTreeMap::new());
        let cur = Current {
            rows: &e,
            placed: &pe,
            blocks: &blocks,
        };
        let p = prepare(cur, &first, FIRST_ID, now).expect("first");
        let placed = p.placed.clone();
        let rows: BTreeMap<String, TenantRows> = p
            .cand
            .into_iter()
            .filter_map(|(t, r)| r.map(|r| (t, r)))
            .collect();
        let cur = Current {
            rows: &rows,
            placed: &placed,
            blocks: &blocks,
        };
        // a's new revision: its shard, its rev, no address reload, b untouched
        let change = BTreeMap::from([(
            "a".to_string(),
            Some(("r2".to_string(), policy("a", "127.1.0.0/16", true))),
        )]);
        let p = prepare(cur, &change, FIRST_ID + 2, now).expect("second");
        assert_eq!(p.placed["a"], placed["a"], "a keeps its id");
        assert!(p.live.files.contains_key(&placed["a"].table()));
        assert!(!p.live.files.contains_key(&placed["b"].table()));
        assert!(!p.live.files.contains_key("address"));
        let keys: Vec<&str> = p.htable_ops.iter().map(|o| o.1.as_str()).collect();
        assert_eq!(keys, ["a::rev"]);
        assert_eq!(p.expected.views.keys().collect::<Vec<_>>(), ["a"]);
        // removing b: its keys deleted, its shard emptied, the address table
        let gone = BTreeMap::from([("b".to_string(), None)]);
        let p = prepare(cur, &gone, FIRST_ID + 2, now).expect("removal");
        assert!(
            p.htable_ops
                .iter()
                .all(|o| o.1.starts_with("b::") && o.2.is_none())
        );
        assert_eq!(p.live.files[&placed["b"].table()].lines().count(), 1);
        assert!(p.live.files.contains_key("address"));
        assert!(p.expected.views["b"].is_empty());
        // removing a tenant that is not there
        let none = BTreeMap::from([("x".to_string(), None)]);
        assert!(matches!(
            prepare(cur, &none, FIRST_ID, now),
            Err(ApplyError::NotFound(_))
        ));
    }
}
