//! The review kinds' answers, as kube-apiserver gives them: SelfSubjectAccessReview and
//! SubjectAccessReview (`status.allowed`, `reason`; what `kubectl auth can-i` prints),
//! SelfSubjectRulesReview (`status.resourceRules`, `nonResourceRules`, `incomplete`; `kubectl
//! auth can-i --list`) and SelfSubjectReview (`status.userInfo`; `kubectl auth whoami`).
//!
//! A review is created and answered, never stored. The server authorizes the `create` as for
//! any kind (the bootstrap role `system:basic-user` lets every user ask about themselves),
//! then calls [`review`] with the body and writes the returned object with 201.

use serde_json::{json, Value};

use crate::authz::{Attributes, Authorizer, Evaluation, User, Verdict};
use crate::kinds::Kind;
use crate::rbac::PolicyRule;
use crate::status::ApiError;
use crate::validate::{self, FieldValidation};

/// A review's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Reviewed {
    /// The object to answer with (201).
    pub object: Value,
    /// `unknown field` warnings, as for any decoded body under `Warn`.
    pub warnings: Vec<String>,
}

/// Answers a create of the review kind `kind` by `user`: decodes and validates `body` (422 as
/// Kubernetes words it), then evaluates it. `now` (RFC 3339) stamps a SelfSubjectReview.
pub fn review(
    kind: &Kind,
    authorizer: &Authorizer,
    user: &User,
    body: &Value,
    mode: FieldValidation,
    now: &str,
) -> Result<Reviewed, ApiError> {
    let invalid = |causes| ApiError::invalid(kind.kind, kind.group, "", causes);
    let decoded = validate::decode(kind, body, mode).map_err(invalid)?;
    let causes = validate::validate_create(kind, &decoded.object);
    if !causes.is_empty() {
        return Err(invalid(causes));
    }
    let request = &decoded.object;
    let object = match (kind.group, kind.kind) {
        ("authorization.k8s.io", "SelfSubjectAccessReview") => {
            self_subject_access_review(authorizer, user, request)
        }
        ("authorization.k8s.io", "SubjectAccessReview") => {
            subject_access_review(authorizer, request)
        }
        ("authorization.k8s.io", "SelfSubjectRulesReview") => {
            self_subject_rules_review(authorizer, user, request)?
        }
        ("authentication.k8s.io", "SelfSubjectReview") => self_subject_review(user, now),
        _ => {
            return Err(ApiError::bad_request(format!(
                "{} is not a review kind",
                kind.kind
            )))
        }
    };
    Ok(Reviewed {
        object,
        warnings: decoded.warnings,
    })
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// The request attributes a review's `spec` asks about (`resourceAttributes` or
/// `nonResourceAttributes`).
fn attributes_of(spec: &Value) -> Attributes<'_> {
    let r = &spec["resourceAttributes"];
    if r.is_object() {
        return Attributes {
            verb: str_at(r, "verb"),
            group: str_at(r, "group"),
            resource: str_at(r, "resource"),
            subresource: str_at(r, "subresource"),
            namespace: str_at(r, "namespace"),
            name: str_at(r, "name"),
            path: "",
        };
    }
    let n = &spec["nonResourceAttributes"];
    Attributes {
        verb: str_at(n, "verb"),
        group: "",
        resource: "",
        subresource: "",
        namespace: "",
        name: "",
        path: str_at(n, "path"),
    }
}

/// `status` of an access review: `allowed`, and `reason` and `evaluationError` when set
/// (`denied` is never set: no navarch authorizer denies).
fn access_status(e: &Evaluation) -> Value {
    let mut status = json!({
        "allowed": !matches!(e.verdict, Verdict::NoOpinion),
    });
    if !e.reason.is_empty() {
        status["reason"] = json!(e.reason);
    }
    if !e.evaluation_error.is_empty() {
        status["evaluationError"] = json!(e.evaluation_error);
    }
    status
}

/// Whether `user` may do what the (validated) SelfSubjectAccessReview `request` asks: the
/// request with its `status`. A node's permission that depends on the pod
/// (`AllowIfPodOnNode`) is reported allowed, as Kubernetes' static node rules are.
pub fn self_subject_access_review(authorizer: &Authorizer, user: &User, request: &Value) -> Value {
    let attrs = attributes_of(&request["spec"]);
    let mut out = request.clone();
    out["status"] = access_status(&authorizer.evaluate(user, &attrs));
    out
}

/// Whether the user described in the (validated) SubjectAccessReview's `spec` may do what it
/// asks.
pub fn subject_access_review(authorizer: &Authorizer, request: &Value) -> Value {
    let spec = &request["spec"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut user = User::new(str_at(spec, "user"), strings(&spec["groups"]));
    user.uid = str_at(spec, "uid").to_string();
    if let Some(extra) = spec["extra"].as_object() {
        user.extra = extra.iter().map(|(k, v)| (k.clone(), strings(v))).collect();
    }
    let mut out = request.clone();
    out["status"] = access_status(&authorizer.evaluate(&user, &attributes_of(spec)));
    out
}

fn resource_rule(rule: &PolicyRule) -> Value {
    let mut r = json!({ "verbs": rule.verbs });
    for (key, values) in [
        ("apiGroups", &rule.api_groups),
        ("resources", &rule.resources),
        ("resourceNames", &rule.resource_names),
    ] {
        if !values.is_empty() {
            r[key] = json!(values);
        }
    }
    r
}

fn non_resource_rule(rule: &PolicyRule) -> Value {
    let mut r = json!({ "verbs": rule.verbs });
    if !rule.non_resource_urls.is_empty() {
        r["nonResourceURLs"] = json!(rule.non_resource_urls);
    }
    r
}

/// What `user` may do in the (validated) SelfSubjectRulesReview's `spec.namespace`: a new
/// object holding only the `status`, as kube-apiserver answers; 400 without a namespace.
pub fn self_subject_rules_review(
    authorizer: &Authorizer,
    user: &User,
    request: &Value,
) -> Result<Value, ApiError> {
    let namespace = str_at(&request["spec"], "namespace");
    if namespace.is_empty() {
        return Err(ApiError::bad_request("no namespace on request"));
    }
    let rules = authorizer.rules_for(user, namespace);
    let mut status = json!({
        "resourceRules": rules.resource_rules.iter().map(resource_rule).collect::<Vec<_>>(),
        "nonResourceRules": rules.non_resource_rules.iter().map(non_resource_rule).collect::<Vec<_>>(),
        "incomplete": rules.incomplete,
    });
    if !rules.evaluation_error.is_empty() {
        status["evaluationError"] = json!(rules.evaluation_error);
    }
    Ok(json!({
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {},
        "spec": {},
        "status": status,
    }))
}

/// Who `user` is: a new SelfSubjectReview created `now` (RFC 3339) with `status.userInfo`.
pub fn self_subject_review(user: &User, now: &str) -> Value {
    let mut info = json!({});
    if !user.name.is_empty() {
        info["username"] = json!(user.name);
    }
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.groups.is_empty() {
        info["groups"] = json!(user.groups);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": { "creationTimestamp": now },
        "status": { "userInfo": info },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::{GROUP_AUTHENTICATED, GROUP_MASTERS, GROUP_NODES, GROUP_VIEWERS};
    use crate::kinds::by_kind;

    const NOW: &str = "2024-05-01T10:00:00Z";

    fn ask(kind: &str, user: &User, body: Value) -> Result<Value, ApiError> {
        review(
            by_kind(kind).unwrap(),
            &Authorizer::default(),
            user,
            &body,
            FieldValidation::Strict,
            NOW,
        )
        .map(|r| r.object)
    }

    /// The body `kubectl auth can-i <verb> <resource> [-n <ns>]` sends.
    fn can_i(verb: &str, group: &str, resource: &str, ns: &str) -> Value {
        json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
               "metadata": {"creationTimestamp": null},
               "spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "group": group, "resource": resource}},
               "status": {"allowed": false}})
    }

    fn viewer() -> User {
        User::new(
            "val",
            vec![GROUP_VIEWERS.into(), GROUP_AUTHENTICATED.into()],
        )
    }

    #[test]
    fn can_i_answers_yes_and_no() {
        let v = ask(
            "SelfSubjectAccessReview",
            &viewer(),
            can_i("list", "apps", "deployments", "shop"),
        )
        .unwrap();
        assert_eq!(v["kind"], "SelfSubjectAccessReview");
        assert_eq!(v["spec"]["resourceAttributes"]["resource"], "deployments");
        assert_eq!(
            v["status"],
            json!({"allowed": true, "reason": "RBAC: allowed by ClusterRoleBinding \"navarch:viewers\" of ClusterRole \"view\" to Group \"navarch:viewers\""})
        );
        let v = ask(
            "SelfSubjectAccessReview",
            &viewer(),
            can_i("create", "", "pods", "default"),
        )
        .unwrap();
        assert_eq!(v["status"], json!({"allowed": false}));
        let admin = User::new("root", vec![GROUP_MASTERS.into()]);
        let v = ask("SelfSubjectAccessReview", &admin, can_i("*", "*", "*", "")).unwrap();
        assert_eq!(v["status"], json!({"allowed": true}));
        let url = json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                         "spec": {"nonResourceAttributes": {"path": "/debug/actors", "verb": "get"}}});
        assert_eq!(
            ask("SelfSubjectAccessReview", &viewer(), url.clone()).unwrap()["status"]["allowed"],
            false
        );
        assert_eq!(
            ask("SelfSubjectAccessReview", &admin, url).unwrap()["status"]["allowed"],
            true
        );
        // A node's conditional permission reads as allowed.
        let n1 = User::new("system:node:n1", vec![GROUP_NODES.into()]);
        let mut status = can_i("update", "", "pods", "shop");
        status["spec"]["resourceAttributes"]["subresource"] = json!("status");
        assert_eq!(
            ask("SelfSubjectAccessReview", &n1, status).unwrap()["status"]["allowed"],
            true
        );
    }

    #[test]
    fn invalid_reviews_are_refused_as_kubernetes_refuses_them() {
        let empty = json!({"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "spec": {}});
        let err = ask("SelfSubjectAccessReview", &viewer(), empty).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            r#"SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes must be specified"#
        );
        let no_ns = json!({"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1", "spec": {}});
        let err = ask("SelfSubjectRulesReview", &viewer(), no_ns).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (400, "no namespace on request")
        );
        let err = review(
            by_kind("Pod").unwrap(),
            &Authorizer::default(),
            &viewer(),
            &json!({}),
            FieldValidation::Strict,
            NOW,
        );
        assert!(err.is_err());
    }

    #[test]
    fn subject_access_review_asks_about_someone_else() {
        let sar = json!({"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
            "spec": {"user": "val", "groups": ["navarch:viewers"], "resourceAttributes": {"verb": "get", "resource": "nodes", "name": "n1"}}});
        let v = ask(
            "SubjectAccessReview",
            &User::new("root", vec![GROUP_MASTERS.into()]),
            sar.clone(),
        )
        .unwrap();
        assert_eq!(v["status"]["allowed"], true);
        assert_eq!(
            v["status"]["reason"],
            "RBAC: allowed by ClusterRoleBinding \"navarch:cluster-viewer\" of ClusterRole \"navarch:cluster-viewer\" to Group \"navarch:viewers\""
        );
        let mut other = sar;
        other["spec"]["groups"] = json!([]);
        let v = ask("SubjectAccessReview", &User::new("root", vec![]), other).unwrap();
        assert_eq!(v["status"], json!({"allowed": false}));
    }

    #[test]
    fn can_i_list_shows_the_rules() {
        let ssrr = json!({"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1",
                          "metadata": {"creationTimestamp": null}, "spec": {"namespace": "default"}});
        let v = ask("SelfSubjectRulesReview", &viewer(), ssrr.clone()).unwrap();
        assert_eq!(v["kind"], "SelfSubjectRulesReview");
        assert_eq!(v["spec"], json!({}));
        assert_eq!(v["status"]["incomplete"], false);
        assert!(v["status"].get("evaluationError").is_none());
        let resource_rules = v["status"]["resourceRules"].as_array().unwrap();
        assert!(resource_rules.contains(&json!({"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["namespaces"]})));
        assert!(resource_rules.contains(
            &json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]})
        ));
        let non_resource = v["status"]["nonResourceRules"].as_array().unwrap();
        assert!(non_resource.contains(&json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"]})));
        assert!(non_resource.iter().all(|r| r.get("resources").is_none()));

        let n1 = User::new(
            "system:node:n1",
            vec![GROUP_NODES.into(), GROUP_AUTHENTICATED.into()],
        );
        let v = ask("SelfSubjectRulesReview", &n1, ssrr).unwrap();
        assert_eq!(v["status"]["incomplete"], true);
        assert_eq!(
            v["status"]["evaluationError"],
            "node authorizer does not support user rule resolution"
        );
    }

    #[test]
    fn whoami_reports_the_user() {
        let body = json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {"creationTimestamp": null}});
        let v = ask("SelfSubjectReview", &viewer(), body.clone()).unwrap();
        assert_eq!(
            v,
            json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                   "metadata": {"creationTimestamp": NOW},
                   "status": {"userInfo": {"username": "val", "groups": ["navarch:viewers", "system:authenticated"]}}})
        );
        let mut u = User::new("ci", vec![]);
        u.uid = "1234".into();
        u.extra.insert("scopes".into(), vec!["a".into()]);
        let v = ask("SelfSubjectReview", &u, body).unwrap();
        assert_eq!(
            v["status"]["userInfo"],
            json!({"username": "ci", "uid": "1234", "extra": {"scopes": ["a"]}})
        );
    }
}
