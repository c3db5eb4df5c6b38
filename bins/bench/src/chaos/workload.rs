//! The chaos run's clients: register readers and writers, appenders, a Deployment driver
//! (scale, roll out, roll back), and watchers that record what their watches delivered, all
//! through the HTTPS API of whichever master answers, recording what they saw for the
//! checkers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::check::{Operation, RegisterOp, WatchSegment, UNKNOWN};

/// The namespace of the registers and appends.
pub(crate) const DATA_NS: &str = "chaos-data";
/// The namespace of the Deployments.
pub(crate) const APPS_NS: &str = "chaos-apps";
/// The value every register starts with.
pub(crate) const INITIAL: &str = "initial";

/// The masters' API, with one HTTPS client for short requests.
#[derive(Clone)]
pub(crate) struct Api {
    pub http: reqwest::Client,
    pub masters: Vec<SocketAddr>,
}

/// How a request ended, as a checker must read it.
pub(crate) enum Outcome {
    /// An answer (any HTTP status).
    Answer(u16, Value),
    /// Never sent (the connection was refused): it certainly did not happen.
    NotSent,
    /// Sent, but no answer (timeout, broken connection): it may have happened.
    Unknown,
}

impl Api {
    pub(crate) fn url(&self, master: usize, path: &str) -> String {
        format!(
            "https://{}{path}",
            self.masters[master % self.masters.len()]
        )
    }

    pub(crate) async fn call(
        &self,
        master: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Outcome {
        let mut req = self.http.request(method, self.url(master, path));
        if let Some(b) = body {
            req = req.json(b);
        }
        match req.send().await {
            Ok(resp) => {
                let code = resp.status().as_u16();
                match resp.json::<Value>().await {
                    Ok(v) => Outcome::Answer(code, v),
                    Err(_) => Outcome::Unknown,
                }
            }
            Err(e) if e.is_connect() => Outcome::NotSent,
            Err(_) => Outcome::Unknown,
        }
    }

    /// GET through any master that answers 200, trying each in turn from `first`.
    pub(crate) async fn get_any(&self, first: usize, path: &str) -> Option<Value> {
        for k in 0..self.masters.len() {
            if let Outcome::Answer(200, v) =
                self.call(first + k, reqwest::Method::GET, path, None).await
            {
                return Some(v);
            }
        }
        None
    }
}

fn micros(t0: Instant) -> u64 {
    t0.elapsed().as_micros() as u64
}

/// A register's path.
pub(crate) fn register_path(key: &str) -> String {
    format!("/api/v1/namespaces/{DATA_NS}/configmaps/{key}")
}

/// A register as a ConfigMap holding its value.
pub(crate) fn register_object(key: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": key, "labels": {"chaos": "register"}},
           "data": {"v": value}})
}

/// What a register client did.
#[derive(Default)]
pub(crate) struct RegisterRecord {
    pub history: Vec<Operation>,
    /// Acknowledged writes' (revision, register name), for the watch check.
    pub acknowledged: Vec<(u64, String)>,
    pub failed: usize,
}

/// Reads and writes registers (unique values `c<id>-<n>`) until `stop`, through master
/// `id`'s API first and the next one whenever a request fails.
pub(crate) async fn register_client(
    id: usize,
    api: Api,
    keys: Vec<String>,
    seed: u64,
    t0: Instant,
    mut stop: watch::Receiver<bool>,
) -> RegisterRecord {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rec = RegisterRecord::default();
    let mut master = id;
    let mut n = 0u64;
    while !*stop.borrow() {
        let key = keys[rng.gen_range(0..keys.len())].clone();
        let path = register_path(&key);
        let call = micros(t0);
        if rng.gen_bool(0.5) {
            match api.call(master, reqwest::Method::GET, &path, None).await {
                Outcome::Answer(200, v) => rec.history.push(Operation {
                    client: id,
                    key,
                    op: RegisterOp::Read(v["data"]["v"].as_str().map(str::to_string)),
                    call,
                    ret: micros(t0),
                }),
                _ => {
                    rec.failed += 1;
                    master += 1;
                }
            }
        } else {
            n += 1;
            let value = format!("c{id}-{n}");
            let body = register_object(&key, &value);
            let outcome = api
                .call(master, reqwest::Method::PUT, &path, Some(&body))
                .await;
            let ret = match outcome {
                Outcome::Answer(200, v) => {
                    if let Some(rv) = v["metadata"]["resourceVersion"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                    {
                        rec.acknowledged.push((rv, key.clone()));
                    }
                    Some(micros(t0))
                }
                // A refusal (4xx) changed nothing; a 5xx may come after the write committed
                // (the answer was lost on the way back).
                Outcome::Answer(code, _) if code < 500 => None,
                Outcome::NotSent => None,
                Outcome::Answer(..) | Outcome::Unknown => Some(UNKNOWN),
            };
            if ret.is_none_or(|r| r == UNKNOWN) {
                rec.failed += 1;
                master += 1;
            }
            if let Some(ret) = ret {
                rec.history.push(Operation {
                    client: id,
                    key,
                    op: RegisterOp::Write(value),
                    call,
                    ret,
                });
            }
        }
        let pause = Duration::from_millis(rng.gen_range(0..20));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
    }
    rec
}

/// What an appender did.
#[derive(Default)]
pub(crate) struct AppendRecord {
    pub acknowledged: Vec<String>,
    pub maybe: Vec<String>,
    pub revisions: Vec<(u64, String)>,
    pub failed: usize,
}

/// Creates ConfigMaps `log-<id>-<n>` (each name attempted once) until `stop`.
pub(crate) async fn append_client(
    id: usize,
    api: Api,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) -> AppendRecord {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rec = AppendRecord::default();
    let mut master = id;
    let mut n = 0u64;
    let path = format!("/api/v1/namespaces/{DATA_NS}/configmaps");
    while !*stop.borrow() {
        n += 1;
        let name = format!("log-{id}-{n}");
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": name, "labels": {"chaos": "append"}},
                          "data": {"n": n.to_string()}});
        match api
            .call(master, reqwest::Method::POST, &path, Some(&body))
            .await
        {
            Outcome::Answer(201, v) => {
                if let Some(rv) = v["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                {
                    rec.revisions.push((rv, name.clone()));
                }
                rec.acknowledged.push(name);
            }
            Outcome::Answer(code, _) if code < 500 => {
                rec.failed += 1;
                master += 1;
            }
            Outcome::NotSent => {
                rec.failed += 1;
                master += 1;
            }
            Outcome::Answer(..) | Outcome::Unknown => {
                rec.failed += 1;
                rec.maybe.push(name);
                master += 1;
            }
        }
        let pause = Duration::from_millis(rng.gen_range(10..60));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
    }
    rec
}

/// The Deployments' names.
pub(crate) fn deployment_names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("d{i}")).collect()
}

/// A Deployment of busybox `sleep` pods whose template carries `generation` in an env var.
pub(crate) fn deployment(name: &str, replicas: u64, generation: u64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "main", "image": "busybox",
                        "command": ["sleep", "100000"],
                        "env": [{"name": "GENERATION", "value": generation.to_string()}]
                    }]
                }
            }
        }
    })
}

/// What the Deployment driver did.
#[derive(Default, Debug)]
pub(crate) struct DriverRecord {
    pub scaled: usize,
    pub rolled_out: usize,
    pub rolled_back: usize,
    pub failed: usize,
}

/// Scales, rolls out (a new template generation) and rolls back (the previous template, as
/// `kubectl rollout undo` does) random Deployments until `stop`.
pub(crate) async fn deployment_driver(
    api: Api,
    names: Vec<String>,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) -> DriverRecord {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rec = DriverRecord::default();
    let mut master = 0usize;
    // Each Deployment's templates, oldest first, as the driver last set them.
    let mut previous: Vec<Option<Value>> = vec![None; names.len()];
    let mut generation = 1u64;
    while !*stop.borrow() {
        let pause = Duration::from_millis(rng.gen_range(1000..3000));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => break,
        }
        let i = rng.gen_range(0..names.len());
        let path = format!(
            "/apis/apps/v1/namespaces/{APPS_NS}/deployments/{}",
            names[i]
        );
        let Outcome::Answer(200, mut d) = api.call(master, reqwest::Method::GET, &path, None).await
        else {
            rec.failed += 1;
            master += 1;
            continue;
        };
        let action = rng.gen_range(0..3);
        let template = d["spec"]["template"].clone();
        match action {
            0 => d["spec"]["replicas"] = json!(rng.gen_range(1..=3)),
            1 => {
                generation += 1;
                d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] =
                    json!(generation.to_string());
            }
            _ => match previous[i].clone() {
                Some(old) => d["spec"]["template"] = old,
                None => continue,
            },
        }
        match api
            .call(master, reqwest::Method::PUT, &path, Some(&d))
            .await
        {
            Outcome::Answer(200, _) => match action {
                0 => rec.scaled += 1,
                1 => {
                    rec.rolled_out += 1;
                    previous[i] = Some(template);
                }
                _ => {
                    rec.rolled_back += 1;
                    previous[i] = Some(template);
                }
            },
            _ => {
                rec.failed += 1;
                master += 1;
            }
        }
    }
    rec
}

/// What a watcher saw: its segments (one per watch connection) and, for pods, every
/// (uid, name, node) it was told.
#[derive(Default)]
pub(crate) struct WatchRecord {
    pub segments: Vec<WatchSegment>,
    pub bindings: Vec<(String, String, String)>,
    pub relists: usize,
    /// The highest revision delivered (or listed).
    pub last: u64,
}

fn rv_of(obj: &Value) -> Option<u64> {
    obj["metadata"]["resourceVersion"].as_str()?.parse().ok()
}

fn binding_of(obj: &Value) -> (String, String, String) {
    let m = &obj["metadata"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        s(&m["uid"]),
        format!("{}/{}", s(&m["namespace"]), s(&m["name"])),
        s(&obj["spec"]["nodeName"]),
    )
}

/// Lists `collection` (an API path), then watches it from the list's revision until `stop`
/// and the watch has delivered `until` (sent once the run knows its last write), resuming
/// from the last revision through the next master when a watch breaks or goes quiet, and
/// relisting when the revision is gone (410).
pub(crate) async fn watcher(
    api: Api,
    watch_http: reqwest::Client,
    collection: String,
    mut until: watch::Receiver<Option<u64>>,
) -> WatchRecord {
    let mut rec = WatchRecord::default();
    let mut master = 0usize;
    let mut from: Option<u64> = None;
    loop {
        if let (Some(target), Some(_)) = (*until.borrow(), from) {
            if rec.last >= target {
                return rec;
            }
        }
        let start = match from {
            Some(rv) => rv,
            None => {
                let Some(list) = api.get_any(master, &collection).await else {
                    master += 1;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                        // The run dropped its sender: it no longer waits for this watcher.
                        r = until.changed() => if r.is_err() { return rec },
                    }
                    continue;
                };
                let Some(rv) = list["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|s| s.parse::<u64>().ok())
                else {
                    master += 1;
                    continue;
                };
                for item in list["items"].as_array().into_iter().flatten() {
                    rec.bindings.push(binding_of(item));
                }
                rec.last = rec.last.max(rv);
                from = Some(rv);
                rv
            }
        };
        let url = format!(
            "{}?watch=true&resourceVersion={start}&timeoutSeconds=60",
            api.url(master, &collection)
        );
        let mut segment = WatchSegment {
            from: start,
            events: Vec::new(),
        };
        let mut gone = false;
        if let Ok(resp) = watch_http.get(&url).send().await {
            if resp.status().as_u16() == 410 {
                gone = true;
            } else if resp.status().is_success() {
                let mut body = resp.bytes_stream();
                let mut buf = Vec::new();
                'stream: loop {
                    if until.borrow().is_some_and(|t| rec.last >= t) {
                        break;
                    }
                    let next = tokio::select! {
                        n = tokio::time::timeout(Duration::from_secs(5), body.next()) => n,
                        r = until.changed() => match r {
                            Ok(()) => continue 'stream,
                            Err(_) => return rec,
                        },
                    };
                    let Ok(Some(Ok(chunk))) = next else {
                        // Quiet for long (a paused master looks like this), broken or ended.
                        break;
                    };
                    buf.extend_from_slice(&chunk);
                    while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=end).collect();
                        let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                            continue;
                        };
                        let obj = &ev["object"];
                        match ev["type"].as_str() {
                            Some("ERROR") => {
                                gone = obj["code"].as_u64() == Some(410);
                                break 'stream;
                            }
                            Some("BOOKMARK") => {}
                            Some(_) => {
                                let Some(rv) = rv_of(obj) else { continue };
                                let name = obj["metadata"]["name"].as_str().unwrap_or_default();
                                segment.events.push((rv, name.to_string()));
                                rec.bindings.push(binding_of(obj));
                                rec.last = rec.last.max(rv);
                                from = Some(rv);
                            }
                            None => {}
                        }
                    }
                }
            }
        }
        rec.segments.push(segment);
        if gone {
            rec.relists += 1;
            from = None;
        }
        master += 1;
    }
}
