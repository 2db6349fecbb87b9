//! Kamailio JSON-RPC over HTTP (`POST http://IP:PORT/RPC`, JSON-RPC 2.0),
//! and the canonical view of what a running Kamailio holds.

use super::rows::{Depth, Expected, HTABLES, LIST_MAX, tenant_of_key};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::net::TcpStream;
use tollgate_kamailio::kamailio::{ID_DIGITS, Placement, shard_tree};
use tollgate_plumbing::metrics::prometheus_client::metrics::counter::Counter;

/// Why a JSON-RPC call to Kamailio (or the RPC URL) failed. The messages are
/// the ones the agent answered and logged before this type.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The RPC URL is not `http://…`.
    #[error("RPC URL `{0}` must start with http://")]
    UrlScheme(String),
    /// The RPC URL has no port.
    #[error("RPC URL `{0}` needs a port")]
    UrlPort(String),
    /// No answer within the timeout.
    #[error("{method}: no answer within {timeout:?}")]
    Timeout {
        /// The method called.
        method: String,
        /// The timeout.
        timeout: Duration,
    },
    /// Kamailio's RPC port does not accept the connection.
    #[error("connect {authority}: {source}")]
    Connect {
        /// `host:port`.
        authority: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP/1 handshake failed.
    #[error("http handshake: {0}")]
    Handshake(#[source] hyper::Error),
    /// The HTTP request cannot be built.
    #[error("{0}")]
    BuildRequest(#[source] hyper::http::Error),
    /// The HTTP request failed.
    #[error("http request: {0}")]
    Request(#[source] hyper::Error),
    /// The HTTP answer's body cannot be read.
    #[error("http body: {0}")]
    Body(#[source] hyper::Error),
    /// An HTTP error status without a JSON-RPC body.
    #[error("http status {0}")]
    Status(hyper::StatusCode),
    /// The answer is not JSON.
    #[error("{method}: unreadable answer: {source}")]
    Unreadable {
        /// The method called.
        method: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A JSON-RPC error answer.
    #[error("{method}: {code} {message}")]
    Fault {
        /// The method called.
        method: String,
        /// The JSON-RPC error code (0 if absent).
        code: i64,
        /// The JSON-RPC error message (`error` if absent).
        message: String,
    },
    /// mtree's error answer when no tree is loaded at all (an empty policy
    /// set), told apart from other [`RpcError::Fault`]s.
    #[error("{method}: {code} {message}")]
    EmptyTreeList {
        /// The method called.
        method: String,
        /// The JSON-RPC error code.
        code: i64,
        /// The JSON-RPC error message (`Empty tree list…`).
        message: String,
    },
    /// A table's reload failed.
    #[error("reload {table}: {source}")]
    Reload {
        /// The bundle file.
        table: String,
        /// Why.
        source: Box<RpcError>,
    },
    /// A reload task panicked or was cancelled.
    #[error("reload task: {0}")]
    ReloadTask(#[source] tokio::task::JoinError),
    /// A call of [`Rpc::many_each`] that was not made (its task failed).
    #[error("not called")]
    NotCalled,
}

impl RpcError {
    /// The error of a JSON-RPC error answer: mtree's `Empty tree list`
    /// (Kamailio tells it only by its message) is [`RpcError::EmptyTreeList`].
    fn fault(method: &str, code: i64, message: &str) -> RpcError {
        let (method, message) = (method.to_string(), message.to_string());
        if message.contains("Empty tree list") {
            RpcError::EmptyTreeList {
                method,
                code,
                message,
            }
        } else {
            RpcError::Fault {
                method,
                code,
                message,
            }
        }
    }
}

/// The wall-clock second of one Kamailio's last `permissions.addressReload`:
/// Kamailio refuses a second one within the same second (reload_delta = 1).
#[derive(Debug, Default)]
pub struct AddressSlot(std::sync::Mutex<u64>);

impl AddressSlot {
    /// Sleeps until the wall clock is past the second of the last address
    /// reload (Kamailio compares whole seconds), then records this one.
    pub async fn wait(&self) {
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
        };
        let last = self.0.lock().map_or(0, |g| *g);
        let n = now();
        if n.as_secs() <= last {
            let wait = Duration::from_secs(last + 1)
                .saturating_sub(n)
                .saturating_add(Duration::from_millis(20));
            tokio::time::sleep(wait).await;
        }
        if let Ok(mut g) = self.0.lock() {
            *g = now().as_secs();
        }
    }
}

/// Calls [`Rpc::many`] keeps in flight (Kamailio's RPC runs on its TCP
/// workers: `tcp_children` in the cfg).
pub const PARALLEL: usize = 4;

/// A JSON-RPC endpoint of one Kamailio.
#[derive(Clone, Debug)]
pub struct Rpc {
    /// `host:port`
    pub authority: String,
    pub path: String,
    pub timeout: Duration,
}

impl Rpc {
    /// From `http://HOST:PORT/PATH`.
    pub fn from_url(url: &str, timeout: Duration) -> Result<Rpc, RpcError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| RpcError::UrlScheme(url.to_string()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/RPC"),
        };
        if !authority.contains(':') {
            return Err(RpcError::UrlPort(url.to_string()));
        }
        Ok(Rpc {
            authority: authority.to_string(),
            path: path.to_string(),
            timeout,
        })
    }

    /// Calls `method` with string parameters; the `result` or the error.
    pub async fn call(&self, method: &str, params: &[&str]) -> Result<Value, RpcError> {
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let fut = self.post(body.to_string());
        let raw = tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| RpcError::Timeout {
                method: method.to_string(),
                timeout: self.timeout,
            })??;
        let v: Value = serde_json::from_slice(&raw).map_err(|source| RpcError::Unreadable {
            method: method.to_string(),
            source,
        })?;
        if let Some(err) = v.get("error") {
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("error");
            let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
            return Err(RpcError::fault(method, code, msg));
        }
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    }

    async fn post(&self, body: String) -> Result<Bytes, RpcError> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|source| RpcError::Connect {
                authority: self.authority.clone(),
                source,
            })?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(RpcError::Handshake)?;
        let conn = tokio::spawn(conn);
        let req = hyper::Request::post(&self.path)
            .header("host", &self.authority)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(RpcError::BuildRequest)?;
        let resp = send.send_request(req).await.map_err(RpcError::Request)?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(RpcError::Body)?
            .to_bytes();
        conn.abort();
        // jsonrpcs answers a JSON-RPC error with HTTP 500 and the error body
        if !status.is_success() && !bytes.starts_with(b"{") {
            return Err(RpcError::Status(status));
        }
        Ok(bytes)
    }

    /// Every `(key, value)` of an htable, from `htable.dump` (which groups them in slots).
    pub async fn htable_entries(&self, table: &str) -> Result<Vec<(String, Value)>, RpcError> {
        let v = self.call("htable.dump", &[table]).await?;
        let mut out = Vec::new();
        for slot in v.as_array().into_iter().flatten() {
            for kv in slot
                .get("slot")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let key = kv
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                out.push((key, kv.get("value").cloned().unwrap_or(Value::Null)));
            }
        }
        Ok(out)
    }

    pub async fn reload(&self, method: &str, params: &[String]) -> Result<(), RpcError> {
        let p: Vec<&str> = params.iter().map(String::as_str).collect();
        // permissions.addressReload is rate limited (reload_delta = 1 s)
        let mut attempt = 0;
        loop {
            match self.call(method, &p).await {
                Ok(_) => return Ok(()),
                Err(e) if method != "permissions.addressReload" || attempt == 2 => return Err(e),
                Err(_) => attempt += 1,
            }
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
    }

    /// Reloads `tables` (bundle file names; those without a reload command
    /// are skipped): the address table first (rate limited, it waits for
    /// its slot), then the others at once: different modules, one reload per
    /// table (concurrent reloads of ONE table are what can crash Kamailio),
    /// so a big `mtree.reload` does not delay the htables. Returns the tables
    /// reloaded; counts reloads and failures into `metrics` if given.
    pub async fn reload_tables(
        &self,
        tables: &[String],
        slot: &AddressSlot,
        metrics: Option<&crate::metrics::Metrics>,
    ) -> Result<Vec<String>, RpcError> {
        let count = |c: fn(&crate::metrics::Metrics) -> &Counter| {
            if let Some(m) = metrics {
                c(m).inc();
            }
        };
        let mut reloaded = Vec::new();
        let mut set = tokio::task::JoinSet::new();
        let mut first_err = None;
        for table in tables {
            let Some((method, params)) = tollgate_kamailio::kamailio::reload_command(table) else {
                continue;
            };
            count(|m| &m.reloads);
            reloaded.push(table.clone());
            if method == "permissions.addressReload" {
                slot.wait().await;
                if let Err(e) = self.reload(method, &params).await {
                    count(|m| &m.reload_failures);
                    return Err(RpcError::Reload {
                        table: table.clone(),
                        source: Box::new(e),
                    });
                }
                continue;
            }
            // a repair reloads every shard: a few at a time
            while set.len() >= PARALLEL {
                if let Some(r) = set.join_next().await {
                    let r = r.map_err(RpcError::ReloadTask).and_then(|x| x);
                    if let Err(e) = r {
                        count(|m| &m.reload_failures);
                        first_err.get_or_insert(e);
                    }
                }
            }
            let rpc = self.clone();
            let table = table.clone();
            set.spawn(async move {
                rpc.reload(method, &params)
                    .await
                    .map_err(|e| RpcError::Reload {
                        table,
                        source: Box::new(e),
                    })
            });
        }
        while let Some(r) = set.join_next().await {
            let r = r.map_err(RpcError::ReloadTask).and_then(|x| x);
            if let Err(e) = r {
                count(|m| &m.reload_failures);
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(reloaded),
        }
    }

    /// Sets (`Some(value)`) and deletes (`None`) htable entries, up to
    /// [`PARALLEL`] at a time: a tenant's change touches its own keys only.
    /// Deleting a key Kamailio does not hold is not an error.
    pub async fn htable_ops(
        &self,
        ops: &[(String, String, Option<String>)],
    ) -> Result<usize, RpcError> {
        let calls = ops
            .iter()
            .map(|(table, key, v)| match v {
                Some(v) => ("htable.sets", vec![table.clone(), key.clone(), v.clone()]),
                None => ("htable.delete", vec![table.clone(), key.clone()]),
            })
            .collect();
        for (op, r) in ops.iter().zip(self.many_each(calls).await) {
            match r {
                Ok(_) => {}
                Err(RpcError::Fault { .. }) if op.2.is_none() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ops.len())
    }

    /// Many calls, up to [`PARALLEL`] in flight; each call's result, in
    /// the order of `calls`.
    pub async fn many_each(
        &self,
        calls: Vec<(&'static str, Vec<String>)>,
    ) -> Vec<Result<Value, RpcError>> {
        let mut set = tokio::task::JoinSet::new();
        let mut out: Vec<Result<Value, RpcError>> =
            (0..calls.len()).map(|_| Err(RpcError::NotCalled)).collect();
        let mut it = calls.into_iter().enumerate();
        loop {
            while set.len() < PARALLEL {
                let Some((i, (method, params))) = it.next() else {
                    break;
                };
                let rpc = self.clone();
                set.spawn(async move {
                    let p: Vec<&str> = params.iter().map(String::as_str).collect();
                    (i, rpc.call(method, &p).await)
                });
            }
            let Some(r) = set.join_next().await else {
                break;
            };
            if let Ok((i, v)) = r {
                out[i] = v;
            }
        }
        out
    }

    /// [`Rpc::many_each`], or the first error.
    pub async fn many(
        &self,
        calls: Vec<(&'static str, Vec<String>)>,
    ) -> Result<Vec<Value>, RpcError> {
        self.many_each(calls).await.into_iter().collect()
    }

    /// What Kamailio holds for the tenants of `expect`, as canonical views
    /// keyed by tenant (see `rows::canonical_rows`), and the rows each
    /// shard of `expect.shard_items` holds. A full read (`expect.full`)
    /// dumps everything and reports every tenant found; otherwise only the
    /// tenants of `expect` are read, at a cost that follows their data, not
    /// the SBC's: the address table is dumped (networks are few), the
    /// views' tree prefixes are looked up one by one (`rows::LIVE_SAMPLE`
    /// per tree; a full view lists shards of at most `LIST_MAX` rows), and
    /// htable entries are read key by key.
    pub async fn live_view(&self, expect: &Expected) -> Result<LiveView, RpcError> {
        let mut out = LiveView::default();
        let scope = |t: &str| expect.full || expect.placed.contains_key(t);
        // sources: subnets and single addresses (every network of the SBC)
        let dumps: &[&str] = if expect.address {
            &["permissions.subnetDump", "permissions.addressDump"]
        } else {
            &[]
        };
        for method in dumps {
            let v = self.call(method, &[]).await?;
            for item in v.as_array().into_iter().flatten() {
                for (grp, e) in address_entries(item) {
                    let tag = e.get("tag").and_then(Value::as_str).unwrap_or("");
                    let ip = e.get("ip").and_then(Value::as_str).unwrap_or("?");
                    let mask = e.get("mask").and_then(Value::as_i64).unwrap_or(-1);
                    let port = e.get("port").and_then(Value::as_i64).unwrap_or(-1);
                    let t = tag.split('|').next().unwrap_or("");
                    if scope(t) {
                        out.add(t, format!("address\t{grp}/{ip}/{mask}/{port}\t{tag}"));
                    }
                }
            }
        }
        // trees: the shards' sizes, then each shard looked at
        // every tree's size (a full read), or those of the shards looked at
        let summaries: Vec<Value> = if expect.full {
            match self.call("mtree.summary", &[]).await {
                Ok(v) => vec![v],
                Err(RpcError::EmptyTreeList { .. }) => vec![],
                Err(e) => return Err(e),
            }
        } else {
            let shards: BTreeSet<u32> = expect.placed.values().map(|p| p.shard()).collect();
            let calls = shards
                .iter()
                .map(|s| ("mtree.summary", vec![shard_tree(*s)]))
                .collect();
            self.many(calls).await?
        };
        let mut held: BTreeMap<u32, usize> = BTreeMap::new();
        for tree in summaries
            .iter()
            .flat_map(|v| v.as_array().into_iter().flatten())
        {
            let Some(name) = tree.get("table").and_then(Value::as_str) else {
                continue;
            };
            let Some(shard) = name
                .strip_prefix("tollgate-shard-")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let items = tree
                .get("item")
                .and_then(|i| i.get("nritems"))
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize;
            held.insert(shard, items);
        }
        // id → tenant, per shard, of the tenants looked at
        let mut shards: BTreeMap<u32, BTreeMap<String, (&String, Placement)>> = BTreeMap::new();
        for (t, p) in &expect.placed {
            shards
                .entry(p.shard())
                .or_default()
                .insert(p.0.to_string(), (t, *p));
        }
        if expect.full {
            for (s, n) in &held {
                if *n > 0 {
                    shards.entry(*s).or_default();
                }
            }
        }
        // the shards a full view lists, fetched a few at a time
        let listed: Vec<u32> = shards
            .keys()
            .filter(|s| {
                let items = held.get(s).copied().unwrap_or(0);
                items > 0 && items <= LIST_MAX && expect.depth == Depth::Full
            })
            .copied()
            .collect();
        let calls = listed
            .iter()
            .map(|s| ("mtree.list", vec![shard_tree(*s)]))
            .collect();
        let mut lists: BTreeMap<u32, Value> = BTreeMap::new();
        for (s, v) in listed.iter().zip(self.many_each(calls).await) {
            lists.insert(*s, v?);
        }
        for (shard, tenants) in &shards {
            let items = held.get(shard).copied().unwrap_or(0);
            out.shard_items.insert(*shard, items);
            if items == 0 {
                continue;
            }
            let tree = shard_tree(*shard);
            // a full view lists a small shard (every entry); a live view
            // looks its prefixes up one by one (listing costs every row of
            // the shard, and more per row the bigger the shard: 7.6 us a
            // row at 1,317 rows, 15 us at 9,220)
            if let Some(list) = lists.get(shard) {
                for e in list.as_array().into_iter().flatten() {
                    let key = e.get("tprefix").and_then(Value::as_str).unwrap_or("");
                    let (id, _) = key.split_at(ID_DIGITS.min(key.len()));
                    let Some((t, p)) = tenants.get(id) else {
                        if expect.full {
                            out.add(&format!("?{id}"), format!("{tree}\t{key}\t?"));
                        }
                        continue;
                    };
                    let Some((ltree, prefix)) = p.logical(t, key) else {
                        out.add(t, format!("{tree}\t{key}\t?"));
                        continue;
                    };
                    // a big tree's view is its sample
                    let sampled = expect.sampled.get(*t).is_some_and(|s| s.contains(&ltree));
                    if sampled
                        && expect.prefixes[*t]
                            .get(&ltree)
                            .is_none_or(|ps| ps.binary_search(&prefix).is_err())
                    {
                        continue;
                    }
                    let values: Vec<&str> = match e.get("tvalue") {
                        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                        Some(Value::String(s)) => vec![s.as_str()],
                        _ => vec![],
                    };
                    for v in values {
                        out.add(t, format!("{ltree}\t{prefix}\t{v}"));
                    }
                }
            } else {
                for (t, p) in tenants.values() {
                    let mut calls = Vec::new();
                    let mut asked = Vec::new();
                    for (ltree, prefixes) in expect.prefixes.get(*t).into_iter().flatten() {
                        for prefix in prefixes {
                            if let Some(key) = p.key(ltree, prefix) {
                                calls.push(("mtree.match", vec![tree.clone(), key, "0".into()]));
                                asked.push(ltree.clone());
                            }
                        }
                    }
                    for (ltree, m) in asked.iter().zip(self.many_each(calls).await) {
                        let m = match m {
                            Ok(m) => m,
                            // not found: nothing held there
                            Err(RpcError::Fault { code: 404, .. }) => continue,
                            Err(e) => return Err(e),
                        };
                        let got = m.get("PREFIX").and_then(Value::as_str).unwrap_or("");
                        let v = m.get("TVALUE").and_then(Value::as_str).unwrap_or("");
                        let prefix = p
                            .logical(t, got)
                            .filter(|(lt, _)| lt == ltree)
                            .map_or_else(|| format!("?{got}"), |(_, pre)| pre);
                        out.add(t, format!("{ltree}\t{prefix}\t{v}"));
                    }
                }
            }
        }
        // htables
        if expect.full {
            for table in HTABLES {
                for (key, value) in self.htable_entries(table).await? {
                    let t = tenant_of_key(&key).unwrap_or("");
                    out.add(t, format!("{table}\t{key}\t{}", text_of(value)));
                }
            }
        } else {
            let mut calls = Vec::new();
            let mut asked = Vec::new();
            for (t, keys) in &expect.keys {
                for (table, key) in keys {
                    calls.push(("htable.get", vec![table.clone(), key.clone()]));
                    asked.push((t, table, key));
                }
            }
            for ((t, table, key), v) in asked.into_iter().zip(self.many_each(calls).await) {
                match v {
                    Ok(v) => {
                        let value = v.get("item").and_then(|i| i.get("value")).cloned();
                        out.add(
                            t,
                            format!("{table}\t{key}\t{}", text_of(value.unwrap_or(Value::Null))),
                        );
                    }
                    // htable.get of a missing key: not held
                    Err(RpcError::Fault { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }
}

/// What a Kamailio holds, read by [`Rpc::live_view`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveView {
    /// tenant → its canonical view (`?<id>`: rows under an id no tenant
    /// looked at has, in a full read).
    pub views: BTreeMap<String, BTreeSet<String>>,
    /// shard → the rows it holds (the shards looked at).
    pub shard_items: BTreeMap<u32, usize>,
}

impl LiveView {
    fn add(&mut self, tenant: &str, e: String) {
        self.views.entry(tenant.to_string()).or_default().insert(e);
    }
}

/// An htable value as text (numbers as digits, nothing as empty).
fn text_of(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// `(group, {ip, mask, port, tag})` from one item of `permissions.subnetDump`
/// (`{id, group, item: {...}}`) or `permissions.addressDump` (`{table, ...}`
/// with `item`s of `{group, ip, port, tag}` or similar). Lenient: every object
/// with an `ip` found under the item counts.
fn address_entries(item: &Value) -> Vec<(i64, Value)> {
    let mut out = Vec::new();
    fn walk(v: &Value, grp: i64, out: &mut Vec<(i64, Value)>) {
        match v {
            Value::Object(m) => {
                let g = m
                    .get("group")
                    .or_else(|| m.get("grp"))
                    .and_then(Value::as_i64)
                    .unwrap_or(grp);
                if m.contains_key("ip") {
                    let mut e = v.clone();
                    if e.get("mask").is_none()
                        && let Some(o) = e.as_object_mut()
                    {
                        let ip = o.get("ip").and_then(Value::as_str).unwrap_or("");
                        let bits = if ip.contains(':') { 128 } else { 32 };
                        o.insert("mask".into(), json!(bits));
                    }
                    out.push((g, e));
                } else {
                    for x in m.values() {
                        walk(x, g, out);
                    }
                }
            }
            Value::Array(a) => {
                for x in a {
                    walk(x, grp, out);
                }
            }
            _ => {}
        }
    }
    walk(item, -1, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url() {
        let r = Rpc::from_url("http://127.0.0.1:5061/RPC", Duration::from_secs(1)).unwrap();
        assert_eq!(r.authority, "127.0.0.1:5061");
        assert_eq!(r.path, "/RPC");
        let e = Rpc::from_url("https://x:1/", Duration::from_secs(1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "RPC URL `https://x:1/` must start with http://"
        );
        let e = Rpc::from_url("http://x/RPC", Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.to_string(), "RPC URL `http://x/RPC` needs a port");
        // mtree's answer when no tree is loaded is told apart, same text
        let e = RpcError::fault("mtree.summary", 500, "Empty tree list.");
        assert!(matches!(e, RpcError::EmptyTreeList { .. }));
        assert_eq!(e.to_string(), "mtree.summary: 500 Empty tree list.");
        let e = RpcError::fault("mtree.list", 500, "Tree not found");
        assert!(matches!(e, RpcError::Fault { .. }));
    }

    #[test]
    fn subnet_dump_items() {
        let v: Value = serde_json::from_str(
            r#"{"id":0,"group":105,"item":{"ip":"127.10.9.0","mask":24,"port":0,"tag":"acme|deny|r|"}}"#,
        )
        .unwrap();
        let e = address_entries(&v);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, 105);
        assert_eq!(e[0].1["mask"], 24);
    }
}
