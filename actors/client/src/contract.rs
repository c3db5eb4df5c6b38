//! The contract every [`Client`] implementation must pass (feature `contract`): Kubernetes
//! semantics as seen through the trait, whatever carries the calls (the in-process client,
//! HTTPS). Each scenario takes an admin client and a fresh namespace, and says in its
//! failure which step broke and what came back.
//!
//! Run them all, each in a namespace of its own:
//!
//! ```ignore
//! let report = navarch_client::contract::run_all(&admin, Some(&nobody), "contract").await;
//! report.assert_passed(); // panics listing every failure
//! ```
//!
//! or one at a time (`contract::SCENARIOS`, or the functions themselves with a namespace from
//! [`fresh_namespace`]). The scenarios depend on the trait and the model only. They use
//! objects no controller touches (Leases, paused Deployments with no replicas, Pods whose
//! `schedulerName` no scheduler answers to), so they can run in a live cluster.
//!
//! - [`reads`]: create, get, list with label and field selectors, limit/continue paging;
//! - [`writes`]: optimistic concurrency, merge/JSON/strategic-merge patches, the status
//!   and scale subresources, generation rules, binding;
//! - [`deletion`]: finalizers, deletecollection, Background/Orphan/Foreground cascades over
//!   ownerReferences;
//! - [`watches`]: watch from a list's revision with resumption, watch-list;
//! - [`errors`]: typed errors (404, 409, 422 with causes, 400) and 403 for an unprivileged
//!   user's writes.

pub mod deletion;
pub mod errors;
pub mod reads;
pub mod watches;
pub mod writes;

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use navarch_model::kinds::Kind;
use navarch_model::options::{DeleteOptions, GetOptions, ListOptions, Patch, WriteOptions};
use navarch_model::patch::PatchType;
use navarch_model::watch::{EventType, WatchEvent};
use navarch_model::ApiError;
use rand::Rng;
use serde_json::{json, Value};

use crate::{Client, ClientError, ObjectList, Subresource, WatchStream, Written};

/// How long a scenario waits for something to happen (an event, an asynchronous deletion).
pub const WAIT: Duration = Duration::from_secs(20);

/// The label every object a scenario creates carries (its value: the scenario's name).
pub const SCENARIO_LABEL: &str = "contract.navarch.io/scenario";

/// A scenario's failure: which scenario, and what went wrong at which step.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("contract scenario {scenario} failed: {message}")]
pub struct Failure {
    pub scenario: &'static str,
    pub message: String,
}

pub type Outcome = Result<(), Failure>;

/// A scenario taking the admin client and its namespace.
pub type ScenarioFn = for<'a> fn(&'a dyn Client, &'a str) -> BoxFuture<'a, Outcome>;

/// One scenario of the suite.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub run: ScenarioFn,
}

macro_rules! scenario {
    ($module:ident :: $f:ident) => {
        Scenario {
            name: stringify!($f),
            run: {
                fn run<'a>(c: &'a dyn Client, ns: &'a str) -> BoxFuture<'a, Outcome> {
                    Box::pin($module::$f(c, ns))
                }
                run
            },
        }
    };
}

/// Every scenario that needs only the admin client.
pub const SCENARIOS: &[Scenario] = &[
    scenario!(reads::create_get_list),
    scenario!(reads::selectors_and_paging),
    scenario!(writes::optimistic_concurrency),
    scenario!(writes::patch_types),
    scenario!(writes::status_subresource),
    scenario!(writes::scale_subresource),
    scenario!(writes::binding),
    scenario!(deletion::finalizers),
    scenario!(deletion::delete_collection),
    scenario!(deletion::cascade_background),
    scenario!(deletion::cascade_orphan),
    scenario!(deletion::cascade_foreground),
    scenario!(watches::watch_from_list),
    scenario!(watches::watch_list),
    scenario!(errors::typed_errors),
];

/// The outcome of a run.
#[derive(Debug, Default)]
pub struct Report {
    pub results: Vec<(&'static str, Outcome)>,
}

impl Report {
    pub fn failures(&self) -> Vec<&Failure> {
        self.results
            .iter()
            .filter_map(|(_, r)| r.as_ref().err())
            .collect()
    }

    /// Panics, listing every failure, unless every scenario passed.
    pub fn assert_passed(&self) {
        let failures = self.failures();
        if !failures.is_empty() {
            let list: Vec<String> = failures.iter().map(|f| format!("- {f}")).collect();
            panic!(
                "{} of {} contract scenarios failed:\n{}",
                failures.len(),
                self.results.len(),
                list.join("\n")
            );
        }
    }
}

/// Runs every scenario, each in a fresh namespace (deleted afterwards), and, when an
/// unprivileged client is given, [`errors::unprivileged_writes_are_forbidden`].
pub async fn run_all(
    admin: &dyn Client,
    unprivileged: Option<&dyn Client>,
    prefix: &str,
) -> Report {
    let mut report = Report::default();
    for s in SCENARIOS {
        let outcome = match fresh_namespace(admin, prefix).await {
            Ok(ns) => {
                tracing::info!(scenario = s.name, namespace = %ns, "contract scenario");
                let outcome = (s.run)(admin, &ns).await;
                remove_namespace(admin, &ns).await;
                outcome
            }
            Err(f) => Err(Failure {
                scenario: s.name,
                ..f
            }),
        };
        report.results.push((s.name, outcome));
    }
    if let Some(user) = unprivileged {
        let name = "unprivileged_writes_are_forbidden";
        let outcome = match fresh_namespace(admin, prefix).await {
            Ok(ns) => {
                let outcome = errors::unprivileged_writes_are_forbidden(admin, user, &ns).await;
                remove_namespace(admin, &ns).await;
                outcome
            }
            Err(f) => Err(Failure {
                scenario: name,
                ..f
            }),
        };
        report.results.push((name, outcome));
    }
    report
}

/// Deletes a scenario's namespace (best effort: a namespace controller, where one runs,
/// empties it; elsewhere it stays `Terminating`).
pub async fn remove_namespace(admin: &dyn Client, ns: &str) {
    if let Err(e) = admin
        .delete(namespaces(), None, ns, &DeleteOptions::default())
        .await
    {
        tracing::warn!(namespace = %ns, error = %e, "could not delete a contract namespace");
    }
}

/// Creates a namespace named `<prefix>-<random>` and returns its name.
pub async fn fresh_namespace(admin: &dyn Client, prefix: &str) -> Result<String, Failure> {
    let name = format!("{prefix}-{:08x}", rand::thread_rng().gen::<u32>());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    admin
        .create(namespaces(), None, ns, &WriteOptions::default())
        .await
        .map_err(|e| Failure {
            scenario: "fresh_namespace",
            message: format!("creating namespace {name}: {e}"),
        })?;
    Ok(name)
}

pub(crate) fn namespaces() -> &'static Kind {
    crate::kind("", "v1", "namespaces")
}

pub(crate) fn leases() -> &'static Kind {
    crate::kind("coordination.k8s.io", "v1", "leases")
}

pub(crate) fn deployments() -> &'static Kind {
    crate::kind("apps", "v1", "deployments")
}

pub(crate) fn pods() -> &'static Kind {
    crate::kind("", "v1", "pods")
}

/// No scheduler answers to this name, so a test pod stays unbound until it binds it.
pub(crate) const NO_SCHEDULER: &str = "navarch-contract-no-scheduler";

pub(crate) fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}

pub(crate) fn rv_of(o: &Value) -> String {
    o["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

pub(crate) fn names(items: &[Value]) -> Vec<String> {
    items.iter().map(|o| name_of(o).to_string()).collect()
}

/// What a scenario runs with: the client, its namespace, its name for messages.
pub(crate) struct Ctx<'a> {
    pub c: &'a dyn Client,
    pub ns: &'a str,
    pub scenario: &'static str,
}

macro_rules! ensure {
    ($ctx:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($ctx.fail(format!($($fmt)+)));
        }
    };
}
pub(crate) use ensure;

impl<'a> Ctx<'a> {
    pub fn new(c: &'a dyn Client, ns: &'a str, scenario: &'static str) -> Ctx<'a> {
        Ctx { c, ns, scenario }
    }

    pub fn fail(&self, message: impl Display) -> Failure {
        Failure {
            scenario: self.scenario,
            message: message.to_string(),
        }
    }

    /// `r`'s value, or a failure naming the step.
    pub fn ok<T>(&self, step: &str, r: Result<T, ClientError>) -> Result<T, Failure> {
        r.map_err(|e| self.fail(format!("{step}: expected success, got {e}")))
    }

    /// The API error `r` must be, with this code and reason.
    pub fn refused<T: std::fmt::Debug>(
        &self,
        step: &str,
        r: Result<T, ClientError>,
        code: u16,
        reason: &str,
    ) -> Result<ApiError, Failure> {
        match r {
            Ok(v) => {
                let shown = format!("{v:?}");
                Err(self.fail(format!(
                    "{step}: expected {code} {reason}, but it succeeded: {}",
                    shown.chars().take(300).collect::<String>()
                )))
            }
            Err(ClientError::Api(e)) if e.code == code && e.reason == reason => Ok(e),
            Err(e) => Err(self.fail(format!("{step}: expected {code} {reason}, got {e}"))),
        }
    }

    /// Labels that mark an object as this scenario's, plus `extra`.
    pub fn labels(&self, extra: Value) -> Value {
        let mut l = json!({SCENARIO_LABEL: self.scenario});
        if let (Some(m), Some(e)) = (l.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                m.insert(k.clone(), v.clone());
            }
        }
        l
    }

    pub fn lease(&self, name: &str, labels: Value) -> Value {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": name, "labels": self.labels(labels)},
               "spec": {"holderIdentity": "contract"}})
    }

    /// A paused Deployment (no controller creates anything for it) with one container.
    pub fn deployment(&self, name: &str, replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "labels": self.labels(json!({}))},
               "spec": {"replicas": replicas, "paused": true,
                        "selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}},
                                     "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}}})
    }

    /// A Pod no scheduler places.
    pub fn pod(&self, name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "labels": self.labels(json!({}))},
               "spec": {"schedulerName": NO_SCHEDULER, "terminationGracePeriodSeconds": 0,
                        "containers": [{"name": "c", "image": "busybox:1"}]}})
    }

    pub async fn create(&self, kind: &'static Kind, obj: Value) -> Result<Value, Failure> {
        let name = name_of(&obj).to_string();
        let w: Written = self.ok(
            &format!("create {} {name}", kind.kind),
            self.c
                .create(kind, Some(self.ns), obj, &WriteOptions::default())
                .await,
        )?;
        Ok(w.object)
    }

    pub async fn get(&self, kind: &'static Kind, name: &str) -> Result<Value, ClientError> {
        self.c
            .get(kind, Some(self.ns), name, &GetOptions::default())
            .await
    }

    pub async fn must_get(&self, kind: &'static Kind, name: &str) -> Result<Value, Failure> {
        let r = self.get(kind, name).await;
        self.ok(&format!("get {} {name}", kind.kind), r)
    }

    pub async fn list(
        &self,
        kind: &'static Kind,
        opts: ListOptions,
    ) -> Result<ObjectList, Failure> {
        let r = self.c.list(kind, Some(self.ns), &opts).await;
        self.ok(&format!("list {} ({:?})", kind.plural, opts.to_query()), r)
    }

    pub async fn patch(
        &self,
        kind: &'static Kind,
        name: &str,
        sub: Option<Subresource>,
        ty: PatchType,
        body: Value,
    ) -> Result<Result<Written, ClientError>, Failure> {
        Ok(self
            .c
            .patch(
                kind,
                Some(self.ns),
                name,
                sub,
                Patch { ty, body },
                &WriteOptions::default(),
            )
            .await)
    }

    pub async fn delete(
        &self,
        kind: &'static Kind,
        name: &str,
        opts: DeleteOptions,
    ) -> Result<Value, ClientError> {
        self.c.delete(kind, Some(self.ns), name, &opts).await
    }

    /// Waits until `get` of the object answers 404.
    pub async fn gone(&self, kind: &'static Kind, name: &str) -> Result<(), Failure> {
        self.eventually(&format!("{} {name} to be gone", kind.kind), || async move {
            match self.get(kind, name).await {
                Err(e) if e.is_not_found() => Some(Ok(())),
                Err(e) => Some(Err(self.fail(format!("get {} {name}: {e}", kind.kind)))),
                Ok(_) => None,
            }
        })
        .await?
    }

    /// Polls `f` until it gives `Some` (within [`WAIT`]).
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(v) = f().await {
                return Ok(v);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.fail(format!("timed out after {WAIT:?} waiting for {what}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The next event of `stream` that is not a bookmark (within [`WAIT`]).
    pub async fn next_change(
        &self,
        stream: &mut WatchStream,
        step: &str,
    ) -> Result<WatchEvent, Failure> {
        loop {
            let ev = self.next_event(stream, step).await?;
            if ev.event_type != EventType::Bookmark {
                return Ok(ev);
            }
        }
    }

    /// The next event of `stream`, bookmarks included (within [`WAIT`]).
    pub async fn next_event(
        &self,
        stream: &mut WatchStream,
        step: &str,
    ) -> Result<WatchEvent, Failure> {
        match tokio::time::timeout(WAIT, stream.next()).await {
            Err(_) => Err(self.fail(format!("{step}: no watch event within {WAIT:?}"))),
            Ok(None) => Err(self.fail(format!("{step}: the watch ended"))),
            Ok(Some(Err(e))) => Err(self.fail(format!("{step}: the watch failed: {e}"))),
            Ok(Some(Ok(ev))) => Ok(ev),
        }
    }

    /// Fails unless `ev` is `ty` about `name`.
    pub fn expect_event(&self, ev: &WatchEvent, ty: EventType, name: &str, step: &str) -> Outcome {
        ensure!(
            self,
            ev.event_type == ty && name_of(&ev.object) == name,
            "{step}: expected {ty} {name}, got {} {} ({})",
            ev.event_type,
            name_of(&ev.object),
            ev.object.to_string().chars().take(300).collect::<String>()
        );
        Ok(())
    }
}
