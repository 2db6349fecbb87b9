//! The agents' summaries (`GET /v1/state/summary`), kept a short while and
//! shared by every reconcile that observes the same agent: an operator
//! with thousands of policies on each SBC asks each SBC once per
//! [`Summaries::ttl`], not once per policy.
//!
//! A summary is used only when the agent says its last consistency check
//! found the live SBC as applied; it answers for a tenant only when the
//! agent holds none of it, or holds one of the revisions the reconcile
//! knows (its desired, current and last good ones); anything else is asked
//! of the agent for that tenant (`GET /v1/state?tenant=`, a live read).
//! What this operator changes on an agent (apply, commit, remove, blocks)
//! is written into the kept summary at once; a failed change drops it. A
//! failed fetch is kept as long as a summary (the reconciles waiting on an
//! agent that does not answer fail together, instead of each waiting out
//! its timeout in turn).
//! Per agent it keeps two 64-bit keyed hashes per tenant (tenant, revision
//! label), not the labels.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tollgate_agent_api::StateSummary;
use tollgate_rollout::RevisionRef;

use super::{AgentCallError, MAX_MESSAGE, TenantState, block_key_of, revision_label, truncate};

/// What a kept summary says of one tenant.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The summary answers.
    State(TenantState),
    /// It cannot: ask the agent for the tenant.
    Ask,
}

/// What a fetch of a summary gave.
#[derive(Debug)]
pub enum Fetched {
    /// A summary, and its entity tag if the agent sent one.
    Summary(StateSummary, Option<String>),
    /// 304: unchanged since the copy kept (its tag was sent).
    Unchanged,
    /// The agent has no summary (404/405).
    None,
}

#[derive(Debug, Default)]
struct Slot {
    /// When it was fetched; `None`: never, or dropped.
    at: Option<Instant>,
    /// `None` after a fetch: the agent has no summary (404/405), or the
    /// fetch failed.
    data: Option<Data>,
    /// The fetch failed: every lookup until the next fetch fails alike
    /// (reconciles waiting on an agent that does not answer do not each
    /// wait out its timeout in turn).
    failed: Option<AgentCallError>,
    /// The entity tag of the summary `data` was made from (sent back as
    /// `If-None-Match`: an unchanged summary costs a 304 and no parsing).
    etag: Option<String>,
}

#[derive(Debug)]
struct Data {
    consistent: bool,
    last_error: Option<String>,
    blocks: BTreeMap<String, i64>,
    /// hash(tenant) → hash(revision label)
    tenants: HashMap<u64, u64>,
}

/// The kept summaries, per agent URL.
#[derive(Debug)]
pub struct Summaries {
    ttl: Duration,
    keys: RandomState,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl Summaries {
    /// Summaries kept `ttl` after they were fetched.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            keys: RandomState::new(),
            slots: Mutex::default(),
        }
    }

    /// How long a summary is used.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn key(&self, s: &str) -> u64 {
        self.keys.hash_one(s)
    }

    fn slot(&self, url: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut m = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(m.entry(url.to_owned()).or_default())
    }

    /// What the agent at `url` holds of `tenant`, from its kept summary or
    /// one fetched now with `fetch` (given the kept copy's entity tag; one
    /// fetch at a time per agent, the others wait for it). `known`: the
    /// revisions the caller can name.
    pub async fn lookup<F, Fut>(
        &self,
        url: &str,
        fetch: F,
        tenant: &str,
        known: &[RevisionRef],
    ) -> Result<Lookup, AgentCallError>
    where
        F: FnOnce(Option<String>) -> Fut,
        Fut: Future<Output = Result<Fetched, AgentCallError>>,
    {
        let slot = self.slot(url);
        let mut g = slot.lock().await;
        if g.at.is_none_or(|at| at.elapsed() >= self.ttl) {
            let kept = g.data.as_ref().and(g.etag.clone());
            *g = match fetch(kept).await {
                Ok(Fetched::Unchanged) if g.data.is_some() => Slot {
                    at: Some(Instant::now()),
                    data: g.data.take(),
                    failed: None,
                    etag: g.etag.take(),
                },
                Ok(Fetched::Summary(s, etag)) => Slot {
                    at: Some(Instant::now()),
                    data: Some(Data {
                        consistent: s.consistent,
                        last_error: s.last_error,
                        blocks: s.blocks,
                        tenants: s
                            .tenants
                            .iter()
                            .map(|(t, l)| (self.key(t), self.key(l)))
                            .collect(),
                    }),
                    failed: None,
                    etag,
                },
                // no summary; or "unchanged" with no copy kept, which a
                // fetch without a tag cannot get
                Ok(Fetched::None | Fetched::Unchanged) => Slot {
                    at: Some(Instant::now()),
                    ..Slot::default()
                },
                Err(e) => Slot {
                    at: Some(Instant::now()),
                    failed: Some(e),
                    ..Slot::default()
                },
            };
        }
        if let Some(e) = &g.failed {
            return Err(e.clone());
        }
        let Some(d) = g.data.as_ref().filter(|d| d.consistent) else {
            return Ok(Lookup::Ask);
        };
        let applied = match d.tenants.get(&self.key(tenant)) {
            None => None,
            Some(held) => match known.iter().find(|r| self.key(&revision_label(r)) == *held) {
                Some(r) => Some(r.clone()),
                None => return Ok(Lookup::Ask),
            },
        };
        Ok(Lookup::State(TenantState {
            applied,
            last_error: d.last_error.as_deref().map(|s| truncate(s, MAX_MESSAGE)),
            blocks: d
                .blocks
                .iter()
                .filter(|(k, _)| block_key_of(k, tenant))
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }))
    }

    /// The agent at `url` now holds `revision` of `tenant` (`None`: none).
    pub async fn applied(&self, url: &str, tenant: &str, revision: Option<&RevisionRef>) {
        let slot = self.slot(url);
        let mut g = slot.lock().await;
        if let Some(d) = g.data.as_mut() {
            match revision {
                Some(r) => {
                    d.tenants
                        .insert(self.key(tenant), self.key(&revision_label(r)));
                }
                None => {
                    d.tenants.remove(&self.key(tenant));
                }
            }
        }
    }

    /// The agent at `url` now holds the block `key` until `expires`
    /// (`None`: lifted).
    pub async fn blocked(&self, url: &str, key: &str, expires: Option<i64>) {
        let slot = self.slot(url);
        let mut g = slot.lock().await;
        if let Some(d) = g.data.as_mut() {
            match expires {
                Some(e) => {
                    d.blocks.insert(key.to_owned(), e);
                }
                None => {
                    d.blocks.remove(key);
                }
            }
        }
    }

    /// Forget the agent's summary (a change whose outcome is not known).
    pub async fn forget(&self, url: &str) {
        let slot = self.slot(url);
        *slot.lock().await = Slot::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn rev(n: i64) -> RevisionRef {
        RevisionRef {
            number: n,
            hash: format!("sha256:{}", format!("{n:02}").repeat(32)),
        }
    }

    fn summary(consistent: bool, tenants: &[(&str, &RevisionRef)]) -> StateSummary {
        StateSummary {
            blocks: BTreeMap::from([
                ("acme".to_owned(), 0),
                ("acme::intl".to_owned(), 9),
                ("other".to_owned(), 0),
            ]),
            consistent,
            last_error: Some("e".into()),
            tenants: tenants
                .iter()
                .map(|(t, r)| ((*t).to_owned(), revision_label(r)))
                .collect(),
        }
    }

    async fn look(
        s: &Summaries,
        sum: &StateSummary,
        fetches: &AtomicUsize,
        tenant: &str,
        known: &[RevisionRef],
    ) -> Lookup {
        s.lookup(
            "http://a",
            |_| async {
                fetches.fetch_add(1, Ordering::SeqCst);
                Ok(Fetched::Summary(sum.clone(), None))
            },
            tenant,
            known,
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn answers_only_what_it_can_name_and_fetches_once_per_ttl() {
        let s = Summaries::new(Duration::from_secs(60));
        let n = AtomicUsize::new(0);
        let (r1, r2, r3) = (rev(1), rev(2), rev(3));
        let sum = summary(true, &[("acme", &r2)]);
        // held, and known: answered, with the tenant's blocks only
        let Lookup::State(st) = look(&s, &sum, &n, "acme", &[r3.clone(), r2.clone()]).await else {
            panic!("answered")
        };
        assert_eq!(st.applied, Some(r2.clone()));
        assert_eq!(st.last_error.as_deref(), Some("e"));
        assert_eq!(st.blocks.keys().collect::<Vec<_>>(), ["acme", "acme::intl"]);
        // held, but not a revision the caller knows: ask the agent
        assert_eq!(
            look(&s, &sum, &n, "acme", std::slice::from_ref(&r1)).await,
            Lookup::Ask
        );
        // not held: none
        let Lookup::State(st) = look(&s, &sum, &n, "globex", std::slice::from_ref(&r1)).await
        else {
            panic!("answered")
        };
        assert_eq!(st.applied, None);
        assert_eq!(n.load(Ordering::SeqCst), 1, "one fetch within the ttl");
        // this operator's own changes are written in
        s.applied("http://a", "acme", Some(&r3)).await;
        let Lookup::State(st) = look(&s, &sum, &n, "acme", std::slice::from_ref(&r3)).await else {
            panic!("answered")
        };
        assert_eq!(st.applied, Some(r3.clone()));
        s.applied("http://a", "acme", None).await;
        let Lookup::State(st) = look(&s, &sum, &n, "acme", std::slice::from_ref(&r3)).await else {
            panic!("answered")
        };
        assert_eq!(st.applied, None);
        s.blocked("http://a", "acme::intl", None).await;
        let Lookup::State(st) = look(&s, &sum, &n, "acme", &[]).await else {
            panic!("answered")
        };
        assert_eq!(st.blocks.keys().collect::<Vec<_>>(), ["acme"]);
        assert_eq!(n.load(Ordering::SeqCst), 1);
        // forgotten: fetched again
        s.forget("http://a").await;
        let _ = look(&s, &sum, &n, "acme", &[]).await;
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unchecked_agent_an_old_agent_and_a_failure_are_asked() {
        let n = AtomicUsize::new(0);
        let r = rev(1);
        let s = Summaries::new(Duration::from_secs(60));
        let inconsistent = summary(false, &[("acme", &r)]);
        assert_eq!(
            look(&s, &inconsistent, &n, "acme", std::slice::from_ref(&r)).await,
            Lookup::Ask
        );
        let old = Summaries::new(Duration::from_secs(60));
        let got = old
            .lookup(
                "http://b",
                |_| async { Ok(Fetched::None) },
                "acme",
                std::slice::from_ref(&r),
            )
            .await
            .unwrap();
        assert_eq!(got, Lookup::Ask);
        let failing = Summaries::new(Duration::from_secs(60));
        let n = AtomicUsize::new(0);
        for _ in 0..3 {
            let got = failing
                .lookup(
                    "http://c",
                    |_| async {
                        n.fetch_add(1, Ordering::SeqCst);
                        Err(AgentCallError::Timeout(3))
                    },
                    "acme",
                    std::slice::from_ref(&r),
                )
                .await;
            assert_eq!(got, Err(AgentCallError::Timeout(3)));
        }
        assert_eq!(
            n.load(Ordering::SeqCst),
            1,
            "a failure is kept for the ttl too"
        );
        // forgotten (or the ttl over): fetched again
        failing.forget("http://c").await;
        let got = failing
            .lookup(
                "http://c",
                |_| async { Ok(Fetched::Summary(summary(true, &[]), None)) },
                "acme",
                &[r],
            )
            .await
            .unwrap();
        assert!(matches!(
            got,
            Lookup::State(TenantState { applied: None, .. })
        ));
    }

    #[tokio::test]
    async fn a_zero_ttl_fetches_every_time() {
        let s = Summaries::new(Duration::ZERO);
        let n = AtomicUsize::new(0);
        let sum = summary(true, &[]);
        for _ in 0..3 {
            let _ = look(&s, &sum, &n, "acme", &[]).await;
        }
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_kept_summary_is_revalidated_with_its_tag() {
        let s = Summaries::new(Duration::ZERO);
        let r = rev(1);
        let sum = summary(true, &[("acme", &r)]);
        let tag = sum.etag();
        let sent = Mutex::new(Vec::new());
        let fetch = |answer: Fetched| {
            let sent = &sent;
            move |kept: Option<String>| async move {
                sent.lock().unwrap().push(kept);
                Ok(answer)
            }
        };
        let known = std::slice::from_ref(&r);
        // first: no copy, no tag sent; the answer's tag is kept
        let got = s
            .lookup(
                "http://a",
                fetch(Fetched::Summary(sum.clone(), Some(tag.clone()))),
                "acme",
                known,
            )
            .await
            .unwrap();
        assert!(matches!(
            got,
            Lookup::State(TenantState {
                applied: Some(_),
                ..
            })
        ));
        // then: the tag is sent, 304 keeps the copy (and what this
        // operator wrote into it)
        s.applied("http://a", "globex", Some(&r)).await;
        let got = s
            .lookup("http://a", fetch(Fetched::Unchanged), "globex", known)
            .await
            .unwrap();
        assert!(matches!(
            got,
            Lookup::State(TenantState {
                applied: Some(_),
                ..
            })
        ));
        assert_eq!(*sent.lock().unwrap(), [None, Some(tag.clone())]);
        // a changed summary replaces it
        let other = summary(true, &[]);
        let got = s
            .lookup(
                "http://a",
                fetch(Fetched::Summary(other.clone(), Some(other.etag()))),
                "acme",
                known,
            )
            .await
            .unwrap();
        assert!(matches!(
            got,
            Lookup::State(TenantState { applied: None, .. })
        ));
        // forgotten: no tag sent, and a 304 then (which a fetch without a
        // tag cannot get) keeps nothing
        s.forget("http://a").await;
        let got = s
            .lookup("http://a", fetch(Fetched::Unchanged), "acme", known)
            .await
            .unwrap();
        assert_eq!(got, Lookup::Ask);
        assert_eq!(sent.lock().unwrap().last(), Some(&None));
        // the tag follows the content
        assert_ne!(sum.etag(), other.etag());
        assert_eq!(sum.etag(), sum.clone().etag());
        assert!(
            tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34,
            "{tag}"
        );
    }
}
