//! The pipeline's second half for resource requests: admission (node restriction, namespace
//! lifecycle), decoding, defaulting and validation of the body, and the verb on the store.
//! Reached only through [`ApiServer::execute`](crate::ApiServer::execute).

use navarch_client::ObjectList;
use navarch_model::authz::User;
use navarch_model::kinds::Kind;
use navarch_model::options::{DeleteOptions, GetOptions, ListOptions, WatchOptions, WriteOptions};
use navarch_model::ApiError;
use serde_json::Value;

use navarch_model::escalation::{check_escalation, RbacWrite};
use navarch_model::node_restriction::{self, AdmissionRequest, Operation};
use navarch_model::rbac::RbacKind;
use navarch_model::review;

use crate::request::{Body, Reply, RequestHead, Target};
use crate::storage::{ListPage, Storage};
use crate::time::now_rfc3339;
use crate::{decode, watch, ApiServer};

fn list_reply(kind: &'static Kind, page: ListPage, warnings: Vec<String>) -> Reply {
    Reply::List {
        kind,
        list: ObjectList {
            items: page.items,
            resource_version: page.resource_version.0.to_string(),
            continue_token: page.continue_token,
            remaining_item_count: page.remaining,
        },
        warnings,
    }
}

fn object(code: u16, kind: Option<&'static Kind>, object: Value, warnings: Vec<String>) -> Reply {
    Reply::Object {
        code,
        kind,
        object,
        warnings,
    }
}

/// Admission of one write's final object: NodeRestriction for nodes, and RBAC's escalation
/// check for Roles, ClusterRoles and their bindings.
fn admit_write(
    api: &ApiServer,
    user: &User,
    kind: &'static Kind,
    namespace: &str,
    subresource: &str,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), ApiError> {
    if user.node_name().is_some() {
        node_restriction::admit(
            user,
            &AdmissionRequest {
                operation: if old.is_some() {
                    Operation::Update
                } else {
                    Operation::Create
                },
                kind,
                subresource,
                namespace,
                name: new["metadata"]["name"].as_str().unwrap_or(""),
                object: Some(new),
                old_object: old,
            },
        )?;
    }
    if kind.plural == "endpointslices" {
        admit_api_server_slice(user, old, new)?;
    }
    if RbacKind::of(kind).is_some() {
        api.authorizer().with(|a| {
            check_escalation(
                a,
                user,
                &RbacWrite {
                    kind,
                    namespace,
                    object: new,
                    old,
                },
            )
        })?;
    }
    Ok(())
}

/// Only `system:masters` write the slices of the masters' own manager (the `kubernetes`
/// Service's endpoints, which may hold loopback addresses), nor take a slice from it.
fn admit_api_server_slice(user: &User, old: Option<&Value>, new: &Value) -> Result<(), ApiError> {
    let managed = |v: &Value| {
        v["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"]
            == navarch_model::validate::API_SERVER_SLICE_MANAGER
    };
    if (managed(new) || old.is_some_and(managed))
        && !user.in_group(navarch_model::authz::GROUP_MASTERS)
    {
        let name = new["metadata"]["name"].as_str().unwrap_or("");
        return Err(ApiError::forbidden(format!(
            "endpointslices.discovery.k8s.io \"{name}\" is forbidden: only the API servers manage slices labelled endpointslice.kubernetes.io/managed-by={}",
            navarch_model::validate::API_SERVER_SLICE_MANAGER
        ))
        .about("endpointslices", "discovery.k8s.io", name));
    }
    Ok(())
}

/// The authorizer allowed a node only for pods bound to it: check the stored pod.
async fn check_pod_on_node(
    storage: &Storage,
    kind: &Kind,
    ns: &str,
    name: &str,
    node: &str,
) -> Result<(), ApiError> {
    if kind.group.is_empty() && matches!(kind.plural, "configmaps" | "secrets") {
        return check_referenced_on_node(storage, kind, ns, name, node).await;
    }
    let pod = storage.get(kind, ns, name, None).await?;
    if pod["spec"]["nodeName"].as_str() != Some(node) {
        return Err(ApiError::forbidden(format!(
            "pods \"{name}\" is forbidden: node \"{node}\" can only change pods bound to it"
        ))
        .about(kind.plural, kind.group, name));
    }
    Ok(())
}

/// The authorizer allowed a node to read a ConfigMap or Secret only if a pod bound to it
/// refers to it (Kubernetes' node authorizer graph): check the node's pods in `ns`.
async fn check_referenced_on_node(
    storage: &Storage,
    kind: &Kind,
    ns: &str,
    name: &str,
    node: &str,
) -> Result<(), ApiError> {
    let pods = navarch_client::kind("", "v1", "pods");
    let opts = navarch_model::options::ListOptions {
        field_selector: navarch_model::selector::FieldSelector::parse(
            "Pod",
            &format!("spec.nodeName={node}"),
        )
        .map_err(|e| ApiError::internal(e.to_string()))?,
        ..Default::default()
    };
    let page = storage.list(pods, Some(ns), &opts).await?;
    let referenced = page.items.iter().any(|p| {
        let (cms, secrets) = navarch_model::authz::node::referenced_objects(p);
        if kind.plural == "secrets" {
            secrets.contains(name)
        } else {
            cms.contains(name)
        }
    });
    if referenced {
        return Ok(());
    }
    tracing::debug!(
        node,
        kind = kind.plural,
        name,
        "node read refused: none of its pods refers to the object"
    );
    Err(ApiError::forbidden(format!(
        "{} \"{name}\" is forbidden: User \"system:node:{node}\" cannot get resource \"{}\" in API group \"\" in the namespace \"{ns}\": no relationship found between node '{node}' and this object",
        kind.plural, kind.plural
    ))
    .about(kind.plural, kind.group, name))
}

pub(crate) async fn serve(
    api: &ApiServer,
    user: &User,
    head: &RequestHead,
    pod_on_node: Option<&str>,
    body: Body,
) -> Result<Reply, ApiError> {
    let Target::Resource {
        kind,
        namespace,
        name,
        subresource,
    } = &head.target
    else {
        return Err(ApiError::internal("not a resource request"));
    };
    let kind: &'static Kind = kind;
    let storage = api.storage();
    let q = &head.query;
    let ns = namespace.as_deref().unwrap_or("");
    let name = name.as_deref().unwrap_or("");
    let sub = subresource.as_deref();
    if let Some(node) = pod_on_node {
        check_pod_on_node(storage, kind, ns, name, node).await?;
    }
    let admit = |old: Option<&Value>, new: &Value| {
        admit_write(api, user, kind, ns, sub.unwrap_or(""), old, new)
    };
    if !kind.stored {
        // A review: evaluated, answered, never stored.
        if head.verb != "create" || sub.is_some() {
            return Err(ApiError::method_not_allowed(format!(
                "{} only takes create",
                kind.qualified_resource()
            )));
        }
        let opts = WriteOptions::from_query(q)?;
        let (b, mut warnings) = decode::object(Some(kind), body, opts.field_validation)?;
        if kind.kind == "TokenReview" {
            let decoded = navarch_model::validate::decode(kind, &b, opts.field_validation)
                .map_err(|c| ApiError::invalid(kind.kind, kind.group, "", c))?;
            warnings.extend(decoded.warnings);
            let v = crate::serviceaccounts::token_review(api, &decoded.object).await?;
            return Ok(object(201, None, v, warnings));
        }
        let r = api
            .authorizer()
            .with(|a| review::review(kind, a, user, &b, opts.field_validation, &now_rfc3339()))?;
        warnings.extend(r.warnings);
        return Ok(object(201, None, r.object, warnings));
    }
    match (head.verb, sub) {
        ("get", Some("log")) => {
            let (dialer, runtime) = api.kubelet_dialer();
            let chunks = crate::kubelet::logs(dialer, runtime, storage, kind, ns, name, q).await?;
            Ok(Reply::Stream {
                content_type: "text/plain",
                chunks,
            })
        }
        ("get" | "create", Some("exec")) => {
            let (dialer, runtime) = api.kubelet_dialer();
            let session = crate::kubelet::exec(dialer, runtime, storage, kind, ns, name, q).await?;
            if head.origin.upgrade.is_none() {
                // kubectl tries a WebSocket first and falls back to SPDY only when that
                // fails; a refusal of the pod is answered above, to both.
                return Err(ApiError::bad_request(
                    "navarch serves exec over WebSocket only (v5.channel.k8s.io, \
                     v4.channel.k8s.io); SPDY is not supported",
                ));
            }
            Ok(Reply::Exec(session))
        }
        ("get", Some("scale")) => Ok(object(
            200,
            None,
            storage.get_scale(kind, ns, name).await?,
            vec![],
        )),
        ("get", _) => {
            let opts = GetOptions::from_query(q);
            let v = storage
                .get(kind, ns, name, opts.resource_version.as_deref())
                .await?;
            Ok(object(200, Some(kind), v, vec![]))
        }
        ("list", None) => {
            let opts = ListOptions::from_query(kind.kind, q)?;
            let page = storage.list(kind, namespace.as_deref(), &opts).await?;
            Ok(list_reply(kind, page, vec![]))
        }
        ("watch", None) => {
            let opts = WatchOptions::from_query(kind.kind, q)?;
            let events = watch::start(
                storage.clone(),
                kind,
                namespace.clone(),
                opts,
                api.runtime(),
            );
            let events = Box::pin(api.metrics().api.watching(kind.plural, events));
            Ok(Reply::Watch { kind, events })
        }
        ("create", Some("binding")) => {
            let opts = WriteOptions::from_query(q)?;
            let (b, _) = decode::object(None, body, opts.field_validation)?;
            let v = storage.bind(ns, name, b).await?;
            Ok(object(201, None, v, vec![]))
        }
        ("create", Some("token")) if kind.plural == "serviceaccounts" => {
            let opts = WriteOptions::from_query(q)?;
            let (b, _) = decode::object(None, body, opts.field_validation)?;
            let v = crate::serviceaccounts::token_request(api, user, ns, name, &b, opts.dry_run)
                .await?;
            Ok(object(201, None, v, vec![]))
        }
        ("create", Some("eviction")) => {
            let opts = WriteOptions::from_query(q)?;
            let (b, _) = decode::object(None, body, opts.field_validation)?;
            let v = storage.evict(ns, name, b, opts.dry_run).await?;
            Ok(object(201, None, v, vec![]))
        }
        ("create", None) => {
            if kind.namespaced && namespace.is_none() {
                return Err(ApiError::method_not_allowed(format!(
                    "create {} needs a namespace: POST /{}/namespaces/<namespace>/{}",
                    kind.plural,
                    kind.gv_path().trim_start_matches('/'),
                    kind.plural
                )));
            }
            let opts = WriteOptions::from_query(q)?;
            let (b, mut warnings) = decode::object(Some(kind), body, opts.field_validation)?;
            let (obj, w) = storage.prepare_create(kind, ns, b, &opts)?;
            warnings.extend(w);
            let v = storage.create(kind, ns, obj, &opts, &admit).await?;
            Ok(object(
                if opts.dry_run { 200 } else { 201 },
                Some(kind),
                v,
                warnings,
            ))
        }
        ("update", s @ (None | Some("status") | Some("scale") | Some("finalize"))) => {
            let opts = WriteOptions::from_query(q)?;
            let (b, mut warnings) = decode::object(Some(kind), body, opts.field_validation)?;
            let (v, w) = storage.update(kind, ns, name, s, b, &opts, &admit).await?;
            warnings.extend(w);
            Ok(object(
                200,
                (s != Some("scale")).then_some(kind),
                v,
                warnings,
            ))
        }
        ("patch", s @ (None | Some("status") | Some("scale"))) => {
            let opts = WriteOptions::from_query(q)?;
            let patch = decode::patch(body)?;
            let (v, w) = storage
                .patch(kind, ns, name, s, patch, &opts, &admit)
                .await?;
            Ok(object(200, (s != Some("scale")).then_some(kind), v, w))
        }
        ("delete", None) => {
            let opts = delete_options(body, q)?;
            let v = storage.delete(kind, ns, name, &opts).await?;
            Ok(object(200, Some(kind), v, vec![]))
        }
        ("deletecollection", None) => {
            let opts = delete_options(body, q)?;
            let list = ListOptions::from_query(kind.kind, q)?;
            let done = storage
                .delete_collection(kind, namespace.as_deref(), &list, &opts)
                .await?;
            let rv = storage.revision();
            Ok(Reply::List {
                kind,
                list: ObjectList {
                    items: done.deleted,
                    resource_version: rv.0.to_string(),
                    continue_token: None,
                    remaining_item_count: None,
                },
                warnings: done.refused,
            })
        }
        (verb, _) => Err(ApiError::method_not_allowed(format!(
            "{verb} is not supported on {}{}",
            kind.qualified_resource(),
            sub.map(|s| format!("/{s}")).unwrap_or_default()
        ))),
    }
}

fn delete_options(body: Body, q: &[(String, String)]) -> Result<DeleteOptions, ApiError> {
    let opts = match decode::optional_object(body)? {
        Some(v) => DeleteOptions::from_json(&v)?,
        None => DeleteOptions::default(),
    };
    opts.with_query(q)
}
