//! The verbs of the Kubernetes REST dialect carried out on the replicated store, with the
//! object rules of `navarch-model` applied in between (Kubernetes' registry strategies:
//! server-kept metadata, generation, status split, reservations, graceful deletion,
//! finalizers, dependents).
//!
//! Objects are stored as JSON bytes under `(qualified resource, namespace, name)`; the store's
//! revision of an object's last change is its `resourceVersion`, set on the way out and never
//! stored. Writes are compare-and-swap on that revision, retried when the caller did not ask for
//! a precondition (Kubernetes' `GuaranteedUpdate`).
//!
//! Only the pipeline calls this module: every caller reaches it authenticated, authorized and
//! admitted, and the pipeline audits what it did.

use std::sync::Arc;

use navarch_model::admission::{self, DefaultTolerationSeconds};
use navarch_model::kinds::{self, Kind};
use navarch_model::options::{DeleteOptions, ListOptions, Patch, Propagation, WriteOptions};
use navarch_model::patch::{self, PatchType};
use navarch_model::pdb::{self, Eviction};
use navarch_model::selector::LabelSelector;
use navarch_model::status::Cause;
use navarch_model::validate::{self, FieldValidation};
use navarch_model::ApiError;
use navarch_store::{
    KeyRange, ListResult, Member, Object, ObjectKey, Op, ReadConsistency, Revision, StoreError,
    Txn, TxnFailure, TxnOutcome,
};
use serde_json::{json, Map, Value};

use crate::encryption::{self, SecretsKey};
use crate::fanout::Fanouts;
use crate::gc;
use crate::reservations::{self, Picked, Reserved};
use crate::time::{format_rfc3339, name_suffix, new_uid, now_rfc3339, unix_now};

/// The namespaces every cluster has; the first three may not be deleted.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];
const UNDELETABLE_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];
/// How often a write is retried after losing a compare-and-swap race it did not ask for.
const CAS_RETRIES: usize = 8;
/// How often a create or update is retried after a randomly picked address collided.
const PICK_RETRIES: usize = 8;
/// The finalizer that keeps an owner until its dependents are orphaned.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// The finalizer that keeps an owner until its dependents are deleted.
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";
/// The `spec.finalizers` entry of the namespace controller: it empties a deleted namespace,
/// then removes it through the `finalize` subresource.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";
const NAMESPACE_ACTIVE: &str = "Active";
const NAMESPACE_TERMINATING: &str = "Terminating";

/// Which checks an update goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpdateMode {
    /// Kubernetes' update validation (immutable fields included).
    Validated,
    /// A binding: the object is checked as a whole, `spec.nodeName` may be set.
    Binding,
}

/// An admission check the pipeline runs on the final object of a write: the stored object
/// (`None` for a create) and the one about to be stored.
pub(crate) type Admit<'a> =
    &'a (dyn Fn(Option<&Value>, &Value) -> Result<(), ApiError> + Send + Sync);

/// No admission check (the server's own writes: dependents, finalization).
pub(crate) fn admit_all(_: Option<&Value>, _: &Value) -> Result<(), ApiError> {
    Ok(())
}

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub resource_version: Revision,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// What a deletecollection did.
#[derive(Debug, Default)]
pub struct Collected {
    /// The objects deleted (or marked for deletion).
    pub deleted: Vec<Value>,
    /// One line per object that was refused, with why.
    pub refused: Vec<String>,
}

/// The verbs on the store member this master runs.
#[derive(Clone)]
pub struct Storage {
    member: Arc<Member>,
    /// The indexed watch fan-outs (pods by node), started by their first watch.
    fanouts: Arc<Fanouts>,
    /// What Secrets are sealed with in the store.
    secrets: Arc<SecretsKey>,
    /// DefaultTolerationSeconds, applied to every Pod created or updated.
    tolerations: DefaultTolerationSeconds,
    /// Where Services' cluster IPs come from.
    service_range: reservations::ServiceRange,
}

/// Maps a store error to the API's answer.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Expired {
            requested,
            compacted,
        } => ApiError::gone(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        StoreError::Unavailable(m) => {
            let mut e = ApiError::unavailable(format!("the store is unavailable: {m}"));
            e.details.retry_after = Some(1);
            e
        }
        StoreError::Timeout(d) => ApiError::timeout(format!(
            "the store did not answer within {d:?}; the write may or may not have happened"
        )),
        StoreError::InvalidKey(m) => ApiError::bad_request(m),
        other => ApiError::internal(other.to_string()),
    }
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj["metadata"][field].as_str()
}

/// Kinds whose objects are written too often, or by too many, to name the request that
/// made them.
const UNSTAMPED: &[&str] = &["events", "leases"];

/// Records the request's correlation id on a new object, or on one whose spec it changed
/// ([`navarch_model::CORRELATION_ANNOTATION`]).
fn stamp_correlation(kind: &Kind, obj: &mut Value) {
    let Some(id) = navarch_net::trace::current_correlation() else {
        return;
    };
    if UNSTAMPED.contains(&kind.plural) {
        return;
    }
    let m = meta_mut(obj);
    let annotations = m.entry("annotations").or_insert_with(|| json!({}));
    if let Some(a) = annotations.as_object_mut() {
        a.insert(
            navarch_model::CORRELATION_ANNOTATION.to_string(),
            json!(id.to_string()),
        );
    }
}

pub(crate) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// Decodes a stored object and stamps its resourceVersion.
pub fn decode_object(o: &Object) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(&o.value).map_err(|e| {
        ApiError::internal(format!("unable to decode stored object {}: {e}", o.key))
    })?;
    if !v.is_object() {
        return Err(ApiError::internal(format!(
            "unable to decode stored object {}: not a JSON object",
            o.key
        )));
    }
    meta_mut(&mut v).insert(
        "resourceVersion".into(),
        Value::String(o.mod_revision.0.to_string()),
    );
    Ok(v)
}

/// The associated data a sealed value is bound to: its store key.
fn aad(key: &ObjectKey) -> Vec<u8> {
    format!("{}/{}/{}", key.kind, key.namespace, key.name).into_bytes()
}

fn encode_object(v: &Value) -> Vec<u8> {
    let unstored =
        |m: &Map<String, Value>| m.contains_key("resourceVersion") || m.contains_key("selfLink");
    if v["metadata"].as_object().is_some_and(unstored) {
        let mut v = v.clone();
        if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("resourceVersion");
            m.remove("selfLink");
        }
        return serde_json::to_vec(&v).expect("a JSON value serializes");
    }
    serde_json::to_vec(v).expect("a JSON value serializes")
}

fn parse_rv(s: &str) -> Result<Revision, ApiError> {
    s.parse::<u64>().map(Revision).map_err(|_| {
        ApiError::bad_request(format!("invalid resourceVersion {s:?}: must be an integer"))
    })
}

fn spec_of(v: &Value) -> Value {
    let mut s = v.clone();
    if let Some(o) = s.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
        o.remove("kind");
        o.remove("apiVersion");
    }
    s
}

pub(crate) fn key_of(kind: &Kind, ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new(
        kind.store_kind(),
        if kind.namespaced { ns } else { "" },
        name,
    )
}

/// A continue token: the resource and scope it pages, the revision of the first page and
/// the last key returned. A token is only good for the list it came from.
fn encode_continue(kind: &Kind, scope: &str, rev: Revision, ns: &str, name: &str) -> String {
    use base64::Engine;
    let raw = json!({"r": kind.store_kind(), "s": scope, "rv": rev.0, "ns": ns, "name": name})
        .to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(
    kind: &Kind,
    scope: &str,
    token: &str,
) -> Result<(Revision, String, String), ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request("continue key is not valid");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if v["r"].as_str() != Some(kind.store_kind().as_str()) || v["s"].as_str() != Some(scope) {
        return Err(ApiError::bad_request(
            "continue key is not valid: it was issued for another list",
        ));
    }
    Ok((
        Revision(v["rv"].as_u64().ok_or_else(bad)?),
        v["ns"].as_str().ok_or_else(bad)?.to_string(),
        v["name"].as_str().ok_or_else(bad)?.to_string(),
    ))
}

/// Sets the `PodScheduled` condition to `True` (a binding's doing).
fn set_pod_scheduled(pod: &mut Value) {
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    let conds = &mut pod["status"]["conditions"];
    if !conds.is_array() {
        *conds = json!([]);
    }
    let list = conds.as_array_mut().expect("made an array above");
    list.retain(|c| c["type"].as_str() != Some("PodScheduled"));
    list.push(json!({
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": null,
        "lastTransitionTime": now_rfc3339(),
    }));
}

/// Pods bound to a node end gracefully: their node stops them, then deletes them.
fn needs_grace(kind: &Kind, obj: &Value) -> bool {
    kind.kind == "Pod"
        && obj["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
        && !matches!(
            obj["status"]["phase"].as_str(),
            Some("Succeeded") | Some("Failed")
        )
}

fn strip_rv(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    v
}

fn finalizers(obj: &Value) -> Vec<&str> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether only the garbage collector's own finalizers are left on a terminating object.
fn only_gc_finalizers(obj: &Value) -> bool {
    finalizers(obj)
        .iter()
        .all(|f| *f == FINALIZER_ORPHAN || *f == FINALIZER_FOREGROUND)
}

/// A Namespace's `spec.finalizers`: what must empty it before it may go (the namespace
/// controller's `kubernetes` among them).
fn namespace_finalizers(obj: &Value) -> Vec<&str> {
    obj["spec"]["finalizers"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether finalizers other than the garbage collector's hold `obj` when it is deleted: its
/// `metadata.finalizers`, and a Namespace's `spec.finalizers`.
fn held_by_finalizers(kind: &Kind, obj: &Value) -> bool {
    !only_gc_finalizers(obj) || (kind.kind == "Namespace" && !namespace_finalizers(obj).is_empty())
}

/// What a created Namespace starts as (Kubernetes' namespace strategy): `Active`, with the
/// namespace controller's `kubernetes` finalizer among its `spec.finalizers`.
fn prepare_namespace(obj: &mut Value) {
    obj["status"] = json!({"phase": NAMESPACE_ACTIVE});
    let has = namespace_finalizers(obj).contains(&NAMESPACE_FINALIZER);
    if !has {
        if !obj["spec"].is_object() {
            obj["spec"] = json!({});
        }
        match obj["spec"]["finalizers"].as_array_mut() {
            Some(list) => list.push(json!(NAMESPACE_FINALIZER)),
            None => obj["spec"]["finalizers"] = json!([NAMESPACE_FINALIZER]),
        }
    }
}

/// The policy an object's GC finalizers recorded when it was deleted.
fn recorded_policy(obj: &Value) -> Propagation {
    let f = finalizers(obj);
    if f.contains(&FINALIZER_ORPHAN) {
        Propagation::Orphan
    } else if f.contains(&FINALIZER_FOREGROUND) {
        Propagation::Foreground
    } else {
        Propagation::Background
    }
}

/// The object a committed transaction's op `i` left (create and update ops have one).
fn committed(objects: &[Option<Object>], i: usize) -> Result<&Object, ApiError> {
    objects
        .get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| ApiError::internal("the store returned no object for a write"))
}

/// What deleting one object takes (its first op), before anything is written.
#[derive(Clone, Debug)]
enum Removal {
    /// It is marked already as this delete would mark it: nothing to write.
    Unchanged,
    /// It gets (or keeps, shortened) a deletionTimestamp: `object` is what `op` writes.
    Mark { op: Op, object: Value },
    /// It goes now.
    Delete { op: Op },
}

impl Removal {
    /// What a dry run of this removal answers, given the object as it is.
    fn dry_run(&self, current: Value) -> Removed {
        match self {
            Removal::Delete { .. } => Removed::Deleted(current),
            Removal::Mark { object, .. } => Removed::Marked(object.clone()),
            Removal::Unchanged => Removed::Marked(current),
        }
    }
}

/// The outcome of deleting one object, dependents aside.
pub(crate) enum Removed {
    /// The object is gone; this was its last state.
    Deleted(Value),
    /// A grace period or finalizers hold it: it now carries a deletionTimestamp.
    Marked(Value),
}

impl Removed {
    fn object(self) -> Value {
        match self {
            Removed::Deleted(v) | Removed::Marked(v) => v,
        }
    }
}

impl Storage {
    pub fn new(
        member: Arc<Member>,
        tolerations: DefaultTolerationSeconds,
        secrets: Arc<SecretsKey>,
        service_range: reservations::ServiceRange,
    ) -> Self {
        Self {
            member,
            fanouts: Arc::new(Fanouts::default()),
            secrets,
            tolerations,
            service_range,
        }
    }

    /// A cluster IP asked for outside the range (and not already the Service's): 422.
    fn check_cluster_ip(
        &self,
        kind: &Kind,
        name: &str,
        svc: &Value,
        current: Option<&Value>,
    ) -> Result<(), ApiError> {
        let same = current.is_some_and(|c| c["spec"]["clusterIP"] == svc["spec"]["clusterIP"]);
        match reservations::check_cluster_ip(svc, &self.service_range) {
            Err((ip, message)) if !same => Err(Self::invalid(
                kind,
                name,
                vec![Cause::invalid(
                    "spec.clusterIPs",
                    format!("Invalid value: [\"{ip}\"]: {message}"),
                )],
            )),
            _ => Ok(()),
        }
    }

    /// Decodes a stored object, opening it first when its kind is kept encrypted.
    pub(crate) fn decode(&self, o: &Object) -> Result<Value, ApiError> {
        if !encryption::is_sealed(&o.key.kind) {
            return decode_object(o);
        }
        let plain = self.secrets.open(&o.value, &aad(&o.key)).map_err(|e| {
            ApiError::internal(format!("unable to decode stored object {}: {e}", o.key))
        })?;
        decode_object(&Object {
            key: o.key.clone(),
            value: plain,
            create_revision: o.create_revision,
            mod_revision: o.mod_revision,
        })
    }

    /// Encodes an object for the store under `key`, sealed when its kind is kept encrypted.
    fn encode(&self, key: &ObjectKey, v: &Value) -> Vec<u8> {
        let plain = encode_object(v);
        if encryption::is_sealed(&key.kind) {
            self.secrets.seal(&plain, &aad(key))
        } else {
            plain
        }
    }

    /// Where Services' cluster IPs come from.
    pub fn service_range(&self) -> &reservations::ServiceRange {
        &self.service_range
    }

    pub fn member(&self) -> &Arc<Member> {
        &self.member
    }

    pub(crate) fn fanouts(&self) -> &Fanouts {
        &self.fanouts
    }

    /// The current revision of the store as this member has applied it.
    pub fn revision(&self) -> Revision {
        Revision(self.member.status().revision)
    }

    fn not_found(kind: &Kind, name: &str) -> ApiError {
        ApiError::not_found(&kind.qualified_resource(), name).about(kind.plural, kind.group, name)
    }

    fn invalid(kind: &Kind, name: &str, causes: Vec<Cause>) -> ApiError {
        ApiError::invalid(kind.kind, kind.group, name, causes)
    }

    /// A read that waited for a revision this member never reached: Kubernetes answers 504
    /// "Too large resource version" (not a retry-inviting 429).
    fn too_large(&self, requested: Revision, e: StoreError) -> ApiError {
        let current = self.revision();
        if matches!(e, StoreError::Unavailable(_)) && current < requested {
            let mut err = ApiError::timeout(format!(
                "Too large resource version: {requested}, current: {current}"
            ));
            err.details.causes = vec![Cause::new(
                "ResourceVersionTooLarge",
                "",
                "Too large resource version",
            )];
            err.details.retry_after = Some(1);
            return err;
        }
        store_error(e)
    }

    async fn read(
        &self,
        kind: &Kind,
        ns: &str,
        name: &str,
        consistency: ReadConsistency,
    ) -> Result<Option<(Value, Revision)>, ApiError> {
        let key = key_of(kind, ns, name);
        let found = self
            .member
            .get(&key, consistency)
            .await
            .map_err(|e| match consistency {
                ReadConsistency::AtLeast(r) => self.too_large(r, e),
                ReadConsistency::Linearizable => store_error(e),
            })?;
        match found {
            None => Ok(None),
            Some(o) => Ok(Some((self.decode(&o)?, o.mod_revision))),
        }
    }

    async fn key_exists(&self, key: &ObjectKey) -> Result<bool, ApiError> {
        Ok(self
            .member
            .get(key, ReadConsistency::AtLeast(Revision(0)))
            .await
            .map_err(store_error)?
            .is_some())
    }

    /// GET of one object.
    pub async fn get(
        &self,
        kind: &Kind,
        ns: &str,
        name: &str,
        resource_version: Option<&str>,
    ) -> Result<Value, ApiError> {
        let consistency = match resource_version {
            None | Some("") => ReadConsistency::Linearizable,
            Some("0") => ReadConsistency::AtLeast(Revision(0)),
            Some(rv) => ReadConsistency::AtLeast(parse_rv(rv)?),
        };
        match self.read(kind, ns, name, consistency).await? {
            Some((v, _)) => Ok(v),
            None => Err(Self::not_found(kind, name)),
        }
    }

    /// LIST with selectors, paging and resourceVersion semantics.
    pub async fn list(
        &self,
        kind: &Kind,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ListPage, ApiError> {
        let mut start_after: Option<(String, String)> = None;
        let mut consistency = match (
            opts.resource_version.as_deref(),
            opts.resource_version_match.as_deref(),
        ) {
            (None | Some(""), None) => ReadConsistency::Linearizable,
            (None | Some(""), Some(m)) => {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!("resourceVersionMatch: Forbidden: resourceVersionMatch {m:?} is forbidden unless resourceVersion is provided"),
                ))
            }
            (Some("0"), None | Some("NotOlderThan")) => ReadConsistency::AtLeast(Revision(0)),
            (Some(rv), None | Some("NotOlderThan")) => ReadConsistency::AtLeast(parse_rv(rv)?),
            (Some(rv), Some("Exact")) => {
                let want = parse_rv(rv)?;
                let now = self.revision();
                if want > now {
                    return Err(self.too_large(want, StoreError::Unavailable(String::new())));
                }
                if want != now {
                    return Err(ApiError::gone(format!(
                        "resourceVersion {want} is not available for an exact read: navarch serves lists at the current revision ({now}) only"
                    )));
                }
                ReadConsistency::AtLeast(want)
            }
            (Some(_), Some(m)) => {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!("resourceVersionMatch: Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\""),
                ))
            }
        };
        let scope = ns.filter(|_| kind.namespaced).unwrap_or("");
        let mut pinned_revision = None;
        if let Some(token) = opts.continue_token.as_deref().filter(|t| !t.is_empty()) {
            let (rev, cns, cname) = decode_continue(kind, scope, token)?;
            let compacted = Revision(self.member.status().compacted);
            if rev < compacted {
                return Err(ApiError::gone(format!(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. (revision {rev} is compacted, oldest is {compacted})"
                )));
            }
            consistency = ReadConsistency::AtLeast(rev);
            start_after = Some((cns, cname));
            pinned_revision = Some(rev);
        }
        let range = match ns {
            Some(ns) if kind.namespaced => KeyRange::namespaced(kind.store_kind(), ns),
            _ => KeyRange::kind(kind.store_kind()),
        };
        let ListResult { objects, revision } = self
            .member
            .list(&range, consistency)
            .await
            .map_err(|e| match consistency {
                ReadConsistency::AtLeast(r) => self.too_large(r, e),
                ReadConsistency::Linearizable => store_error(e),
            })?;
        let revision = pinned_revision.unwrap_or(revision);
        let mut items = Vec::new();
        let mut continue_token = None;
        let mut remaining = 0u64;
        for o in &objects {
            if let Some((cns, cname)) = &start_after {
                if (o.key.namespace.as_str(), o.key.name.as_str()) <= (cns.as_str(), cname.as_str())
                {
                    continue;
                }
            }
            let v = self.decode(o)?;
            if !opts.label_selector.matches(&v["metadata"]["labels"])
                || !opts.field_selector.matches(&v)
            {
                continue;
            }
            if let Some(limit) = opts.limit.filter(|l| *l > 0) {
                if items.len() >= limit {
                    if continue_token.is_none() {
                        let last: &Value = items.last().expect("limit > 0");
                        continue_token = Some(encode_continue(
                            kind,
                            scope,
                            revision,
                            meta_str(last, "namespace").unwrap_or(""),
                            meta_str(last, "name").unwrap_or(""),
                        ));
                    }
                    remaining += 1;
                    continue;
                }
            }
            items.push(v);
        }
        Ok(ListPage {
            items,
            resource_version: revision,
            remaining: continue_token.as_ref().map(|_| remaining),
            continue_token,
        })
    }

    /// Every object of `kind` (in `ns`, when namespaced and given), unfiltered.
    pub(crate) async fn all(&self, kind: &Kind, ns: Option<&str>) -> Result<Vec<Value>, ApiError> {
        Ok(self.list(kind, ns, &ListOptions::default()).await?.items)
    }

    /// Checks that `ns` exists and is not terminating (Kubernetes' NamespaceLifecycle).
    pub(crate) async fn check_namespace(&self, kind: &Kind, ns: &str) -> Result<(), ApiError> {
        if !kind.namespaced {
            return Ok(());
        }
        let nsk = kinds::lookup("", "v1", "namespaces").expect("namespaces are served");
        // A local read first; a miss is confirmed linearizably (the namespace may have been
        // created through another master a moment ago).
        let mut found = self
            .read(nsk, "", ns, ReadConsistency::AtLeast(Revision(0)))
            .await?;
        if found.is_none() {
            found = self
                .read(nsk, "", ns, ReadConsistency::Linearizable)
                .await?;
        }
        match found {
            None => Err(ApiError::not_found("namespaces", ns).about("namespaces", "", ns)),
            Some((n, _)) if !n["metadata"]["deletionTimestamp"].is_null() => {
                Err(ApiError::forbidden(format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ))
                .about(kind.plural, kind.group, ""))
            }
            Some(_) => Ok(()),
        }
    }

    /// Kubernetes' RuntimeClass admission on a new pod: the RuntimeClass it names must exist
    /// (403 otherwise). Like the namespace, a local miss is confirmed linearizably.
    async fn check_runtime_class(&self, pod: &Value) -> Result<(), ApiError> {
        let Some(class) = admission::runtime_class_to_check(pod) else {
            return Ok(());
        };
        let rck = kinds::lookup("node.k8s.io", "v1", "runtimeclasses")
            .expect("runtimeclasses are served");
        for consistency in [
            ReadConsistency::AtLeast(Revision(0)),
            ReadConsistency::Linearizable,
        ] {
            if self.read(rck, "", class, consistency).await?.is_some() {
                return Ok(());
            }
        }
        tracing::debug!(
            pod = meta_str(pod, "name").unwrap_or(""),
            runtime_class = class,
            "pod refused: its RuntimeClass does not exist"
        );
        Err(admission::runtime_class_not_found(pod, class))
    }

    /// Kubernetes' ServiceAccount admission on a new pod: its account must exist (403
    /// otherwise; a local miss is confirmed linearizably), then
    /// [`admission::admit_service_account`] defaults it and projects its token. The one
    /// exception is a `default` account not created yet (a namespace a moment old, whose
    /// account the controller is about to add): the pod is admitted, and its kubelet gets
    /// no token until the account exists.
    async fn admit_service_account(
        &self,
        kind: &Kind,
        ns: &str,
        name: &str,
        mut pod: Value,
    ) -> Result<Value, ApiError> {
        let account = admission::service_account_of(&pod).to_string();
        let sak = kinds::lookup("", "v1", "serviceaccounts").expect("serviceaccounts are served");
        let mut found = None;
        for consistency in [
            ReadConsistency::AtLeast(Revision(0)),
            ReadConsistency::Linearizable,
        ] {
            if let Some((sa, _)) = self.read(sak, ns, &account, consistency).await? {
                found = Some(sa);
                break;
            }
        }
        if found.is_none() && account != "default" {
            tracing::debug!(pod = name, account = %account, "pod refused: its service account does not exist");
            return Err(admission::service_account_not_found(&pod, ns, &account));
        }
        admission::admit_service_account(&mut pod, found.as_ref(), &name_suffix());
        let causes = validate::validate_create(kind, &pod);
        if !causes.is_empty() {
            return Err(Self::invalid(kind, name, causes));
        }
        Ok(pod)
    }

    /// Checks `apiVersion`/`kind` of a body and sets them when absent.
    fn check_type(kind: &Kind, body: &mut Value) -> Result<(), ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let api_version = kind.api_version();
        let expect_kind = kind.kind;
        match body["kind"].as_str() {
            None | Some("") => body["kind"] = json!(expect_kind),
            Some(k) if k == expect_kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the body kind {k:?} does not match the resource's kind {expect_kind:?}"
                )))
            }
        }
        match body["apiVersion"].as_str() {
            None | Some("") => body["apiVersion"] = json!(api_version),
            Some(v) if v == api_version => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )))
            }
        }
        Ok(())
    }

    fn check_namespace_field(kind: &Kind, ns: &str, body: &mut Value) -> Result<(), ApiError> {
        let m = meta_mut(body);
        if kind.namespaced {
            match m.get("namespace").and_then(Value::as_str) {
                None | Some("") => {
                    m.insert("namespace".into(), json!(ns));
                }
                Some(n) if n == ns => {}
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
            }
        } else {
            m.remove("namespace");
        }
        Ok(())
    }

    /// Decodes and defaults a body, then runs the mutating admission plugins on it
    /// (DefaultTolerationSeconds for Pods); returns the object and warnings.
    fn admit(
        &self,
        kind: &Kind,
        body: &Value,
        mode: FieldValidation,
        name: &str,
    ) -> Result<(Value, Vec<String>), ApiError> {
        let decoded =
            validate::decode(kind, body, mode).map_err(|c| Self::invalid(kind, name, c))?;
        let mut obj = decoded.object;
        validate::default(kind, &mut obj);
        if kind.kind == "Pod" {
            self.tolerations.admit(&mut obj);
        }
        Ok((obj, decoded.warnings))
    }

    /// Turns a POST body into the object to store: type and namespace checked, name
    /// generated, decoded, defaulted, server metadata set, validated. Nothing is written.
    pub(crate) fn prepare_create(
        &self,
        kind: &Kind,
        ns: &str,
        mut body: Value,
        opts: &WriteOptions,
    ) -> Result<(Value, Vec<String>), ApiError> {
        Self::check_type(kind, &mut body)?;
        Self::check_namespace_field(kind, ns, &mut body)?;
        {
            let m = meta_mut(&mut body);
            let name = m.get("name").and_then(Value::as_str).unwrap_or("");
            if name.is_empty() {
                if let Some(g) = m
                    .get("generateName")
                    .and_then(Value::as_str)
                    .filter(|g| !g.is_empty())
                {
                    let n = format!("{g}{}", name_suffix());
                    m.insert("name".into(), json!(n));
                }
            }
        }
        let name = meta_str(&body, "name").unwrap_or("").to_string();
        let (mut obj, warnings) = self.admit(kind, &body, opts.field_validation, &name)?;
        {
            let m = meta_mut(&mut obj);
            m.insert("uid".into(), json!(new_uid()));
            m.insert("creationTimestamp".into(), json!(now_rfc3339()));
            m.insert("generation".into(), json!(1));
            for f in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
                "selfLink",
            ] {
                m.remove(f);
            }
        }
        if kind.kind == "Namespace" {
            prepare_namespace(&mut obj);
        } else if kind.has_subresource("status") && kind.kind != "Node" {
            // Status belongs to controllers and nodes: a create starts from the defaults.
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
            validate::default(kind, &mut obj);
        }
        let causes = validate::validate_create(kind, &obj);
        if !causes.is_empty() {
            return Err(Self::invalid(kind, &name, causes));
        }
        Ok((obj, warnings))
    }

    /// POST: creates an object prepared by [`prepare_create`](Self::prepare_create).
    pub(crate) async fn create(
        &self,
        kind: &Kind,
        ns: &str,
        obj: Value,
        opts: &WriteOptions,
        admit: Admit<'_>,
    ) -> Result<Value, ApiError> {
        let name = meta_str(&obj, "name").unwrap_or("").to_string();
        let mut obj = obj;
        stamp_correlation(kind, &mut obj);
        // Namespace lifecycle first: the ServiceAccount admission reads in the namespace.
        self.check_namespace(kind, ns).await?;
        if kind.kind == "Pod" {
            obj = self.admit_service_account(kind, ns, &name, obj).await?;
        }
        admit(None, &obj)?;
        if kind.kind == "Pod" {
            self.check_runtime_class(&obj).await?;
        }
        for _ in 0..PICK_RETRIES {
            let mut obj = obj.clone();
            let mut ops = Vec::new();
            let mut picked = Picked::default();
            if kind.kind == "Service" {
                self.check_cluster_ip(kind, &name, &obj, None)?;
                picked = reservations::allocate(&mut obj, None, &self.service_range);
                for key in Reserved::of(&obj).keys {
                    ops.push(Op::Create {
                        key,
                        value: b"{}".to_vec(),
                    });
                }
            }
            if opts.dry_run {
                return Ok(obj);
            }
            let key = key_of(kind, ns, &name);
            ops.push(Op::Create {
                value: self.encode(&key, &obj),
                key,
            });
            let last = ops.len() - 1;
            match self.write(ops).await? {
                TxnOutcome::Committed { objects, .. } => {
                    // The stored bytes are `obj`'s; only the revision is new.
                    let rev = committed(&objects, last)?.mod_revision;
                    meta_mut(&mut obj).insert("resourceVersion".into(), json!(rev.0.to_string()));
                    return Ok(obj);
                }
                TxnOutcome::Refused { op_index, failure } => {
                    if let TxnFailure::AlreadyExists { key } = &failure {
                        if picked.keys.contains(key) {
                            continue;
                        }
                        if op_index == last {
                            return Err(ApiError::already_exists(
                                &kind.qualified_resource(),
                                &name,
                            )
                            .about(kind.plural, kind.group, &name));
                        }
                    }
                    return Err(self.refused(kind, &name, failure));
                }
            }
        }
        Err(ApiError::internal(format!(
            "could not allocate free addresses for {} {name:?} after {PICK_RETRIES} attempts",
            kind.qualified_resource()
        )))
    }

    fn refused(&self, kind: &Kind, name: &str, failure: TxnFailure) -> ApiError {
        match failure {
            TxnFailure::AlreadyExists { key } if key.kind == reservations::SERVICE_IPS => {
                ApiError::invalid(
                    kind.kind,
                    kind.group,
                    name,
                    vec![Cause::invalid(
                        "spec.clusterIPs",
                        format!(
                            "Invalid value: {:?}: provided IP is already allocated",
                            key.name
                        ),
                    )],
                )
            }
            TxnFailure::AlreadyExists { key } if key.kind == reservations::NODE_PORTS => {
                ApiError::invalid(
                    kind.kind,
                    kind.group,
                    name,
                    vec![Cause::invalid(
                        "spec.ports[].nodePort",
                        format!(
                            "Invalid value: {}: provided port is already allocated",
                            key.name
                        ),
                    )],
                )
            }
            TxnFailure::AlreadyExists { .. } => ApiError::already_exists(
                &kind.qualified_resource(),
                name,
            )
            .about(kind.plural, kind.group, name),
            TxnFailure::NotFound { .. } => Self::not_found(kind, name),
            TxnFailure::Conflict { .. } => ApiError::stale(&kind.qualified_resource(), name).about(
                kind.plural,
                kind.group,
                name,
            ),
            TxnFailure::Fenced { term, current } => ApiError::conflict(
                &kind.qualified_resource(),
                name,
                &format!(
                    "the control plane of term {term} is not active any more (the store is in term {current})"
                ),
            ),
        }
    }

    async fn write(&self, ops: Vec<Op>) -> Result<TxnOutcome, ApiError> {
        let txn = Txn::new(ops).fenced(crate::fence::current());
        self.member.write(txn).await.map_err(store_error)
    }

    /// The ops that move a Service's reservations from `old` to `new` (creating what `new`
    /// newly holds, releasing what it gave up and is still reserved).
    async fn reservation_ops(
        &self,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> Result<Vec<Op>, ApiError> {
        let old = old.map(Reserved::of).unwrap_or_default();
        let new = new.map(Reserved::of).unwrap_or_default();
        let (create, release) = reservations::changes(&old, &new);
        let mut ops: Vec<Op> = create
            .into_iter()
            .map(|key| Op::Create {
                key,
                value: b"{}".to_vec(),
            })
            .collect();
        for key in release {
            // A Service stored before reservations followed every write may lack its key.
            if self.key_exists(&key).await? {
                ops.push(Op::Delete {
                    key,
                    expected: None,
                });
            }
        }
        Ok(ops)
    }

    /// The read-modify-write loop behind update, patch and the subresources: reads the current
    /// object, lets `change` compute the new one, and writes it if the object did not move in
    /// between (retrying otherwise, unless the caller pinned a resourceVersion).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn guaranteed_update<F>(
        &self,
        kind: &Kind,
        ns: &str,
        name: &str,
        opts: &WriteOptions,
        mode: UpdateMode,
        admit: Admit<'_>,
        mut change: F,
    ) -> Result<(Value, Vec<String>), ApiError>
    where
        F: FnMut(&Value) -> Result<(Value, Vec<String>), ApiError>,
    {
        let mut picks = 0;
        let mut attempt = 0;
        while attempt < CAS_RETRIES {
            let consistency = if attempt == 0 {
                ReadConsistency::AtLeast(Revision(0))
            } else {
                ReadConsistency::Linearizable
            };
            attempt += 1;
            let Some((current, rev)) = self.read(kind, ns, name, consistency).await? else {
                return Err(Self::not_found(kind, name));
            };
            let (mut new, warnings) = change(&current)?;
            // A resourceVersion in the new object is a precondition.
            let pinned = match meta_str(&new, "resourceVersion") {
                Some(rv) if !rv.is_empty() => {
                    if parse_rv(rv)? != rev {
                        if attempt == 1 {
                            // This member may not have applied the caller's revision yet:
                            // decide on a linearizable read.
                            continue;
                        }
                        return Err(ApiError::stale(&kind.qualified_resource(), name).about(
                            kind.plural,
                            kind.group,
                            name,
                        ));
                    }
                    true
                }
                _ => false,
            };
            self.finish_update(kind, &current, &mut new)?;
            let mut picked = Picked::default();
            if kind.kind == "Service" {
                self.check_cluster_ip(kind, name, &new, Some(&current))?;
                picked = reservations::allocate(&mut new, Some(&current), &self.service_range);
            }
            if strip_rv(&new) == strip_rv(&current) {
                return Ok((current, warnings));
            }
            admit(Some(&current), &new)?;
            let causes = match mode {
                UpdateMode::Validated => validate::validate_update(kind, &current, &new),
                // The binding subresource owns spec.nodeName, which updates may not change.
                UpdateMode::Binding => validate::validate_create(kind, &new),
            };
            if !causes.is_empty() {
                return Err(Self::invalid(kind, name, causes));
            }
            if opts.dry_run {
                return Ok((new, warnings));
            }
            let key = key_of(kind, ns, name);
            // The last finalizer of an object being deleted is gone: the object goes (after
            // the dependents, as the policy recorded at deletion says).
            let finalized =
                !new["metadata"]["deletionTimestamp"].is_null() && !held_by_finalizers(kind, &new);
            if finalized && !needs_grace(kind, &new) {
                let policy = recorded_policy(&new);
                if policy != Propagation::Background {
                    Box::pin(gc::before_owner_goes(self, kind, &current, policy)).await?;
                }
                let mut ops = vec![Op::Delete {
                    key,
                    expected: Some(rev),
                }];
                if kind.kind == "Service" {
                    ops.extend(self.reservation_ops(Some(&current), None).await?);
                }
                match self.write(ops).await? {
                    TxnOutcome::Committed { .. } => {
                        if policy == Propagation::Background {
                            Box::pin(gc::after_owner_gone(self, kind, &current)).await?;
                        }
                        return Ok((new, warnings));
                    }
                    TxnOutcome::Refused {
                        failure: TxnFailure::Conflict { .. },
                        ..
                    } if !pinned => continue,
                    TxnOutcome::Refused { failure, .. } => {
                        return Err(self.refused(kind, name, failure))
                    }
                }
            }
            let mut ops = Vec::new();
            if kind.kind == "Service" {
                ops.extend(self.reservation_ops(Some(&current), Some(&new)).await?);
            }
            ops.push(Op::Update {
                value: self.encode(&key, &new),
                key,
                expected: Some(rev),
            });
            let last = ops.len() - 1;
            match self.write(ops).await? {
                TxnOutcome::Committed { objects, .. } => {
                    let rev = committed(&objects, last)?.mod_revision;
                    meta_mut(&mut new).insert("resourceVersion".into(), json!(rev.0.to_string()));
                    return Ok((new, warnings));
                }
                TxnOutcome::Refused {
                    failure: TxnFailure::AlreadyExists { key },
                    ..
                } if picked.keys.contains(&key) && picks < PICK_RETRIES => {
                    picks += 1;
                    attempt -= 1;
                    continue;
                }
                TxnOutcome::Refused {
                    failure: TxnFailure::Conflict { .. },
                    ..
                } if !pinned => continue,
                TxnOutcome::Refused { failure, .. } => {
                    return Err(self.refused(kind, name, failure))
                }
            }
        }
        Err(ApiError::stale(&kind.qualified_resource(), name).about(kind.plural, kind.group, name))
    }

    /// Server-owned metadata is kept from the current object; generation follows the spec.
    fn finish_update(&self, kind: &Kind, current: &Value, new: &mut Value) -> Result<(), ApiError> {
        let cur = current["metadata"].clone();
        let name = cur["name"].as_str().unwrap_or("");
        if let Some(n) = meta_str(new, "name") {
            if n != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        let m = meta_mut(new);
        m.insert("name".into(), cur["name"].clone());
        if kind.namespaced {
            m.insert("namespace".into(), cur["namespace"].clone());
        }
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match cur.get(f) {
                Some(v) if !v.is_null() => {
                    m.insert(f.into(), v.clone());
                }
                _ => {
                    m.remove(f);
                }
            }
        }
        m.remove("managedFields");
        m.remove("selfLink");
        let generation = cur["generation"].as_i64().unwrap_or(1);
        let bumped = if spec_of(current) != spec_of(new) {
            generation + 1
        } else {
            generation
        };
        meta_mut(new).insert("generation".into(), json!(bumped));
        meta_mut(new).remove("resourceVersion");
        // The correlation id names the request behind the object's current spec: a spec
        // change takes the updating request's, anything else keeps the one it had.
        let key = navarch_model::CORRELATION_ANNOTATION;
        match &cur["annotations"][key] {
            Value::String(id) => {
                let annotations = meta_mut(new)
                    .entry("annotations")
                    .or_insert_with(|| json!({}));
                if !annotations.is_object() {
                    *annotations = json!({});
                }
                annotations[key] = json!(id);
            }
            _ => {
                if let Some(a) = new["metadata"]["annotations"].as_object_mut() {
                    a.remove(key);
                }
            }
        }
        if bumped != generation {
            stamp_correlation(kind, new);
        }
        Ok(())
    }

    /// PUT of the main resource (`sub = None`), of `status`, `scale`, or a Namespace's
    /// `finalize` (only the body's `spec.finalizers` is taken).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn update(
        &self,
        kind: &Kind,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        mut body: Value,
        opts: &WriteOptions,
        admit: Admit<'_>,
    ) -> Result<(Value, Vec<String>), ApiError> {
        if sub == Some("scale") {
            return self.update_scale(kind, ns, name, body, opts, admit).await;
        }
        Self::check_type(kind, &mut body)?;
        Self::check_namespace_field(kind, ns, &mut body)?;
        if let Some(n) = meta_str(&body, "name") {
            if n != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        let (admitted, warnings) = self.admit(kind, &body, opts.field_validation, name)?;
        let rv = meta_str(&body, "resourceVersion").map(str::to_string);
        self.guaranteed_update(
            kind,
            ns,
            name,
            opts,
            UpdateMode::Validated,
            admit,
            |current| {
                let mut new = admitted.clone();
                if let Some(rv) = &rv {
                    meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
                }
                Ok((
                    Self::split_status(kind, sub, current, new),
                    warnings.clone(),
                ))
            },
        )
        .await
    }

    /// Keeps the part of the object a request may not change: the status on the main
    /// resource (and a Namespace's `spec.finalizers`), everything but the status on
    /// `/status`, everything but `spec.finalizers` on a Namespace's `/finalize` (Kubernetes'
    /// namespace strategies).
    fn split_status(kind: &Kind, sub: Option<&str>, current: &Value, mut new: Value) -> Value {
        if !kind.has_subresource("status") {
            return new;
        }
        let from_current = |new: &Value, take: &dyn Fn(&mut Value)| {
            let mut out = current.clone();
            take(&mut out);
            match meta_str(new, "resourceVersion") {
                Some(rv) => {
                    meta_mut(&mut out).insert("resourceVersion".into(), json!(rv));
                }
                None => {
                    meta_mut(&mut out).remove("resourceVersion");
                }
            }
            out
        };
        match sub {
            Some("status") => {
                let status = new["status"].take();
                from_current(&new, &|out| out["status"] = status.clone())
            }
            Some("finalize") => {
                // An absent list is an empty one: the namespace is finalized.
                let finalizers = match new["spec"]["finalizers"].take() {
                    Value::Null => json!([]),
                    f => f,
                };
                from_current(&new, &|out| {
                    if !out["spec"].is_object() {
                        out["spec"] = json!({});
                    }
                    out["spec"]["finalizers"] = finalizers.clone();
                })
            }
            _ => {
                match current.get("status") {
                    Some(s) if !s.is_null() => new["status"] = s.clone(),
                    _ => {
                        if let Some(o) = new.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
                if kind.kind == "Namespace" {
                    // Only `finalize` changes what must empty a namespace.
                    let kept = current["spec"]["finalizers"].clone();
                    if !new["spec"].is_object() {
                        new["spec"] = json!({});
                    }
                    match kept {
                        Value::Null => {
                            if let Some(spec) = new["spec"].as_object_mut() {
                                spec.remove("finalizers");
                            }
                        }
                        f => new["spec"]["finalizers"] = f,
                    }
                }
                new
            }
        }
    }

    /// PATCH of the main resource, `status` or `scale`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn patch(
        &self,
        kind: &Kind,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        request: Patch,
        opts: &WriteOptions,
        admit: Admit<'_>,
    ) -> Result<(Value, Vec<String>), ApiError> {
        let Patch { ty, body: patch } = request;
        if ty == PatchType::Apply {
            return Err(ApiError::unsupported_media_type(
                "application/apply-patch+yaml (server-side apply is not supported by navarch; use client-side kubectl apply)",
            ));
        }
        let patch_err = ApiError::from;
        if sub == Some("scale") {
            let result = self
                .guaranteed_update(
                    kind,
                    ns,
                    name,
                    opts,
                    UpdateMode::Validated,
                    admit,
                    |current| {
                        let scale = to_scale(current)?;
                        let patched =
                            patch::apply("Scale", &scale, &patch, ty).map_err(patch_err)?;
                        let new = apply_scale(current, &patched)?;
                        Ok((new, Vec::new()))
                    },
                )
                .await?;
            return Ok((to_scale(&result.0)?, result.1));
        }
        let fv = opts.field_validation;
        self.guaranteed_update(
            kind,
            ns,
            name,
            opts,
            UpdateMode::Validated,
            admit,
            |current| {
                let mut patched =
                    patch::apply(kind.kind, current, &patch, ty).map_err(patch_err)?;
                // The patch may pin a resourceVersion; otherwise the one read is not a precondition.
                let pinned = patch["metadata"]["resourceVersion"]
                    .as_str()
                    .map(str::to_string);
                Self::check_type(kind, &mut patched)?;
                let (mut admitted, warnings) = self.admit(kind, &patched, fv, name)?;
                match pinned {
                    Some(rv) => {
                        meta_mut(&mut admitted).insert("resourceVersion".into(), json!(rv));
                    }
                    None => {
                        meta_mut(&mut admitted).remove("resourceVersion");
                    }
                }
                Ok((Self::split_status(kind, sub, current, admitted), warnings))
            },
        )
        .await
    }

    /// GET of a `scale` subresource.
    pub async fn get_scale(&self, kind: &Kind, ns: &str, name: &str) -> Result<Value, ApiError> {
        let obj = self.get(kind, ns, name, None).await?;
        to_scale(&obj)
    }

    async fn update_scale(
        &self,
        kind: &Kind,
        ns: &str,
        name: &str,
        mut body: Value,
        opts: &WriteOptions,
        admit: Admit<'_>,
    ) -> Result<(Value, Vec<String>), ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        match body["kind"].as_str() {
            None | Some("") | Some("Scale") => body["kind"] = json!("Scale"),
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the body kind {k:?} is not Scale"
                )))
            }
        }
        let (obj, w) = self
            .guaranteed_update(
                kind,
                ns,
                name,
                opts,
                UpdateMode::Validated,
                admit,
                |current| {
                    let mut new = apply_scale(current, &body)?;
                    if let Some(rv) = meta_str(&body, "resourceVersion") {
                        meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
                    }
                    Ok((new, Vec::new()))
                },
            )
            .await?;
        Ok((to_scale(&obj)?, w))
    }

    /// POST `pods/<name>/binding`: assigns the pod to a node, once.
    pub async fn bind(&self, ns: &str, name: &str, mut body: Value) -> Result<Value, ApiError> {
        let pods = kinds::lookup("", "v1", "pods").expect("pods are served");
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of a binding must be a Binding object",
            ));
        }
        if body["kind"].is_null() {
            body["kind"] = json!("Binding");
        }
        if body["kind"] != "Binding" {
            return Err(ApiError::bad_request(
                "the body of a binding must be a Binding",
            ));
        }
        if !(body["target"].is_object() || body["target"].is_null()) {
            return Err(ApiError::bad_request(
                "the target of a binding must be an object reference",
            ));
        }
        let node = body["target"]["name"].as_str().unwrap_or("").to_string();
        if node.is_empty() {
            return Err(ApiError::invalid(
                "Binding",
                "",
                name,
                vec![Cause::required("target.name")],
            ));
        }
        if let Some(k) = body["target"]["kind"].as_str() {
            if !k.is_empty() && k != "Node" {
                return Err(ApiError::invalid(
                    "Binding",
                    "",
                    name,
                    vec![Cause::not_supported("target.kind", "must be Node")],
                ));
            }
        }
        self.guaranteed_update(
            pods,
            ns,
            name,
            &WriteOptions::default(),
            UpdateMode::Binding,
            &admit_all,
            |current| {
                if !current["metadata"]["deletionTimestamp"].is_null() {
                    return Err(ApiError::conflict(
                        "pods",
                        name,
                        "pod is being deleted, cannot be assigned to a host",
                    ));
                }
                match current["spec"]["nodeName"].as_str() {
                    Some(n) if !n.is_empty() => Err(ApiError::conflict(
                        "pods/binding",
                        name,
                        &format!("pod {name} is already assigned to node {n:?}"),
                    )),
                    _ => {
                        let mut new = current.clone();
                        new["spec"]["nodeName"] = json!(node);
                        meta_mut(&mut new).remove("resourceVersion");
                        // As kube-apiserver's binding does: the pod is now scheduled.
                        set_pod_scheduled(&mut new);
                        Ok((new, Vec::new()))
                    }
                }
            },
        )
        .await?;
        Ok(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        )
    }

    /// POST `pods/<name>/eviction`: deletes the pod unless a PodDisruptionBudget covering it
    /// forbids (Kubernetes' eviction REST semantics, `navarch_model::pdb::evict`). The
    /// budget's status is computed afresh from the namespace's pods and controllers
    /// (`navarch_model::pdb::status`) and the charged budget is written in the transaction
    /// that deletes or marks the pod, both compare-and-swap on what was read: two evictions
    /// cannot spend the same disruption, and one that lost the race decides again.
    pub async fn evict(
        &self,
        ns: &str,
        name: &str,
        body: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let pods = kinds::lookup("", "v1", "pods").expect("pods are served");
        let budgets = kinds::lookup("policy", "v1", "poddisruptionbudgets")
            .expect("poddisruptionbudgets are served");
        let mut opts = eviction_options(name, &body)?;
        opts.dry_run |= dry_run;
        let policy = opts.propagation_policy.unwrap_or(Propagation::Background);
        for _ in 0..CAS_RETRIES {
            let Some((current, rev)) = self
                .read(pods, ns, name, ReadConsistency::Linearizable)
                .await?
            else {
                return Err(Self::not_found(pods, name));
            };
            self.check_preconditions(pods, name, &current, &opts)?;
            let charged = self.charge_budget(ns, &current).await?;
            let mut marked = current.clone();
            if !opts.dry_run {
                add_disruption_target(&mut marked);
            }
            let step = self.plan_removal(pods, ns, name, &marked, rev, &opts, policy);
            if opts.dry_run {
                return Ok(eviction_success());
            }
            let mut ops = Vec::new();
            match &step {
                // Marked already: the eviction has nothing to delete.
                Removal::Unchanged => {}
                Removal::Mark { op, .. } | Removal::Delete { op } => ops.push(op.clone()),
            }
            if let Some((budget, budget_rev)) = &charged {
                let bname = meta_str(budget, "name").unwrap_or("");
                let key = key_of(budgets, ns, bname);
                ops.push(Op::Update {
                    value: self.encode(&key, budget),
                    key,
                    expected: Some(*budget_rev),
                });
            }
            if ops.is_empty() {
                return Ok(eviction_success());
            }
            match self.write(ops).await? {
                TxnOutcome::Committed { .. } => {
                    if matches!(step, Removal::Delete { .. }) {
                        match policy {
                            Propagation::Orphan => {
                                gc::orphan_dependents(self, pods, &current).await?
                            }
                            _ => gc::after_owner_gone(self, pods, &current).await?,
                        }
                    }
                    return Ok(eviction_success());
                }
                TxnOutcome::Refused {
                    failure: TxnFailure::Conflict { .. } | TxnFailure::NotFound { .. },
                    op_index,
                } => {
                    // The pod or the budget moved: decide again on what they are now.
                    tracing::debug!(pod = name, op_index, "eviction raced another write");
                    continue;
                }
                TxnOutcome::Refused { failure, .. } => {
                    return Err(self.refused(pods, name, failure))
                }
            }
        }
        Err(ApiError::timeout(format!(
            "couldn't evict pod {name:?}: the pod or its PodDisruptionBudget kept changing"
        )))
    }

    /// The budget an eviction of `pod` charges, with the revision it was read at: `None`
    /// when the pod ignores budgets or none covers it, the refusal when the covering budget
    /// allows no disruption (or several cover it). The budget's status is computed afresh,
    /// as the disruption controller would see the namespace now.
    async fn charge_budget(
        &self,
        ns: &str,
        pod: &Value,
    ) -> Result<Option<(Value, Revision)>, ApiError> {
        if pdb::ignores_budgets(pod) {
            return Ok(None);
        }
        let budgets = kinds::lookup("policy", "v1", "poddisruptionbudgets")
            .expect("poddisruptionbudgets are served");
        let mut covering: Vec<(Value, Revision)> = Vec::new();
        for b in self.all(budgets, Some(ns)).await? {
            if pdb::selects(&b, pod) {
                let rev = parse_rv(meta_str(&b, "resourceVersion").unwrap_or(""))?;
                covering.push((b, rev));
            }
        }
        let now = unix_now();
        if let [(budget, _)] = covering.as_mut_slice() {
            let pods = kinds::lookup("", "v1", "pods").expect("pods are served");
            let namespace_pods = self.all(pods, Some(ns)).await?;
            let mut controllers = Vec::new();
            for plural in ["replicasets", "deployments"] {
                let k = kinds::lookup("apps", "v1", plural).expect("apps are served");
                controllers.extend(self.all(k, Some(ns)).await?);
            }
            let observed = pdb::Observed {
                pods: &namespace_pods,
                controllers: &controllers,
                now,
            };
            budget["status"] = pdb::status(budget, &observed).status;
        }
        let candidates: Vec<Value> = covering.iter().map(|(b, _)| b.clone()).collect();
        match pdb::evict(pod, &candidates, now) {
            Eviction::Refuse(e) => Err(e),
            Eviction::Delete => Ok(None),
            Eviction::DeleteAndCharge(budget) => Ok(Some((budget, covering[0].1))),
        }
    }

    /// DELETE of one object, with graceful pod deletion, finalizers, preconditions and
    /// propagation to dependents (ownerReferences).
    pub async fn delete(
        &self,
        kind: &Kind,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        opts.check()?;
        if kind.kind == "Namespace" && UNDELETABLE_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespace \"{name}\" is forbidden: this namespace may not be deleted"
            ))
            .about("namespaces", "", name));
        }
        let policy = opts.propagation_policy.unwrap_or(Propagation::Background);
        if policy == Propagation::Foreground && !opts.dry_run {
            // The dependents go first; a finalizer or a grace period of the owner itself is
            // honoured below.
            let Some((current, _)) = self
                .read(kind, ns, name, ReadConsistency::Linearizable)
                .await?
            else {
                return Err(Self::not_found(kind, name));
            };
            self.check_preconditions(kind, name, &current, opts)?;
            if finalizers(&current)
                .iter()
                .all(|f| *f == FINALIZER_FOREGROUND)
            {
                gc::before_owner_goes(self, kind, &current, Propagation::Foreground).await?;
            }
        }
        let removed = self.delete_one(kind, ns, name, opts, policy).await?;
        if let Removed::Deleted(obj) = &removed {
            if policy == Propagation::Background && !opts.dry_run {
                gc::after_owner_gone(self, kind, obj).await?;
            }
            if policy == Propagation::Orphan && !opts.dry_run {
                gc::orphan_dependents(self, kind, obj).await?;
            }
        }
        Ok(removed.object())
    }

    fn check_preconditions(
        &self,
        kind: &Kind,
        name: &str,
        current: &Value,
        opts: &DeleteOptions,
    ) -> Result<(), ApiError> {
        let uid = meta_str(current, "uid").unwrap_or("");
        if let Some(want) = &opts.precondition_uid {
            if want != uid {
                return Err(ApiError::conflict(
                    &kind.qualified_resource(),
                    name,
                    &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
                )
                .about(kind.plural, kind.group, name));
            }
        }
        if let Some(want) = &opts.precondition_resource_version {
            let rev = meta_str(current, "resourceVersion").unwrap_or("");
            if parse_rv(want)?.0.to_string() != rev {
                return Err(ApiError::conflict(
                    &kind.qualified_resource(),
                    name,
                    &format!("Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rev}"),
                )
                .about(kind.plural, kind.group, name));
            }
        }
        Ok(())
    }

    /// Deletes one object, its dependents aside: marks it when a grace period or finalizers
    /// hold it (recording a non-background `policy` as the garbage collector's finalizer, so
    /// it is kept until the object really goes), deletes it otherwise.
    pub(crate) async fn delete_one(
        &self,
        kind: &Kind,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
        policy: Propagation,
    ) -> Result<Removed, ApiError> {
        for _ in 0..CAS_RETRIES {
            let Some((current, rev)) = self
                .read(kind, ns, name, ReadConsistency::Linearizable)
                .await?
            else {
                return Err(Self::not_found(kind, name));
            };
            self.check_preconditions(kind, name, &current, opts)?;
            let mut ops = Vec::new();
            let step = self.plan_removal(kind, ns, name, &current, rev, opts, policy);
            match &step {
                Removal::Unchanged => return Ok(Removed::Marked(current)),
                _ if opts.dry_run => return Ok(step.dry_run(current)),
                Removal::Mark { op, .. } => ops.push(op.clone()),
                Removal::Delete { op } => {
                    ops.push(op.clone());
                    if kind.kind == "Service" {
                        ops.extend(self.reservation_ops(Some(&current), None).await?);
                    }
                }
            }
            match self.write(ops).await? {
                TxnOutcome::Committed { objects, .. } => {
                    return match step {
                        Removal::Mark { .. } => {
                            Ok(Removed::Marked(self.decode(committed(&objects, 0)?)?))
                        }
                        _ => Ok(Removed::Deleted(current)),
                    }
                }
                TxnOutcome::Refused {
                    failure: TxnFailure::Conflict { .. },
                    ..
                } => continue,
                TxnOutcome::Refused { failure, .. } => {
                    return Err(self.refused(kind, name, failure))
                }
            }
        }
        Err(ApiError::stale(&kind.qualified_resource(), name).about(kind.plural, kind.group, name))
    }

    /// What deleting `current` (at revision `rev`) takes, written as the first op: marking it
    /// with a deletionTimestamp when a grace period or finalizers hold it, or deleting it.
    #[allow(clippy::too_many_arguments)]
    fn plan_removal(
        &self,
        kind: &Kind,
        ns: &str,
        name: &str,
        current: &Value,
        rev: Revision,
        opts: &DeleteOptions,
        policy: Propagation,
    ) -> Removal {
        let has_finalizers = held_by_finalizers(kind, current);
        let grace = if needs_grace(kind, current) {
            opts.grace_period_seconds
                .or_else(|| current["spec"]["terminationGracePeriodSeconds"].as_i64())
                .unwrap_or(30)
        } else {
            0
        };
        if !(has_finalizers || grace > 0) {
            return Removal::Delete {
                op: Op::Delete {
                    key: key_of(kind, ns, name),
                    expected: Some(rev),
                },
            };
        }
        // Graceful or finalized: mark the object and let its node or finalizer owner end it.
        let already = !current["metadata"]["deletionTimestamp"].is_null();
        let mut new = current.clone();
        let m = meta_mut(&mut new);
        if !already
            || grace
                < m.get("deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(i64::MAX)
        {
            m.insert(
                "deletionTimestamp".into(),
                json!(format_rfc3339(unix_now() + grace)),
            );
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            m.insert(
                "generation".into(),
                json!(current["metadata"]["generation"].as_i64().unwrap_or(1) + 1),
            );
        }
        if kind.kind == "Namespace" {
            // Kubernetes' namespace storage: a deleted namespace is Terminating until its
            // finalizers are done.
            if !new["status"].is_object() {
                new["status"] = json!({});
            }
            new["status"]["phase"] = json!(NAMESPACE_TERMINATING);
        }
        let m = meta_mut(&mut new);
        let gc_finalizer = match policy {
            Propagation::Orphan if has_finalizers => Some(FINALIZER_ORPHAN),
            Propagation::Foreground if has_finalizers => Some(FINALIZER_FOREGROUND),
            _ => None,
        };
        if let Some(f) = gc_finalizer {
            let list = m.entry("finalizers").or_insert_with(|| json!([]));
            if let Some(a) = list.as_array_mut() {
                if !a.iter().any(|x| x == f) {
                    a.push(json!(f));
                }
            }
        }
        m.remove("resourceVersion");
        if strip_rv(&new) == strip_rv(current) {
            return Removal::Unchanged;
        }
        let key = key_of(kind, ns, name);
        Removal::Mark {
            op: Op::Update {
                value: self.encode(&key, &new),
                key,
                expected: Some(rev),
            },
            object: new,
        }
    }

    /// DELETE of a collection: every object the selectors match. A refusal of one object
    /// (an undeletable namespace, a failed precondition) does not stop the others; the
    /// answer says what was deleted and what was refused.
    pub async fn delete_collection(
        &self,
        kind: &Kind,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Collected, ApiError> {
        let page = self.list(kind, ns, list).await?;
        let mut out = Collected::default();
        for obj in page.items {
            let ons = meta_str(&obj, "namespace").unwrap_or("").to_string();
            let name = meta_str(&obj, "name").unwrap_or("").to_string();
            match self.delete(kind, &ons, &name, opts).await {
                Ok(v) => out.deleted.push(v),
                Err(e) if e.code == 404 => {}
                Err(e) if e.code < 500 => out.refused.push(format!(
                    "{} {name:?} was not deleted: {}",
                    kind.qualified_resource(),
                    e.message
                )),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// What a successful eviction answers (Kubernetes' `Status` of success, as a create).
fn eviction_success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

/// The pod's `DisruptionTarget` condition an eviction sets before it deletes the pod.
fn add_disruption_target(pod: &mut Value) {
    let condition = json!({
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
        "lastTransitionTime": now_rfc3339(),
    });
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    if !pod["status"]["conditions"].is_array() {
        pod["status"]["conditions"] = json!([]);
    }
    let conditions = pod["status"]["conditions"]
        .as_array_mut()
        .expect("conditions is a list");
    match conditions
        .iter_mut()
        .find(|c| c["type"] == "DisruptionTarget")
    {
        Some(c) if c["status"] == "True" => {}
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
}

/// The `DeleteOptions` of a policy/v1 (or v1beta1) Eviction body for pod `name`.
fn eviction_options(name: &str, body: &Value) -> Result<DeleteOptions, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body of an eviction must be an Eviction object",
        ));
    }
    match (body["apiVersion"].as_str(), body["kind"].as_str()) {
        (None | Some("policy/v1" | "policy/v1beta1"), None | Some("Eviction")) => {}
        (v, k) => {
            return Err(ApiError::bad_request(format!(
                "not a Eviction object: {}/{}",
                v.unwrap_or(""),
                k.unwrap_or("")
            )))
        }
    }
    if body["metadata"]["name"].as_str() != Some(name) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    match &body["deleteOptions"] {
        Value::Null => Ok(DeleteOptions::default()),
        v => DeleteOptions::from_json(v),
    }
}

/// The autoscaling/v1 Scale view of a Deployment or ReplicaSet.
pub fn to_scale(obj: &Value) -> Result<Value, ApiError> {
    let selector = match obj["spec"]["selector"].as_object() {
        Some(_) => LabelSelector::from_object(&obj["spec"]["selector"])
            .map(|s| s.to_string())
            .unwrap_or_default(),
        None => String::new(),
    };
    let m = &obj["metadata"];
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"],
            "namespace": m["namespace"],
            "uid": m["uid"],
            "resourceVersion": m["resourceVersion"],
            "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {
            "replicas": obj["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector,
        },
    }))
}

/// Applies a Scale's `spec.replicas` to the object it scales.
fn apply_scale(current: &Value, scale: &Value) -> Result<Value, ApiError> {
    let name = meta_str(current, "name").unwrap_or("");
    let replicas = match &scale["spec"]["replicas"] {
        Value::Null => 0,
        Value::Number(n) if n.is_i64() => n.as_i64().unwrap_or(0),
        other => {
            return Err(ApiError::invalid(
                "Scale",
                "autoscaling",
                name,
                vec![Cause::invalid(
                    "spec.replicas",
                    format!("Invalid value: {other}: must be an integer"),
                )],
            ))
        }
    };
    if replicas < 0 {
        return Err(ApiError::invalid(
            "Scale",
            "autoscaling",
            name,
            vec![Cause::invalid(
                "spec.replicas",
                format!("Invalid value: {replicas}: must be greater than or equal to 0"),
            )],
        ));
    }
    let mut new = current.clone();
    new["spec"]["replicas"] = json!(replicas);
    meta_mut(&mut new).remove("resourceVersion");
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods() -> &'static Kind {
        kinds::lookup("", "v1", "pods").unwrap()
    }

    #[test]
    fn continue_tokens_round_trip_and_are_bound_to_their_list() {
        let t = encode_continue(pods(), "default", Revision(42), "default", "web-1");
        assert_eq!(
            decode_continue(pods(), "default", &t).unwrap(),
            (Revision(42), "default".to_string(), "web-1".to_string())
        );
        assert_eq!(
            decode_continue(pods(), "default", "!!").unwrap_err().code,
            400
        );
        let nodes = kinds::lookup("", "v1", "nodes").unwrap();
        assert_eq!(decode_continue(nodes, "", &t).unwrap_err().code, 400);
        assert_eq!(decode_continue(pods(), "other", &t).unwrap_err().code, 400);
    }

    #[test]
    fn gc_finalizers_record_the_policy() {
        let o = json!({"metadata": {"finalizers": ["orphan"]}});
        assert!(only_gc_finalizers(&o));
        assert_eq!(recorded_policy(&o), Propagation::Orphan);
        let f = json!({"metadata": {"finalizers": ["foregroundDeletion", "example.com/x"]}});
        assert!(!only_gc_finalizers(&f));
        assert_eq!(recorded_policy(&f), Propagation::Foreground);
        assert_eq!(recorded_policy(&json!({})), Propagation::Background);
    }
}
