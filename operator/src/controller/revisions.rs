//! PolicyRevisions: content hash, name, number and history bound (pure), and
//! the API calls that keep them (`ensure`, `prune`, `delete_all`).
//!
//! A revision is named after its content (`<policy>-<first 10 hex of the
//! hash>`), so the same content always maps to the same object. Its number
//! is reused when the content comes back (a revert gets its old number,
//! which the rollout machine treats as a revert to known-good), otherwise it
//! is one more than every number seen so far.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Resource, ResourceExt};
use tollgate_crds::{PolicyRevision, PolicyRevisionSpec, TollPolicy};
use tollgate_ir::CompiledPolicy;

use tollgate_rollout::RevisionRef;

pub use tollgate_crds::policy_revision::{POLICY_LABEL, label_value};
/// Revisions kept per policy (the current and the last good one are kept
/// beyond this).
pub const HISTORY_LIMIT: usize = 10;
/// Longest Kubernetes object name (DNS subdomain).
const MAX_NAME: usize = 253;

/// `sha256:` + hex SHA-256 of the policy's canonical JSON (serde_json of the
/// IR: struct fields in declaration order, no maps, so deterministic); the
/// same hash a chunked policy's `spec.parts.hash` states.
pub fn policy_hash(policy: &CompiledPolicy) -> String {
    tollgate_ir::chunks::content_hash(policy)
}

/// `<policy-name>-<first 10 hex of the hash>`, the policy-name part cut so
/// the whole stays a valid DNS subdomain of at most 253 characters.
pub fn revision_name(policy_name: &str, hash: &str) -> String {
    let hex: String = hash
        .strip_prefix("sha256:")
        .unwrap_or(hash)
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(10)
        .collect::<String>()
        .to_ascii_lowercase();
    let room = MAX_NAME - 1 - hex.len();
    let mut base: String = policy_name.chars().take(room).collect();
    // A cut may leave a trailing '.' or '-', which a DNS subdomain cannot
    // have before the '-' we add (`a.-b` is invalid).
    while base.ends_with(['.', '-']) {
        base.pop();
    }
    if base.is_empty() {
        base.push('p');
    }
    format!("{base}-{hex}")
}

/// The number a revision with `hash` gets, given the existing revisions of
/// the policy (number, hash) and `status.currentRevision`: the existing
/// number for the same content, else one more than every number seen.
pub fn revision_number(existing: &[(i64, String)], hash: &str, current: Option<i64>) -> i64 {
    if let Some((n, _)) = existing.iter().find(|(_, h)| h == hash) {
        return *n;
    }
    let max = existing.iter().map(|(n, _)| *n).max().unwrap_or(0);
    max.max(current.unwrap_or(0)).saturating_add(1)
}

/// The revisions to delete to keep the newest [`HISTORY_LIMIT`]: the oldest
/// by number beyond the limit, never one in `keep` (current, last good).
/// Input: (name, number).
pub fn to_prune(existing: &[(String, i64)], keep: &[i64]) -> Vec<String> {
    let mut sorted: Vec<&(String, i64)> = existing.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted
        .into_iter()
        .skip(HISTORY_LIMIT)
        .filter(|(_, n)| !keep.contains(n))
        .map(|(name, _)| name.clone())
        .collect()
}

/// The PolicyRevision object for `policy` at `number` (`hash`: its
/// assembled content's). A chunked policy's revision names the same chunks.
pub fn build(policy: &TollPolicy, hash: &str, number: i64) -> PolicyRevision {
    let name = policy.name_any();
    let mut labels = BTreeMap::new();
    labels.insert(POLICY_LABEL.to_owned(), label_value(&name));
    let owner = OwnerReference {
        api_version: TollPolicy::api_version(&()).into_owned(),
        kind: TollPolicy::kind(&()).into_owned(),
        name: name.clone(),
        uid: policy.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    PolicyRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&name, hash)),
            namespace: policy.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: PolicyRevisionSpec {
            policy_name: name,
            tenant: policy.spec.tenant.clone(),
            hash: hash.to_owned(),
            revision: number,
            policy: policy.spec.policy.clone(),
            parts: policy.spec.parts.clone(),
            created_from: policy.metadata.generation.unwrap_or(1).max(1),
        },
    }
}

/// The revisions of `policy_name` in the namespace of `api`.
pub async fn list(
    api: &Api<PolicyRevision>,
    policy_name: &str,
) -> Result<Vec<PolicyRevision>, kube::Error> {
    let lp = ListParams::default().labels(&format!("{POLICY_LABEL}={}", label_value(policy_name)));
    let list = api.list(&lp).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|r| r.spec.policy_name == policy_name)
        .collect())
}

/// Makes sure the PolicyRevision of the policy's current content (whose
/// hash is `hash`) exists and returns its reference; prunes the history
/// beyond [`HISTORY_LIMIT`] (keeping `keep`).
pub async fn ensure(
    api: &Api<PolicyRevision>,
    policy: &TollPolicy,
    hash: &str,
    keep: &[i64],
) -> Result<RevisionRef, kube::Error> {
    let name = policy.name_any();
    let hash = hash.to_owned();
    let existing = list(api, &name).await?;
    let pairs: Vec<(i64, String)> = existing
        .iter()
        .map(|r| (r.spec.revision, r.spec.hash.clone()))
        .collect();
    let current = policy.status.as_ref().and_then(|s| s.current_revision);
    let number = revision_number(&pairs, &hash, current);
    let rev = RevisionRef {
        number,
        hash: hash.clone(),
    };
    if !existing.iter().any(|r| r.spec.hash == hash) {
        let obj = build(policy, &hash, number);
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            // Created by a previous reconcile that did not see it in its list
            // (or by a racing operator): the content hash names it, so the
            // object is this content; take its number.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let got = api.get(&revision_name(&name, &hash)).await?;
                return Ok(RevisionRef {
                    number: got.spec.revision,
                    hash,
                });
            }
            Err(e) => return Err(e),
        }
    }
    let mut keep_all = keep.to_vec();
    keep_all.push(number);
    let named: Vec<(String, i64)> = existing
        .iter()
        .map(|r| (r.name_any(), r.spec.revision))
        .chain(std::iter::once((revision_name(&name, &hash), number)))
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect();
    for victim in to_prune(&named, &keep_all) {
        delete(api, &victim).await?;
    }
    Ok(rev)
}

/// Deletes one revision (already gone is fine).
async fn delete(api: &Api<PolicyRevision>, name: &str) -> Result<(), kube::Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes every revision of the policy (the finalizer's cleanup: the
/// testbed has no garbage collector to follow the owner references).
pub async fn delete_all(api: &Api<PolicyRevision>, policy_name: &str) -> Result<(), kube::Error> {
    for r in list(api, policy_name).await? {
        delete(api, &r.name_any()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use tollgate_testkit::fake_agent::sample_policy;

    #[test]
    fn hash_is_sha256_of_canonical_json_and_stable() {
        let p = sample_policy("acme", 0);
        let h = policy_hash(&p);
        assert!(h.starts_with("sha256:"));
        assert_eq!(h.len(), 71);
        assert!(
            h[7..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(h, policy_hash(&p.clone()));
        let expect = Sha256::digest(serde_json::to_vec(&p).unwrap());
        let hex: String = expect.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(h, format!("sha256:{hex}"));
        // different content, different hash
        let q = sample_policy("acme", 1);
        assert_ne!(h, policy_hash(&q));
    }

    #[test]
    fn names_are_content_hashed_and_valid() {
        let h = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(revision_name("acme", &h), "acme-ababababab");
        let long = "a".repeat(300);
        let n = revision_name(&long, &h);
        assert_eq!(n.len(), 253);
        assert!(n.ends_with("-ababababab"));
        // a cut that would end in '.' or '-'
        let tricky = format!("{}.b", "a".repeat(241));
        let n = revision_name(&tricky, &h);
        assert!(n.len() <= 253);
        assert!(!n.contains(".-"), "{n}");
        assert_eq!(label_value(&"ab-".repeat(30)).len(), 62);
    }

    #[test]
    fn numbers_reuse_and_count_up() {
        let e = vec![(1, "sha256:a".to_owned()), (2, "sha256:b".to_owned())];
        assert_eq!(revision_number(&e, "sha256:a", Some(2)), 1, "revert reuses");
        assert_eq!(revision_number(&e, "sha256:c", Some(2)), 3);
        assert_eq!(revision_number(&e, "sha256:c", Some(7)), 8, "above current");
        assert_eq!(revision_number(&[], "sha256:c", None), 1);
    }

    #[test]
    fn prune_keeps_newest_ten_and_current_and_last_good() {
        let e: Vec<(String, i64)> = (1..=14).map(|n| (format!("r{n}"), n)).collect();
        let mut p = to_prune(&e, &[2]);
        p.sort();
        assert_eq!(p, vec!["r1", "r3", "r4"]);
        assert!(to_prune(&e[..10], &[]).is_empty());
    }
}
