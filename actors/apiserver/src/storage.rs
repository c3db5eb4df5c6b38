//! The API server's core: the verbs of the Kubernetes REST dialect carried out on the
//! replicated store, with the object rules of `navarch-model` applied in between.
//!
//! Objects are stored as JSON bytes under `(qualified resource, namespace, name)`; the store's
//! revision of an object's last change is its `resourceVersion`, set on the way out and never
//! stored. Writes are compare-and-swap on that revision, retried when the caller did not ask for
//! a precondition (Kubernetes' `GuaranteedUpdate`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use navarch_model::kinds::{self, Kind};
use navarch_model::patch::{self, PatchError, PatchType};
use navarch_model::selector::{FieldSelector, LabelSelector};
use navarch_model::status::Cause;
use navarch_model::validate::{self, FieldValidation};
use navarch_model::ApiError;
use navarch_store::{
    KeyRange, ListResult, Member, Object, ObjectKey, Op, ReadConsistency, Revision, StoreError,
    Txn, TxnFailure, TxnOutcome,
};
use rand::Rng;
use serde_json::{json, Map, Value};

/// The namespaces every cluster has; the first three may not be deleted.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];
const UNDELETABLE_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];
/// How often a write is retried after losing a compare-and-swap race it did not ask for.
const CAS_RETRIES: usize = 8;

/// Options every write takes.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    pub field_validation: FieldValidation,
    pub dry_run: bool,
}

/// `DeleteOptions`, as far as we honour them.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads a `DeleteOptions` JSON body (kind/apiVersion optional, as kubectl sends it).
    pub fn from_json(v: &Value) -> Result<DeleteOptions, ApiError> {
        let Some(obj) = v.as_object() else {
            return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
        };
        let mut o = DeleteOptions::default();
        for (k, val) in obj {
            match k.as_str() {
                "kind" | "apiVersion" => {}
                "gracePeriodSeconds" => {
                    o.grace_period_seconds = Some(val.as_i64().ok_or_else(|| {
                        ApiError::bad_request("gracePeriodSeconds must be an integer")
                    })?)
                }
                "propagationPolicy" => {
                    o.propagation_policy = Some(
                        val.as_str()
                            .ok_or_else(|| {
                                ApiError::bad_request("propagationPolicy must be a string")
                            })?
                            .to_string(),
                    )
                }
                "orphanDependents" => {
                    if val.as_bool() == Some(true) {
                        o.propagation_policy = Some("Orphan".into());
                    }
                }
                "preconditions" => {
                    o.precondition_uid = val["uid"].as_str().map(str::to_string);
                    o.precondition_rv = val["resourceVersion"].as_str().map(str::to_string);
                }
                "dryRun" => o.dry_run = val.as_array().is_some_and(|a| !a.is_empty()),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "DeleteOptions: unknown field {other:?}"
                    )))
                }
            }
        }
        o.check()?;
        Ok(o)
    }

    pub fn check(&self) -> Result<(), ApiError> {
        if let Some(p) = &self.propagation_policy {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!("DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""),
                ));
            }
        }
        if self.grace_period_seconds.is_some_and(|g| g < 0) {
            return Err(ApiError::new(
                422,
                "Invalid",
                "DeleteOptions.meta.k8s.io \"\" is invalid: gracePeriodSeconds: Invalid value: must be >= 0",
            ));
        }
        Ok(())
    }
}

/// Which checks an update goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UpdateMode {
    /// Kubernetes' update validation (immutable fields included).
    Validated,
    /// A binding: the object is checked as a whole, `spec.nodeName` may be set.
    Binding,
}

/// A patch: its format and its document.
#[derive(Clone, Debug)]
pub struct Patch {
    pub ty: PatchType,
    pub body: Value,
}

/// What a list asks for.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub resource_version: Revision,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// The core: the store member this master runs, and the object rules.
#[derive(Clone)]
pub struct Core {
    member: Arc<Member>,
}

pub fn now_rfc3339() -> String {
    format_rfc3339(unix_now())
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Formats Unix seconds as `2026-11-25T21:54:07Z` (Kubernetes' whole-second `Time`).
pub fn format_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// A random RFC 4122 version-4 UUID.
pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::thread_rng().gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The 5-character suffix of `generateName` (Kubernetes' alphabet: no vowels, no look-alikes).
fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Expired {
            requested,
            compacted,
        } => ApiError::gone(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        StoreError::Unavailable(m) => {
            ApiError::too_many_requests(format!("the store is unavailable: {m}"), 1)
        }
        StoreError::Timeout(d) => ApiError::timeout(format!(
            "the store did not answer within {d:?}; the write may or may not have happened"
        )),
        StoreError::InvalidKey(m) => ApiError::bad_request(m),
        other => ApiError::internal(other.to_string()),
    }
}

fn meta(obj: &Value) -> &Value {
    &obj["metadata"]
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj["metadata"][field].as_str()
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
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

/// Whether a kind keeps its status apart from the main resource (`/status` writes it).
fn has_status_subresource(kind: &Kind) -> bool {
    kind.has_subresource("status")
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

fn key_of(kind: &Kind, ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new(
        kind.store_kind(),
        if kind.namespaced { ns } else { "" },
        name,
    )
}

/// A continue token: the revision of the first page and the last name returned.
fn encode_continue(rev: Revision, ns: &str, name: &str) -> String {
    use base64::Engine;
    let raw = json!({"rv": rev.0, "ns": ns, "name": name}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> Result<(Revision, String, String), ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request("continue key is not valid");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((
        Revision(v["rv"].as_u64().ok_or_else(bad)?),
        v["ns"].as_str().ok_or_else(bad)?.to_string(),
        v["name"].as_str().ok_or_else(bad)?.to_string(),
    ))
}

impl Core {
    pub fn new(member: Arc<Member>) -> Self {
        Self { member }
    }

    pub fn member(&self) -> &Arc<Member> {
        &self.member
    }

    /// Creates the system namespaces if they are missing (every master does this at start;
    /// `AlreadyExists` is the usual answer).
    pub async fn ensure_system_namespaces(&self) -> Result<(), ApiError> {
        let ns = kinds::lookup("", "v1", "namespaces").expect("namespaces are served");
        for name in SYSTEM_NAMESPACES {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            match self.create(ns, "", body, WriteOptions::default()).await {
                Ok(_) => tracing::info!(namespace = name, "created system namespace"),
                Err(e) if e.reason == "AlreadyExists" => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
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
            .map_err(store_error)?;
        match found {
            None => Ok(None),
            Some(o) => Ok(Some((decode_object(&o)?, o.mod_revision))),
        }
    }

    fn not_found(kind: &Kind, name: &str) -> ApiError {
        ApiError::not_found(&kind.qualified_resource(), name).about(kind.plural, kind.group, name)
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

    /// The current revision of the store as this member has applied it.
    pub fn revision(&self) -> Revision {
        Revision(self.member.status().revision)
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
        if let Some(token) = opts.continue_token.as_deref().filter(|t| !t.is_empty()) {
            let (rev, cns, cname) = decode_continue(token)?;
            let compacted = Revision(self.member.status().compacted);
            if rev < compacted {
                return Err(ApiError::gone(format!(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. (revision {rev} is compacted, oldest is {compacted})"
                )));
            }
            consistency = ReadConsistency::AtLeast(rev);
            start_after = Some((cns, cname));
        }
        let range = match ns {
            Some(ns) if kind.namespaced => KeyRange::namespaced(kind.store_kind(), ns),
            _ => KeyRange::kind(kind.store_kind()),
        };
        let ListResult { objects, revision } = self
            .member
            .list(&range, consistency)
            .await
            .map_err(store_error)?;
        let revision = match &opts.continue_token {
            Some(t) if !t.is_empty() => decode_continue(t)?.0,
            _ => revision,
        };
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
            let v = decode_object(o)?;
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

    /// Checks that `ns` exists and is not terminating (Kubernetes' NamespaceLifecycle).
    async fn check_namespace(&self, kind: &Kind, ns: &str) -> Result<(), ApiError> {
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

    fn invalid(kind: &Kind, name: &str, causes: Vec<Cause>) -> ApiError {
        ApiError::invalid(kind.kind, kind.group, name, causes)
    }

    /// Decodes, defaults and validates a body; returns the object and warnings.
    fn admit(
        kind: &Kind,
        body: &Value,
        mode: FieldValidation,
        name: &str,
    ) -> Result<(Value, Vec<String>), ApiError> {
        let decoded =
            validate::decode(kind, body, mode).map_err(|c| Self::invalid(kind, name, c))?;
        let mut obj = decoded.object;
        validate::default(kind, &mut obj);
        Ok((obj, decoded.warnings))
    }

    /// POST: creates an object.
    pub async fn create(
        &self,
        kind: &Kind,
        ns: &str,
        mut body: Value,
        opts: WriteOptions,
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
        let (mut obj, warnings) = Self::admit(kind, &body, opts.field_validation, &name)?;
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
        if has_status_subresource(kind) && !matches!(kind.kind, "Node" | "Namespace") {
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
        self.check_namespace(kind, ns).await?;
        let mut ops = Vec::new();
        if kind.kind == "Service" {
            ops.extend(self.allocate_service_addresses(&mut obj).await?);
        }
        let key = key_of(kind, ns, &name);
        if opts.dry_run {
            return Ok((obj, warnings));
        }
        ops.push(Op::Create {
            key: key.clone(),
            value: encode_object(&obj),
        });
        let last = ops.len() - 1;
        match self.write(ops).await? {
            TxnOutcome::Committed { objects, .. } => {
                // The stored bytes are `obj`'s; only the revision is new.
                let rev = committed(&objects, last)?.mod_revision;
                meta_mut(&mut obj).insert("resourceVersion".into(), json!(rev.0.to_string()));
                Ok((obj, warnings))
            }
            TxnOutcome::Refused { op_index, failure } => {
                if op_index == last {
                    if let TxnFailure::AlreadyExists { .. } = failure {
                        return Err(ApiError::already_exists(&kind.qualified_resource(), &name)
                            .about(kind.plural, kind.group, &name));
                    }
                }
                Err(self.refused(kind, &name, failure))
            }
        }
    }

    fn refused(&self, kind: &Kind, name: &str, failure: TxnFailure) -> ApiError {
        match failure {
            TxnFailure::AlreadyExists { key } if key.kind == "serviceips" => ApiError::invalid(
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
            ),
            TxnFailure::AlreadyExists { key } if key.kind == "servicenodeports" => {
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
        }
    }

    async fn write(&self, ops: Vec<Op>) -> Result<TxnOutcome, ApiError> {
        self.member.write(Txn::new(ops)).await.map_err(store_error)
    }

    /// Reserves the Service's cluster IP and node ports (allocating the ones not given) with
    /// store keys created in the same transaction as the Service, so two Services never share
    /// one.
    async fn allocate_service_addresses(&self, svc: &mut Value) -> Result<Vec<Op>, ApiError> {
        let mut ops = Vec::new();
        let ip = match svc["spec"]["clusterIP"].as_str() {
            Some("None") => None,
            Some(ip) if !ip.is_empty() => Some(ip.to_string()),
            _ => {
                // 10.96.0.0/12, avoiding .0 and the first address (kubernetes.default).
                let n: u32 = rand::thread_rng().gen_range(2..(1 << 20) - 1);
                let base: u32 = (10 << 24) | (96 << 16);
                let a = base + n;
                Some(format!(
                    "{}.{}.{}.{}",
                    a >> 24,
                    (a >> 16) & 255,
                    (a >> 8) & 255,
                    a & 255
                ))
            }
        };
        if let Some(ip) = ip {
            svc["spec"]["clusterIP"] = json!(ip);
            svc["spec"]["clusterIPs"] = json!([ip]);
            ops.push(Op::Create {
                key: ObjectKey::new("serviceips", "", ip.as_str()),
                value: b"{}".to_vec(),
            });
        }
        if svc["spec"]["type"].as_str() == Some("NodePort") {
            if let Some(ports) = svc["spec"]["ports"].as_array_mut() {
                for p in ports {
                    let port = match p["nodePort"].as_i64() {
                        Some(n) if n != 0 => n,
                        _ => {
                            let n = rand::thread_rng().gen_range(30000..=32767);
                            p["nodePort"] = json!(n);
                            n
                        }
                    };
                    ops.push(Op::Create {
                        key: ObjectKey::new("servicenodeports", "", port.to_string()),
                        value: b"{}".to_vec(),
                    });
                }
            }
        }
        Ok(ops)
    }

    fn release_service_addresses(svc: &Value) -> Vec<Op> {
        let mut ops = Vec::new();
        if let Some(ip) = svc["spec"]["clusterIP"]
            .as_str()
            .filter(|i| !i.is_empty() && *i != "None")
        {
            ops.push(Op::Delete {
                key: ObjectKey::new("serviceips", "", ip),
                expected: None,
            });
        }
        if let Some(ports) = svc["spec"]["ports"].as_array() {
            for p in ports {
                if let Some(n) = p["nodePort"].as_i64().filter(|n| *n != 0) {
                    ops.push(Op::Delete {
                        key: ObjectKey::new("servicenodeports", "", n.to_string()),
                        expected: None,
                    });
                }
            }
        }
        ops
    }

    /// The read-modify-write loop behind update, patch and the subresources: reads the current
    /// object, lets `change` compute the new one, and writes it if the object did not move in
    /// between (retrying otherwise, unless the caller pinned a resourceVersion).
    async fn guaranteed_update<F>(
        &self,
        kind: &Kind,
        ns: &str,
        name: &str,
        opts: WriteOptions,
        mode: UpdateMode,
        mut change: F,
    ) -> Result<(Value, Vec<String>), ApiError>
    where
        F: FnMut(&Value) -> Result<(Value, Vec<String>), ApiError>,
    {
        for attempt in 0..CAS_RETRIES {
            let consistency = if attempt == 0 {
                ReadConsistency::AtLeast(Revision(0))
            } else {
                ReadConsistency::Linearizable
            };
            let Some((current, rev)) = self.read(kind, ns, name, consistency).await? else {
                return Err(Self::not_found(kind, name));
            };
            let (mut new, warnings) = change(&current)?;
            // A resourceVersion in the new object is a precondition.
            let pinned = match meta_str(&new, "resourceVersion") {
                Some(rv) if !rv.is_empty() => {
                    if parse_rv(rv)? != rev {
                        if attempt == 0 {
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
            if strip_rv(&new) == strip_rv(&current) {
                return Ok((current, warnings));
            }
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
            // The last finalizer of an object being deleted is gone: the object goes.
            let finalized = !new["metadata"]["deletionTimestamp"].is_null()
                && new["metadata"]["finalizers"]
                    .as_array()
                    .is_none_or(|f| f.is_empty());
            if finalized && !needs_grace(kind, &new) {
                let mut ops = vec![Op::Delete {
                    key,
                    expected: Some(rev),
                }];
                if kind.kind == "Service" {
                    ops.extend(Self::release_service_addresses(&current));
                }
                match self.write(ops).await? {
                    TxnOutcome::Committed { .. } => {
                        self.collect_dependents(kind, &current, "Background")
                            .await?;
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
            let outcome = self
                .write(vec![Op::Update {
                    key,
                    value: encode_object(&new),
                    expected: Some(rev),
                }])
                .await?;
            match outcome {
                TxnOutcome::Committed { objects, .. } => {
                    let rev = committed(&objects, 0)?.mod_revision;
                    meta_mut(&mut new).insert("resourceVersion".into(), json!(rev.0.to_string()));
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
        Err(ApiError::stale(&kind.qualified_resource(), name).about(kind.plural, kind.group, name))
    }

    /// Server-owned metadata is kept from the current object; generation follows the spec.
    fn finish_update(&self, kind: &Kind, current: &Value, new: &mut Value) -> Result<(), ApiError> {
        let cur = meta(current).clone();
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
        if kind.kind == "Service" {
            // The allocated addresses stay with the Service when an update leaves them out.
            for f in ["clusterIP", "clusterIPs"] {
                let missing = new["spec"][f].is_null() || new["spec"][f] == json!("");
                if missing && !current["spec"][f].is_null() && new["spec"].is_object() {
                    new["spec"][f] = current["spec"][f].clone();
                }
            }
        }
        let generation = cur["generation"].as_i64().unwrap_or(1);
        let bumped = if spec_of(current) != spec_of(new) {
            generation + 1
        } else {
            generation
        };
        meta_mut(new).insert("generation".into(), json!(bumped));
        meta_mut(new).remove("resourceVersion");
        Ok(())
    }

    /// PUT of the main resource (`sub = None`) or of `status`.
    pub async fn update(
        &self,
        kind: &Kind,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        mut body: Value,
        opts: WriteOptions,
    ) -> Result<(Value, Vec<String>), ApiError> {
        if sub == Some("scale") {
            return self.update_scale(kind, ns, name, body, opts).await;
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
        let (admitted, warnings) = Self::admit(kind, &body, opts.field_validation, name)?;
        let rv = meta_str(&body, "resourceVersion").map(str::to_string);
        self.guaranteed_update(kind, ns, name, opts, UpdateMode::Validated, |current| {
            let mut new = admitted.clone();
            if let Some(rv) = &rv {
                meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
            }
            Ok((
                Self::split_status(kind, sub, current, new),
                warnings.clone(),
            ))
        })
        .await
    }

    /// Keeps the part of the object a request may not change: the status on the main
    /// resource, everything but the status on `/status`.
    fn split_status(kind: &Kind, sub: Option<&str>, current: &Value, mut new: Value) -> Value {
        if !has_status_subresource(kind) {
            return new;
        }
        match sub {
            Some("status") => {
                let mut out = current.clone();
                out["status"] = new["status"].take();
                if let Some(rv) = meta_str(&new, "resourceVersion") {
                    meta_mut(&mut out).insert("resourceVersion".into(), json!(rv));
                } else {
                    meta_mut(&mut out).remove("resourceVersion");
                }
                out
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
                new
            }
        }
    }

    /// PATCH of the main resource, `status` or `scale`.
    pub async fn patch(
        &self,
        kind: &Kind,
        ns: &str,
        name: &str,
        sub: Option<&str>,
        request: Patch,
        opts: WriteOptions,
    ) -> Result<(Value, Vec<String>), ApiError> {
        let Patch { ty, body: patch } = request;
        if ty == PatchType::Apply {
            return Err(ApiError::unsupported_media_type(
                "application/apply-patch+yaml (server-side apply is not supported by navarch; use client-side kubectl apply)",
            ));
        }
        let patch_err = |e: PatchError| match e {
            PatchError::Malformed(m) => ApiError::bad_request(m),
            PatchError::Unprocessable(m) => ApiError::new(422, "Invalid", m),
        };
        if sub == Some("scale") {
            let result = self
                .guaranteed_update(kind, ns, name, opts, UpdateMode::Validated, |current| {
                    let scale = to_scale(current)?;
                    let patched = patch::apply("Scale", &scale, &patch, ty).map_err(patch_err)?;
                    let new = apply_scale(current, &patched)?;
                    Ok((new, Vec::new()))
                })
                .await?;
            return Ok((to_scale(&result.0)?, result.1));
        }
        self.guaranteed_update(kind, ns, name, opts, UpdateMode::Validated, |current| {
            let mut patched = patch::apply(kind.kind, current, &patch, ty).map_err(patch_err)?;
            // The patch may pin a resourceVersion; otherwise the one read is not a precondition.
            let pinned = patch["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string);
            Self::check_type(kind, &mut patched)?;
            let (mut admitted, warnings) =
                Self::admit(kind, &patched, opts.field_validation, name)?;
            match pinned {
                Some(rv) => {
                    meta_mut(&mut admitted).insert("resourceVersion".into(), json!(rv));
                }
                None => {
                    meta_mut(&mut admitted).remove("resourceVersion");
                }
            }
            Ok((Self::split_status(kind, sub, current, admitted), warnings))
        })
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
        opts: WriteOptions,
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
            .guaranteed_update(kind, ns, name, opts, UpdateMode::Validated, |current| {
                let mut new = apply_scale(current, &body)?;
                if let Some(rv) = meta_str(&body, "resourceVersion") {
                    meta_mut(&mut new).insert("resourceVersion".into(), json!(rv));
                }
                Ok((new, Vec::new()))
            })
            .await?;
        Ok((to_scale(&obj)?, w))
    }

    /// POST `pods/<name>/binding`: assigns the pod to a node, once.
    pub async fn bind(&self, ns: &str, name: &str, mut body: Value) -> Result<Value, ApiError> {
        let pods = kinds::lookup("", "v1", "pods").expect("pods are served");
        if body["kind"].is_null() {
            body["kind"] = json!("Binding");
        }
        if body["kind"] != "Binding" {
            return Err(ApiError::bad_request(
                "the body of a binding must be a Binding",
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
            WriteOptions::default(),
            UpdateMode::Binding,
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
        for _ in 0..CAS_RETRIES {
            let Some((current, rev)) = self
                .read(kind, ns, name, ReadConsistency::Linearizable)
                .await?
            else {
                return Err(Self::not_found(kind, name));
            };
            let uid = meta_str(&current, "uid").unwrap_or("").to_string();
            if let Some(want) = &opts.precondition_uid {
                if *want != uid {
                    return Err(ApiError::conflict(
                        &kind.qualified_resource(),
                        name,
                        &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
                    )
                    .about(kind.plural, kind.group, name));
                }
            }
            if let Some(want) = &opts.precondition_rv {
                if parse_rv(want)? != rev {
                    return Err(ApiError::conflict(
                        &kind.qualified_resource(),
                        name,
                        &format!("Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rev}"),
                    )
                    .about(kind.plural, kind.group, name));
                }
            }
            let policy = opts
                .propagation_policy
                .clone()
                .unwrap_or_else(|| "Background".to_string());
            let has_finalizers = current["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            let grace = if needs_grace(kind, &current) {
                opts.grace_period_seconds
                    .or_else(|| current["spec"]["terminationGracePeriodSeconds"].as_i64())
                    .unwrap_or(30)
            } else {
                0
            };
            // Graceful or finalized: mark the object and let its node or finalizer owner end it.
            if has_finalizers || grace > 0 {
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
                m.remove("resourceVersion");
                if opts.dry_run || strip_rv(&new) == strip_rv(&current) {
                    return Ok(current);
                }
                let key = key_of(kind, ns, name);
                match self
                    .write(vec![Op::Update {
                        key,
                        value: encode_object(&new),
                        expected: Some(rev),
                    }])
                    .await?
                {
                    TxnOutcome::Committed { objects, .. } => {
                        let o = committed(&objects, 0)?;
                        return decode_object(o);
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
            if opts.dry_run {
                return Ok(current);
            }
            if policy == "Foreground" {
                self.collect_dependents(kind, &current, "Foreground")
                    .await?;
            }
            if kind.kind == "Namespace" {
                self.empty_namespace(name).await?;
            }
            let mut ops = vec![Op::Delete {
                key: key_of(kind, ns, name),
                expected: Some(rev),
            }];
            if kind.kind == "Service" {
                ops.extend(Self::release_service_addresses(&current));
            }
            match self.write(ops).await? {
                TxnOutcome::Committed { .. } => {
                    if policy != "Foreground" {
                        self.collect_dependents(kind, &current, &policy).await?;
                    }
                    return Ok(current);
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

    /// Deletes (Background, Foreground) or orphans the objects owned by `owner`: Kubernetes'
    /// garbage collector, run by the API server until the control plane has its own.
    fn collect_dependents<'a>(
        &'a self,
        owner_kind: &'a Kind,
        owner: &'a Value,
        policy: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ApiError>> + Send + 'a>>
    {
        Box::pin(self.collect_dependents_inner(owner_kind, owner, policy))
    }

    async fn collect_dependents_inner(
        &self,
        owner_kind: &Kind,
        owner: &Value,
        policy: &str,
    ) -> Result<(), ApiError> {
        let Some(uid) = meta_str(owner, "uid").map(str::to_string) else {
            return Ok(());
        };
        let ns = meta_str(owner, "namespace").map(str::to_string);
        for kind in kinds::KINDS.iter().filter(|k| k.namespaced) {
            let page = self
                .list(
                    kind,
                    ns.as_deref().filter(|_| owner_kind.namespaced),
                    &ListOptions::default(),
                )
                .await?;
            for dep in page.items {
                let owned = dep["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| {
                        refs.iter().any(|r| r["uid"].as_str() == Some(uid.as_str()))
                    });
                if !owned {
                    continue;
                }
                let dns = meta_str(&dep, "namespace").unwrap_or("").to_string();
                let dname = meta_str(&dep, "name").unwrap_or("").to_string();
                let r = if policy == "Orphan" {
                    let uid = uid.clone();
                    self.guaranteed_update(
                        kind,
                        &dns,
                        &dname,
                        WriteOptions::default(),
                        UpdateMode::Validated,
                        move |cur: &Value| {
                            let mut new = cur.clone();
                            if let Some(refs) = new["metadata"]["ownerReferences"].as_array_mut() {
                                refs.retain(|r| r["uid"].as_str() != Some(uid.as_str()));
                            }
                            meta_mut(&mut new).remove("resourceVersion");
                            Ok((new, Vec::new()))
                        },
                    )
                    .await
                    .map(|_| ())
                } else {
                    let opts = DeleteOptions {
                        propagation_policy: Some(policy.to_string()),
                        ..DeleteOptions::default()
                    };
                    Box::pin(self.delete(kind, &dns, &dname, &opts))
                        .await
                        .map(|_| ())
                };
                match r {
                    Ok(()) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Deletes everything in a namespace (the namespace controller's job, done inline).
    async fn empty_namespace(&self, ns: &str) -> Result<(), ApiError> {
        for kind in kinds::KINDS.iter().filter(|k| k.namespaced) {
            let page = self.list(kind, Some(ns), &ListOptions::default()).await?;
            for obj in page.items {
                let name = meta_str(&obj, "name").unwrap_or("").to_string();
                let opts = DeleteOptions {
                    grace_period_seconds: Some(0),
                    ..DeleteOptions::default()
                };
                match Box::pin(self.delete(kind, ns, &name, &opts)).await {
                    Ok(_) => {}
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// DELETE of a collection: every object the selectors match.
    pub async fn delete_collection(
        &self,
        kind: &Kind,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let page = self.list(kind, ns, list).await?;
        let mut deleted = Vec::new();
        for obj in page.items {
            let ons = meta_str(&obj, "namespace").unwrap_or("").to_string();
            let name = meta_str(&obj, "name").unwrap_or("").to_string();
            match self.delete(kind, &ons, &name, opts).await {
                Ok(v) => deleted.push(v),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }
}

/// The object a committed transaction's op `i` left (create and update ops have one).
fn committed(objects: &[Option<Object>], i: usize) -> Result<&Object, ApiError> {
    objects
        .get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| ApiError::internal("the store returned no object for a write"))
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

/// The autoscaling/v1 Scale view of a Deployment or ReplicaSet.
pub fn to_scale(obj: &Value) -> Result<Value, ApiError> {
    let selector = match obj["spec"]["selector"].as_object() {
        Some(_) => LabelSelector::from_object(&obj["spec"]["selector"])
            .map(|s| s.to_string())
            .unwrap_or_default(),
        None => String::new(),
    };
    let m = meta(obj);
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

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_795_945_447), "2026-11-29T09:44:07Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn uids_are_version_4() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, new_uid());
    }

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(Revision(42), "default", "web-1");
        assert_eq!(
            decode_continue(&t).unwrap(),
            (Revision(42), "default".to_string(), "web-1".to_string())
        );
        assert_eq!(decode_continue("!!").unwrap_err().code, 400);
    }

    #[test]
    fn delete_options_accept_kubectl_bodies_and_refuse_bad_policies() {
        let o = DeleteOptions::from_json(
            &json!({"propagationPolicy": "Foreground", "gracePeriodSeconds": 5}),
        )
        .unwrap();
        assert_eq!(o.propagation_policy.as_deref(), Some("Foreground"));
        assert_eq!(o.grace_period_seconds, Some(5));
        assert_eq!(
            DeleteOptions::from_json(&json!({"propagationPolicy": "Sideways"}))
                .unwrap_err()
                .code,
            422
        );
    }
}
