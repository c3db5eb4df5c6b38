//! What the API server does with service accounts besides storing them: issues their
//! tokens (`serviceaccounts/<name>/token`, Kubernetes' TokenRequest), reviews tokens for
//! other servers (TokenReview), and confirms that a presented token's service account and
//! pod still exist.

use navarch_model::authz::User;
use navarch_model::kinds::Kind;
use navarch_model::status::Cause;
use navarch_model::ApiError;
use serde_json::{json, Value};

use crate::satoken::{self, Claims, ObjectRef, TokenError, TokenSpec};
use crate::storage::Storage;
use crate::time::{now_rfc3339, unix_now};
use crate::ApiServer;

fn kind(plural: &str) -> &'static Kind {
    navarch_client::kind("", "v1", plural)
}

/// Reads an object from this master's copy of the store (`None`: absent).
async fn local(storage: &Storage, plural: &str, ns: &str, name: &str) -> Option<Value> {
    storage.get(kind(plural), ns, name, Some("0")).await.ok()
}

/// Whether the service account and the pod `claims` name are still the ones the token was
/// issued for (a deleted or recreated one revokes it).
pub(crate) async fn confirm_bound(storage: &Storage, claims: &Claims) -> Result<(), TokenError> {
    let k = &claims.kubernetes;
    let sa = local(
        storage,
        "serviceaccounts",
        &k.namespace,
        &k.serviceaccount.name,
    )
    .await;
    let pod = match &k.pod {
        Some(p) => local(storage, "pods", &k.namespace, &p.name).await,
        None => None,
    };
    claims.still_bound(sa.as_ref(), pod.as_ref(), unix_now())
}

fn invalid(causes: Vec<Cause>) -> ApiError {
    ApiError::invalid("TokenRequest", "authentication.k8s.io", "", causes)
}

/// What a TokenRequest's `spec` asks for, checked as Kubernetes checks it.
#[derive(Debug)]
struct Asked {
    audiences: Vec<String>,
    expiration_seconds: i64,
    /// The pod the token is bound to (`boundObjectRef` of kind Pod).
    pod: Option<(String, Option<String>)>,
}

fn parse_request(body: &Value) -> Result<Asked, ApiError> {
    let spec = &body["spec"];
    let mut causes = Vec::new();
    let audiences: Vec<String> = match spec.get("audiences") {
        None | Some(Value::Null) => vec![satoken::ISSUER.to_string()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(other) => {
            causes.push(Cause::invalid(
                "spec.audiences",
                format!("Invalid value: {other}: must be a list of strings"),
            ));
            Vec::new()
        }
    };
    let audiences = if audiences.is_empty() {
        vec![satoken::ISSUER.to_string()]
    } else {
        audiences
    };
    let expiration_seconds = match &spec["expirationSeconds"] {
        Value::Null => satoken::DEFAULT_EXPIRATION_SECONDS,
        v => match v.as_i64() {
            Some(s) if s < satoken::MIN_EXPIRATION_SECONDS => {
                causes.push(Cause::invalid(
                    "spec.expirationSeconds",
                    format!("Invalid value: {s}: may not specify a duration less than 10 minutes"),
                ));
                s
            }
            Some(s) if s > navarch_model::admission::MAX_TOKEN_ASK_SECONDS => {
                causes.push(Cause::invalid(
                    "spec.expirationSeconds",
                    format!(
                        "Invalid value: {s}: may not specify a duration larger than 2^32 seconds"
                    ),
                ));
                s
            }
            // Longer asks are granted the longest this server issues, as Kubernetes caps
            // them at its maximum.
            Some(s) => s.min(satoken::MAX_EXPIRATION_SECONDS),
            None => {
                causes.push(Cause::invalid(
                    "spec.expirationSeconds",
                    format!("Invalid value: {v}: must be an integer"),
                ));
                0
            }
        },
    };
    let pod = match spec.get("boundObjectRef").filter(|r| !r.is_null()) {
        None => None,
        Some(r) => {
            let k = r["kind"].as_str().unwrap_or("");
            let name = r["name"].as_str().unwrap_or("");
            if k != "Pod" {
                causes.push(Cause::not_supported(
                    "spec.boundObjectRef.kind",
                    format!("Unsupported value: {k:?}: supported values: \"Pod\""),
                ));
            }
            if name.is_empty() {
                causes.push(Cause::required("spec.boundObjectRef.name"));
            }
            Some((
                name.to_string(),
                r["uid"]
                    .as_str()
                    .filter(|u| !u.is_empty())
                    .map(str::to_string),
            ))
        }
    };
    if !causes.is_empty() {
        return Err(invalid(causes));
    }
    Ok(Asked {
        audiences,
        expiration_seconds,
        pod,
    })
}

/// `POST serviceaccounts/<name>/token`: a token for the service account `ns/name`, bound to
/// the pod the request names. A node may ask only for a pod bound to it that runs as that
/// account (Kubernetes' NodeRestriction), and only with a pod to bind to.
pub(crate) async fn token_request(
    api: &ApiServer,
    user: &User,
    ns: &str,
    name: &str,
    body: &Value,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let storage = api.storage();
    let asked = parse_request(body)?;
    let sa = storage.get(kind("serviceaccounts"), ns, name, None).await?;
    let sa_ref = ObjectRef {
        name: name.to_string(),
        uid: sa["metadata"]["uid"].as_str().unwrap_or("").to_string(),
    };
    let mut pod_ref = None;
    let mut node_ref = None;
    if let Some((pod_name, uid)) = &asked.pod {
        let pod = storage.get(kind("pods"), ns, pod_name, None).await?;
        let pod_uid = pod["metadata"]["uid"].as_str().unwrap_or("");
        if let Some(uid) = uid.as_deref().filter(|u| *u != pod_uid) {
            return Err(ApiError::conflict(
                "pods",
                pod_name,
                &format!("the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"),
            ));
        }
        let runs_as = navarch_model::admission::service_account_of(&pod);
        if runs_as != name {
            return Err(ApiError::bad_request(format!(
                "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name"
            )));
        }
        if let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            node_ref = Some(ObjectRef {
                name: node.to_string(),
                uid: String::new(),
            });
        }
        pod_ref = Some(ObjectRef {
            name: pod_name.clone(),
            uid: pod_uid.to_string(),
        });
    }
    if let Some(node) = user.node_name() {
        let on_node = node_ref.as_ref().is_some_and(|n| n.name == node);
        if !on_node {
            return Err(ApiError::forbidden(format!(
                "serviceaccounts \"{name}\" is forbidden: node \"{node}\" may only request tokens bound to pods scheduled to it"
            ))
            .about("serviceaccounts", "", name));
        }
    }
    let spec = TokenSpec {
        namespace: ns.to_string(),
        service_account: sa_ref,
        pod: pod_ref,
        node: node_ref,
        audiences: asked.audiences.clone(),
        expiration_seconds: asked.expiration_seconds,
    };
    let (token, claims) = if dry_run {
        (String::new(), None)
    } else {
        let (t, c) = api.token_key().issue(&spec, unix_now());
        (t, Some(c))
    };
    if let Some(c) = &claims {
        tracing::info!(
            namespace = ns,
            service_account = name,
            pod = c.kubernetes.pod.as_ref().map(|p| p.name.as_str()).unwrap_or(""),
            requester = %user.name,
            expires_in = asked.expiration_seconds,
            "service-account token issued"
        );
    }
    let exp = claims
        .as_ref()
        .map(|c| c.exp)
        .unwrap_or_else(|| unix_now() + asked.expiration_seconds);
    let mut out_spec = json!({
        "audiences": asked.audiences,
        "expirationSeconds": asked.expiration_seconds,
    });
    if let Some(r) = body["spec"].get("boundObjectRef").filter(|r| !r.is_null()) {
        let mut r = r.clone();
        if let (Some(p), Some(o)) = (&spec.pod, r.as_object_mut()) {
            o.insert("uid".into(), json!(p.uid));
            o.entry("apiVersion").or_insert(json!("v1"));
        }
        out_spec["boundObjectRef"] = r;
    }
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": now_rfc3339()},
        "spec": out_spec,
        "status": {
            "token": token,
            "expirationTimestamp": navarch_model::time::format_rfc3339(exp),
        },
    }))
}

/// `POST tokenreviews`: whether `spec.token` is a valid service-account token for one of
/// `spec.audiences` (the API's own when empty), and whose. Never an error for a bad token:
/// the answer says `authenticated: false` with why.
pub(crate) async fn token_review(api: &ApiServer, body: &Value) -> Result<Value, ApiError> {
    let token = body["spec"]["token"].as_str().unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::invalid(
            "TokenReview",
            "authentication.k8s.io",
            "",
            vec![Cause::required("spec.token")],
        ));
    }
    let asked: Vec<String> = body["spec"]["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let audiences: Vec<&str> = if asked.is_empty() {
        vec![satoken::ISSUER]
    } else {
        asked.iter().map(String::as_str).collect()
    };
    let checked = match api.token_key().verify(token, &audiences, unix_now()) {
        Ok(claims) => confirm_bound(api.storage(), &claims).await.map(|()| claims),
        Err(e) => Err(e),
    };
    let status = match checked {
        Ok(claims) => {
            let u = claims.user();
            let granted: Vec<&String> = claims
                .aud
                .iter()
                .filter(|a| audiences.contains(&a.as_str()))
                .collect();
            json!({
                "authenticated": true,
                "user": {"username": u.name, "uid": u.uid, "groups": u.groups, "extra": u.extra},
                "audiences": granted,
            })
        }
        Err(e) => {
            tracing::debug!(error = %e, "token review: not authenticated");
            json!({"authenticated": false, "error": format!("invalid bearer token, {e}")})
        }
    };
    let mut spec = body["spec"].clone();
    if let Some(o) = spec.as_object_mut() {
        // The token is a secret: it is not echoed back.
        o.remove("token");
    }
    Ok(json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": now_rfc3339()},
        "spec": spec,
        "status": status,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_requests_are_checked_and_defaulted() {
        let a = parse_request(&json!({"spec": {}})).unwrap();
        assert_eq!(a.audiences, vec![satoken::ISSUER]);
        assert_eq!(a.expiration_seconds, 3600);
        assert!(a.pod.is_none());
        let a = parse_request(
            &json!({"spec": {"audiences": ["vault"], "expirationSeconds": 999999,
            "boundObjectRef": {"kind": "Pod", "name": "web", "uid": "u1"}}}),
        )
        .unwrap();
        assert_eq!(a.audiences, vec!["vault"]);
        assert_eq!(a.expiration_seconds, satoken::MAX_EXPIRATION_SECONDS);
        assert_eq!(a.pod, Some(("web".into(), Some("u1".into()))));
        let e = parse_request(&json!({"spec": {"expirationSeconds": 60,
            "boundObjectRef": {"kind": "Secret", "name": "s"}}}))
        .unwrap_err();
        assert_eq!(e.code, 422);
        let fields: Vec<_> = e.details.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.expirationSeconds", "spec.boundObjectRef.kind"]
        );
    }
}
