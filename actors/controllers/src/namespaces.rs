//! The namespace controller: one actor per Namespace under the `namespace` supervisor. A
//! deleted namespace that still carries the `kubernetes` finalizer is emptied, as
//! `namespace-controller`: each pass reads the namespace live, lists every namespaced kind
//! in it, deletes what is left (a deletecollection per kind, normal deletions: pods get their
//! grace period and their node ends them), lists again, writes the status conditions
//! `navarch_logic::namespaces::plan` decides, and once nothing is left removes the finalizer
//! through `namespaces/<name>/finalize`, after which the API server removes the namespace.
//!
//! Passes start when the namespace changes (its deletion, the status this controller writes),
//! a second after content of a terminating namespace disappears from the shared caches
//! (pods, above all: their nodes end them), and on a timer while content remains (the pods'
//! grace period, Kubernetes' 15 s for objects held by finalizers, backoff after failures).
//! Nothing is polled otherwise; a restarted actor starts with a pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use navarch_actors::{
    Decision, GroupHandle, KindHandle, KindSpec, ObjectKey, SupervisorError, TapInfo,
};
use navarch_client::{Cache, CacheEvent, Client, ClientError, Subresource, Subscription};
use navarch_logic::meta;
use navarch_logic::namespaces::{self, Content, Left, Next};
use navarch_model::identity::NAMESPACE_CONTROLLER;
use navarch_model::kinds::Kind;
use navarch_model::options::{DeleteOptions, GetOptions, ListOptions, WriteOptions};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::context::Ctx;
use crate::feed::{self, Reread, RereadState, Rereading};
use crate::source::CacheSource;

fn namespaces_kind() -> &'static Kind {
    navarch_client::kind("", "v1", "namespaces")
}

/// How soon after content of a terminating namespace disappears it is looked at again
/// (several disappearances within it make one pass).
const CONTENT_GONE_LOOK: Duration = Duration::from_secs(1);
/// How soon a pass whose write lost a race (409) is tried again.
const CONFLICT_LOOK: Duration = Duration::from_secs(1);

/// What the controller's actors share.
pub struct Shared {
    ctx: Ctx,
    namespaces: Cache,
    /// The shared caches of namespaced kinds: their deletions in a terminating namespace
    /// poke it.
    content: Vec<Cache>,
    client: Arc<dyn Client>,
    handle: OnceLock<KindHandle<Rereading<NamespaceLogic>>>,
    requeues: Arc<feed::Requeues>,
    /// Consecutive failed passes per namespace (for the backoff); kept here, not in the
    /// actor, so a restart does not reset it. An entry goes with a pass that succeeds or
    /// finds the namespace gone.
    failures: Mutex<HashMap<String, u32>>,
}

/// A namespace actor's messages.
#[derive(Debug, Clone)]
pub enum NamespaceEvent {
    /// Content went, or a deadline came: look again.
    Check,
}

impl TapInfo for NamespaceEvent {
    fn message_type(&self) -> std::borrow::Cow<'static, str> {
        "Check".into()
    }
}

/// One pass over a terminating namespace.
#[derive(Debug)]
pub struct Step {
    name: String,
}

pub struct NamespaceLogic {
    shared: Arc<Shared>,
}

impl Reread for NamespaceLogic {
    type Event = NamespaceEvent;
    type Step = Step;

    fn step(&self, state: &mut RereadState) -> Decision<Step> {
        let Some(ns) = self.shared.namespaces.get(None, state.key.name()) else {
            return Ok(Vec::new());
        };
        state.summary = ns["status"]["phase"]
            .as_str()
            .unwrap_or("Active")
            .to_lowercase();
        if !namespaces::needs_work(&ns) {
            return Ok(Vec::new());
        }
        Ok(vec![Step {
            name: state.key.name().to_string(),
        }])
    }
}

/// Lists every kind of the namespace (live).
async fn observe(s: &Shared, name: &str) -> Content {
    let mut kinds = Vec::new();
    for kind in namespaces::deletable_kinds() {
        let left = match s
            .client
            .list(kind, Some(name), &ListOptions::default())
            .await
        {
            Ok(list) => Left::of(kind, &list.items),
            Err(e) => Left::failed(kind, e.to_string()),
        };
        kinds.push(left);
    }
    Content {
        kinds,
        ..Content::default()
    }
}

fn look_again(s: &Shared, name: &str, after: Duration) {
    if let (Some(h), Ok(key)) = (s.handle.get(), ObjectKey::cluster(name)) {
        s.requeues.after(
            h.clone(),
            key,
            after.max(Duration::from_secs(1)),
            NamespaceEvent::Check,
        );
    }
}

/// A failed pass: look again after the backoff for this namespace.
fn retry(s: &Shared, name: &str) {
    let failures = {
        let mut f = s.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = f.entry(name.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n - 1
    };
    let after = namespaces::retry_after(failures);
    tracing::debug!(
        namespace = name,
        failures = failures + 1,
        after,
        "namespace not emptied yet; retrying"
    );
    look_again(s, name, Duration::from_secs(after as u64));
}

fn succeeded(s: &Shared, name: &str) {
    s.failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(name);
}

/// A write of the pass failed: look again soon after a conflict, with backoff otherwise.
fn write_failed(s: &Shared, name: &str, what: &str, e: &ClientError) {
    if e.is_not_found() {
        return succeeded(s, name);
    }
    tracing::debug!(namespace = name, write = what, error = %e, "namespace write failed");
    if e.is_conflict() {
        look_again(s, name, CONFLICT_LOOK);
    } else {
        retry(s, name);
    }
}

/// One pass: read the namespace, find and delete what is left, report it, and finalize or
/// look again.
async fn pass(s: &Arc<Shared>, name: &str) {
    let ns = match s
        .client
        .get(namespaces_kind(), None, name, &GetOptions::default())
        .await
    {
        Ok(ns) => ns,
        Err(e) if e.is_not_found() => return succeeded(s, name),
        Err(e) => {
            tracing::debug!(namespace = name, error = %e, "namespace not read");
            look_again(s, name, CONFLICT_LOOK);
            return;
        }
    };
    if !namespaces::needs_work(&ns) {
        return succeeded(s, name);
    }
    let now = s.ctx.now();
    let mut content = if namespaces::needs_emptying(&ns) {
        observe(s, name).await
    } else {
        Content::default()
    };
    let mut plan = namespaces::plan(&ns, &content, now);
    if !plan.delete.is_empty() {
        let mut failed: HashMap<&str, String> = HashMap::new();
        for kind in &plan.delete {
            match s
                .client
                .delete_collection(
                    kind,
                    Some(name),
                    &ListOptions::default(),
                    &DeleteOptions::default(),
                )
                .await
            {
                Ok(gone) => {
                    tracing::debug!(
                        namespace = name,
                        kind = kind.kind,
                        count = gone.items.len(),
                        "deleted namespace content"
                    )
                }
                Err(e) => {
                    failed.insert(kind.plural, e.to_string());
                }
            }
        }
        // What is left after the deletes decides (Kubernetes' deletecollection, then list).
        content = observe(s, name).await;
        for left in &mut content.kinds {
            if let Some(e) = failed.remove(left.kind.plural) {
                left.error.get_or_insert(e);
            }
        }
        plan = namespaces::plan(&ns, &content, s.ctx.now());
    }
    let mut latest = ns;
    if let Some(status) = plan.status.take() {
        let mut body = latest.clone();
        body["status"] = status;
        match s
            .client
            .update(
                namespaces_kind(),
                None,
                name,
                Some(Subresource::Status),
                body,
                &WriteOptions::default(),
            )
            .await
        {
            Ok(w) => latest = w.object,
            Err(e) => return write_failed(s, name, "status", &e),
        }
    }
    match plan.next {
        Next::Nothing => succeeded(s, name),
        Next::LookAgain(after) => {
            succeeded(s, name);
            look_again(s, name, Duration::from_secs(after.max(1) as u64));
        }
        Next::Retry => retry(s, name),
        Next::Finalize(finalizers) => {
            let body = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": name,
                    "resourceVersion": meta::resource_version(&latest),
                },
                "spec": {"finalizers": finalizers},
            });
            match s
                .client
                .update(
                    namespaces_kind(),
                    None,
                    name,
                    Some(Subresource::Finalize),
                    body,
                    &WriteOptions::default(),
                )
                .await
            {
                Ok(_) => {
                    succeeded(s, name);
                    tracing::info!(namespace = name, "namespace emptied and finalized");
                }
                Err(e) => write_failed(s, name, "finalizers", &e),
            }
        }
    }
}

/// The running namespace controller of one activation.
pub struct NamespaceController {
    pub handle: KindHandle<Rereading<NamespaceLogic>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for NamespaceController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamespaceController").finish()
    }
}

impl Drop for NamespaceController {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl NamespaceController {
    pub async fn start(
        group: &GroupHandle,
        ctx: &Ctx,
    ) -> Result<NamespaceController, SupervisorError> {
        // The namespaced kinds the controller manager caches anyway: their deletions say
        // when to look again sooner than the timer would.
        let content: Vec<Cache> = ctx
            .caches
            .caches()
            .into_iter()
            .filter(|c| c.kind().namespaced)
            .collect();
        let shared = Arc::new(Shared {
            ctx: ctx.clone(),
            namespaces: ctx.cache(namespaces_kind()),
            content,
            client: ctx.clients.client(&NAMESPACE_CONTROLLER),
            handle: OnceLock::new(),
            requeues: feed::Requeues::new(ctx.clock.clone()),
            failures: Mutex::new(HashMap::new()),
        });
        let spec = KindSpec::new(
            "namespace",
            Rereading(NamespaceLogic {
                shared: shared.clone(),
            }),
            Arc::new(CacheSource::new(shared.namespaces.clone())),
        )
        .effects(Arc::new(feed::InOrder {
            shared: shared.clone(),
            run: |s, step: Step| Box::pin(async move { pass(&s, &step.name).await }),
        }));
        let own_sub = shared.namespaces.subscribe();
        let content_subs: Vec<Subscription> = shared.content.iter().map(Cache::subscribe).collect();
        let handle = group.supervise(spec).await?;
        let _ = shared.handle.set(handle.clone());
        let mut tasks = vec![feed::spawn_own(handle.clone(), &shared.namespaces, own_sub)];
        for sub in content_subs {
            tasks.push(tokio::spawn(feed_content(shared.clone(), sub)));
        }
        Ok(NamespaceController { handle, tasks })
    }
}

/// Looks at a terminating namespace again shortly after content of it is gone.
async fn feed_content(s: Arc<Shared>, mut sub: Subscription) {
    while let Some(event) = sub.recv().await {
        let Some(handle) = s.handle.get() else {
            continue;
        };
        let names: Vec<String> = match &event {
            CacheEvent::Deleted(o) => vec![meta::namespace(o).to_string()],
            CacheEvent::Resynced { .. } | CacheEvent::Lagged(_) => s
                .namespaces
                .list()
                .iter()
                .map(|n| meta::name(n).to_string())
                .collect(),
            CacheEvent::Added(_) | CacheEvent::Updated { .. } => continue,
        };
        for name in names {
            let terminating = s
                .namespaces
                .get(None, &name)
                .is_some_and(|n| namespaces::needs_emptying(&n));
            if let (true, Ok(key)) = (terminating, ObjectKey::cluster(&name)) {
                s.requeues.after(
                    handle.clone(),
                    key,
                    CONTENT_GONE_LOOK,
                    NamespaceEvent::Check,
                );
            }
        }
    }
}
