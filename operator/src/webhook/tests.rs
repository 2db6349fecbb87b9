use super::{MAX_BODY, Receiver};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use hyper::{Request, StatusCode};
use serde_json::{Value, json};
use std::pin::Pin;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use tollgate_alerts::fixtures::{BREACH, alert, payload};
use tollgate_alerts::*;

const TOKEN: &str = "0123456789abcdef0123";

#[derive(Debug, Default)]
struct Record {
    actions: StdMutex<Vec<AlertAction>>,
    fail: std::sync::atomic::AtomicBool,
}

impl AlertSink for Record {
    type Error = std::io::Error;

    async fn act(&self, action: AlertAction) -> Result<(), std::io::Error> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("sink down"));
        }
        self.actions.lock().unwrap().push(action);
        Ok(())
    }
}

fn rx() -> Receiver<Record> {
    Receiver::new(Record::default(), TOKEN.as_bytes().to_vec())
}

fn req(method: &str, path: &str, auth: Option<&str>, body: Vec<u8>) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Full::new(Bytes::from(body))).unwrap()
}

fn post(v: &Value) -> Request<Full<Bytes>> {
    req(
        "POST",
        "/alerts",
        Some(&format!("Bearer {TOKEN}")),
        serde_json::to_vec(v).unwrap(),
    )
}

async fn answer(r: hyper::Response<Full<Bytes>>) -> (StatusCode, Value) {
    let s = r.status();
    let b = r.into_body().collect().await.unwrap().to_bytes();
    (s, serde_json::from_slice(&b).unwrap())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// A body that arrives in chunks, without a length.
struct Chunks(Vec<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.0.is_empty() {
            Poll::Ready(None)
        } else {
            let c = self.0.remove(0);
            Poll::Ready(Some(Ok(Frame::data(c))))
        }
    }
}

#[test]
fn rejections() {
    rt().block_on(async {
        let rx = rx();
        let good = serde_json::to_vec(&payload(vec![alert("firing", "f1", BREACH)])).unwrap();
        // no token, wrong token, wrong scheme: 401 and nothing else
        for auth in [
            None,
            Some("Bearer wrong-token-wrong-token"),
            Some(&*format!("Basic {TOKEN}")),
            Some(&*format!("Bearer {TOKEN}x")),
        ] {
            let (s, v) = answer(rx.handle(req("POST", "/alerts", auth, good.clone())).await).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
            assert_eq!(v, json!({"error": "unauthorized"}));
        }
        // unauthenticated requests learn nothing about paths or methods
        let (s, _) = answer(rx.handle(req("GET", "/nope", None, vec![])).await).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let auth = format!("Bearer {TOKEN}");
        for m in ["GET", "PUT", "DELETE", "PATCH"] {
            let (s, _) = answer(
                rx.handle(req(m, "/alerts", Some(&auth), good.clone()))
                    .await,
            )
            .await;
            assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{m}");
        }
        let (s, _) = answer(
            rx.handle(req("POST", "/other", Some(&auth), good.clone()))
                .await,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // 413 by Content-Length (the body is not read)
        let mut r = req("POST", "/alerts", Some(&auth), vec![]);
        r.headers_mut().insert(
            "content-length",
            (MAX_BODY + 1).to_string().parse().unwrap(),
        );
        let (s, _) = answer(rx.handle(r).await).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        // 413 while reading a body without a length
        let chunk = Bytes::from(vec![b' '; 64 << 10]);
        let big = Chunks(vec![chunk; MAX_BODY / (64 << 10) + 1]);
        let r = Request::builder()
            .method("POST")
            .uri("/alerts")
            .header("authorization", &auth)
            .body(big)
            .unwrap();
        let (s, _) = answer(rx.handle(r).await).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        // exactly the limit is read (and is then not JSON)
        let r = Request::builder()
            .method("POST")
            .uri("/alerts")
            .header("authorization", &auth)
            .body(Chunks(vec![Bytes::from(vec![b'x'; MAX_BODY])]))
            .unwrap();
        let (s, _) = answer(rx.handle(r).await).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // garbage, wrong shapes, wrong versions, bad statuses: 400
        let mut v3 = payload(vec![alert("firing", "f1", BREACH)]);
        v3["version"] = json!("3");
        let mut vnum = v3.clone();
        vnum["version"] = json!(4);
        let mut no_alerts = payload(vec![]);
        no_alerts.as_object_mut().unwrap().remove("alerts");
        let mut bad_status = payload(vec![alert("pending", "f1", BREACH)]);
        bad_status["status"] = json!("firing");
        let cases: Vec<Vec<u8>> = vec![
            b"garbage".to_vec(),
            b"{\"version\":\"4\",".to_vec(),
            b"[]".to_vec(),
            vec![0xff, 0xfe],
            serde_json::to_vec(&v3).unwrap(),
            serde_json::to_vec(&vnum).unwrap(),
            serde_json::to_vec(&no_alerts).unwrap(),
            serde_json::to_vec(&bad_status).unwrap(),
            serde_json::to_vec(
                &json!({"version": "4", "status": "firing", "alerts": [{"labels": {}}]}),
            )
            .unwrap(),
        ];
        for c in cases {
            let (s, v) = answer(
                rx.handle(req("POST", "/alerts", Some(&auth), c.clone()))
                    .await,
            )
            .await;
            assert_eq!(
                s,
                StatusCode::BAD_REQUEST,
                "{}",
                String::from_utf8_lossy(&c)
            );
            assert!(v["error"].is_string());
        }
        // a bad Content-Length header
        let mut r = req("POST", "/alerts", Some(&auth), good.clone());
        r.headers_mut()
            .insert("content-length", "12x".parse().unwrap());
        let (s, _) = answer(rx.handle(r).await).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // none of that acted
        assert!(rx.sink().actions.lock().unwrap().is_empty());
        let t = rx.metrics.text();
        assert!(t.contains("tollgate_alert_requests_rejected_total{reason=\"unauthorized\"} 5"));
        assert!(t.contains("tollgate_alert_requests_rejected_total{reason=\"too_large\"} 2"));
        assert!(t.contains("tollgate_alert_requests_rejected_total{reason=\"bad_version\"} 2"));
        assert!(t.contains("tollgate_alert_requests_rejected_total{reason=\"bad_request\"} 9"));
        assert!(t.contains("tollgate_alert_requests_rejected_total{reason=\"method\"} 4"));
        assert!(t.contains("tollgate_alert_requests_rejected_total{reason=\"not_found\"} 1"));
        assert!(t.contains("tollgate_alert_actions_total{kind=\"respond\"} 0"));
    });
}

#[test]
fn idempotent() {
    rt().block_on(async {
        let rx = rx();
        let p = payload(vec![alert("firing", "f1", BREACH)]);
        let (s, v) = answer(rx.handle(post(&p)).await).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["actions"], 1);
        assert_eq!(v["received"], 1);
        // the same post again (Alertmanager's repeat): no new action
        let (s, v) = answer(rx.handle(post(&p)).await).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["actions"], 0);
        assert_eq!(v["duplicates"], 1);
        // resolved: nothing, ever
        let mut r = payload(vec![alert("resolved", "f1", BREACH)]);
        r["status"] = json!("resolved");
        let (_, v) = answer(rx.handle(post(&r)).await).await;
        assert_eq!(
            (v["actions"].clone(), v["resolved"].clone()),
            (json!(0), json!(1))
        );
        // firing again later (new startsAt): acts again
        let mut again = alert("firing", "f1", BREACH);
        again["startsAt"] = json!("2026-11-25T11:00:00Z");
        let (_, v) = answer(rx.handle(post(&payload(vec![again.clone()]))).await).await;
        assert_eq!(v["actions"], 1);
        // a group with a new alert and the old one: one new action
        let other = alert("firing", "f2", BREACH);
        let (_, v) = answer(rx.handle(post(&payload(vec![again, other]))).await).await;
        assert_eq!(
            (v["actions"].clone(), v["duplicates"].clone()),
            (json!(1), json!(1))
        );
        assert_eq!(rx.sink().actions.lock().unwrap().len(), 3);
        // a failing sink: 500, and the retry acts
        rx.sink().fail.store(true, Ordering::Relaxed);
        let p3 = payload(vec![alert("firing", "f3", BREACH)]);
        let (s, v) = answer(rx.handle(post(&p3)).await).await;
        assert_eq!(
            (s, v["failed"].clone()),
            (StatusCode::INTERNAL_SERVER_ERROR, json!(1))
        );
        rx.sink().fail.store(false, Ordering::Relaxed);
        let (s, v) = answer(rx.handle(post(&p3)).await).await;
        assert_eq!((s, v["actions"].clone()), (StatusCode::OK, json!(1)));
        // unmappable alerts: 200, counted and reported
        let (s, v) = answer(
            rx.handle(post(&payload(vec![alert(
                "firing",
                "f4",
                &[("alertname", "Watchdog"), ("severity", "none")],
            )])))
            .await,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["actions"], 0);
        assert_eq!(v["ignored"][0]["alertname"], "Watchdog");
        assert_eq!(v["ignored"][0]["fingerprint"], "f4");
        assert!(
            v["ignored"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("namespace")
        );
        let t = rx.metrics.text();
        assert!(
            t.contains("tollgate_alert_actions_total{kind=\"respond\"} 4"),
            "{t}"
        );
        assert!(
            t.contains("tollgate_alerts_skipped_total{reason=\"duplicate\"} 2"),
            "{t}"
        );
        assert!(
            t.contains("tollgate_alerts_received_total{status=\"resolved\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("tollgate_alerts_skipped_total{reason=\"ignored\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("tollgate_alerts_skipped_total{reason=\"sink_failed\"} 1"),
            "{t}"
        );
    });
}
