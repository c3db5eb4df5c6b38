//! Defaults and validation of the RBAC kinds (Role, ClusterRole, RoleBinding,
//! ClusterRoleBinding) and of the review kinds' requests, as Kubernetes'
//! `pkg/apis/rbac/validation` and `pkg/apis/authorization/validation` word them.

use serde_json::{json, Map, Value};

use super::{
    array_at, child_object, dns1123_subdomain, invalid, is_empty, push_invalid, str_at, unsupported,
};
use crate::rbac::RBAC_GROUP;
use crate::status::Cause;

/// `IsValidPathSegmentName`: what RBAC object names may be (`system:controller:x` is fine).
pub(super) fn path_segment_name(name: &str) -> Vec<String> {
    for illegal in [".", ".."] {
        if name == illegal {
            return vec![format!("may not be '{illegal}'")];
        }
    }
    ["/", "%"]
        .into_iter()
        .filter(|c| name.contains(c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

/// Kubernetes' defaults for a binding: `roleRef.apiGroup` and each subject's `apiGroup`
/// (`rbac.authorization.k8s.io` for users and groups, `""` for service accounts).
pub(super) fn default_binding(obj: &mut Map<String, Value>) {
    let role_ref = child_object(obj, "roleRef");
    if str_at_map(role_ref, "apiGroup").is_empty() {
        role_ref.insert("apiGroup".into(), json!(RBAC_GROUP));
    }
    if let Some(subjects) = obj.get_mut("subjects").and_then(Value::as_array_mut) {
        for s in subjects.iter_mut().filter_map(Value::as_object_mut) {
            if !str_at_map(s, "apiGroup").is_empty() {
                continue;
            }
            match str_at_map(s, "kind") {
                "User" | "Group" => {
                    s.insert("apiGroup".into(), json!(RBAC_GROUP));
                }
                "ServiceAccount" => {
                    s.insert("apiGroup".into(), json!(""));
                }
                _ => {}
            }
        }
    }
}

fn str_at_map<'a>(m: &'a Map<String, Value>, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A list of strings as Go's `%#v` prints it in messages: `[]string{"a", "b"}`.
fn go_strings(values: &[Value]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|v| format!("{:?}", v.as_str().unwrap_or("")))
        .collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// The rules of a Role (`namespaced`) or ClusterRole: `ValidatePolicyRule` for each.
pub(super) fn validate_rules(object: &Value, namespaced: bool, out: &mut Vec<Cause>) {
    for (i, rule) in array_at(object, "rules").iter().enumerate() {
        let at = format!("rules[{i}]");
        if array_at(rule, "verbs").is_empty() {
            out.push(Cause::new(
                "FieldValueRequired",
                format!("{at}.verbs"),
                "Required value: verbs must contain at least one value",
            ));
        }
        let urls = array_at(rule, "nonResourceURLs");
        if !urls.is_empty() {
            let path = format!("{at}.nonResourceURLs");
            let shown = go_strings(urls);
            if namespaced {
                out.push(Cause::invalid(
                    path.clone(),
                    format!("Invalid value: {shown}: namespaced rules cannot apply to non-resource URLs"),
                ));
            }
            let resourceful = ["apiGroups", "resources", "resourceNames"]
                .iter()
                .any(|k| !array_at(rule, k).is_empty());
            if resourceful {
                out.push(Cause::invalid(
                    path,
                    format!("Invalid value: {shown}: rules cannot apply to both regular resources and non-resource URLs"),
                ));
            }
            continue;
        }
        if array_at(rule, "apiGroups").is_empty() {
            out.push(Cause::new(
                "FieldValueRequired",
                format!("{at}.apiGroups"),
                "Required value: resource rules must supply at least one api group",
            ));
        }
        if array_at(rule, "resources").is_empty() {
            out.push(Cause::new(
                "FieldValueRequired",
                format!("{at}.resources"),
                "Required value: resource rules must supply at least one resource",
            ));
        }
    }
}

/// A RoleBinding (`namespaced`) or ClusterRoleBinding: its roleRef and subjects.
pub(super) fn validate_binding(object: &Value, namespaced: bool, out: &mut Vec<Cause>) {
    let empty = json!({});
    let role_ref = object.get("roleRef").unwrap_or(&empty);
    let api_group = str_at(role_ref, "apiGroup").unwrap_or("");
    if api_group != RBAC_GROUP {
        out.push(unsupported(
            "roleRef.apiGroup",
            &json!(api_group),
            &[RBAC_GROUP],
        ));
    }
    let kind = str_at(role_ref, "kind").unwrap_or("");
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&kind) {
        out.push(unsupported("roleRef.kind", &json!(kind), kinds));
    }
    match str_at(role_ref, "name").unwrap_or("") {
        "" => out.push(Cause::required("roleRef.name")),
        name => push_invalid(out, "roleRef.name", &json!(name), path_segment_name(name)),
    }
    for (i, subject) in array_at(object, "subjects").iter().enumerate() {
        validate_subject(subject, namespaced, &format!("subjects[{i}]"), out);
    }
}

fn validate_subject(subject: &Value, namespaced: bool, at: &str, out: &mut Vec<Cause>) {
    let name = str_at(subject, "name").unwrap_or("");
    if name.is_empty() {
        out.push(Cause::required(format!("{at}.name")));
    }
    let api_group = str_at(subject, "apiGroup").unwrap_or("");
    match str_at(subject, "kind").unwrap_or("") {
        "ServiceAccount" => {
            if !name.is_empty() {
                push_invalid(
                    out,
                    &format!("{at}.name"),
                    &json!(name),
                    dns1123_subdomain(name),
                );
            }
            if !api_group.is_empty() {
                out.push(unsupported(
                    format!("{at}.apiGroup"),
                    &json!(api_group),
                    &[""],
                ));
            }
            if !namespaced && str_at(subject, "namespace").unwrap_or("").is_empty() {
                out.push(Cause::required(format!("{at}.namespace")));
            }
        }
        "User" | "Group" => {
            if api_group != RBAC_GROUP {
                out.push(unsupported(
                    format!("{at}.apiGroup"),
                    &json!(api_group),
                    &[RBAC_GROUP],
                ));
            }
        }
        other => out.push(unsupported(
            format!("{at}.kind"),
            &json!(other),
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

/// On update, a binding's roleRef may not change (Kubernetes' "cannot change roleRef").
pub(super) fn validate_binding_update(old: &Value, new: &Value, out: &mut Vec<Cause>) {
    let field = |v: &Value, k: &str| {
        v.get("roleRef")
            .and_then(|r| str_at(r, k))
            .unwrap_or("")
            .to_string()
    };
    let old_ref: Vec<String> = ["apiGroup", "kind", "name"]
        .iter()
        .map(|k| field(old, k))
        .collect();
    let new_ref: Vec<String> = ["apiGroup", "kind", "name"]
        .iter()
        .map(|k| field(new, k))
        .collect();
    if old_ref != new_ref {
        out.push(Cause::invalid(
            "roleRef",
            format!(
                "Invalid value: rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}: cannot change roleRef",
                new_ref[0], new_ref[1], new_ref[2]
            ),
        ));
    }
}

/// A review's `metadata` must be empty (SelfSubjectAccessReview, SubjectAccessReview).
fn metadata_empty(object: &Value, out: &mut Vec<Cause>) {
    if let Some(meta) = object.get("metadata").filter(|m| !is_empty(m)) {
        out.push(invalid("metadata", meta, "must be empty"));
    }
}

/// Exactly one of `resourceAttributes` and `nonResourceAttributes`.
fn one_kind_of_attributes(spec: &Value, out: &mut Vec<Cause>) {
    let present = |k: &str| spec.get(k).filter(|v| !v.is_null());
    match (
        present("resourceAttributes"),
        present("nonResourceAttributes"),
    ) {
        (Some(_), Some(non_resource)) => out.push(invalid(
            "spec.nonResourceAttributes",
            non_resource,
            "cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => out.push(invalid(
            "spec.resourceAttributes",
            &json!("null"),
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
        _ => {}
    }
}

/// The request of a review kind, as kube-apiserver validates it before answering.
pub(super) fn validate_review(kind: &str, object: &Value, out: &mut Vec<Cause>) {
    let empty = json!({});
    let spec = object.get("spec").unwrap_or(&empty);
    match kind {
        "SelfSubjectAccessReview" => {
            metadata_empty(object, out);
            one_kind_of_attributes(spec, out);
        }
        "SubjectAccessReview" => {
            metadata_empty(object, out);
            one_kind_of_attributes(spec, out);
            let user = str_at(spec, "user").unwrap_or("");
            if user.is_empty() && array_at(spec, "groups").is_empty() {
                out.push(invalid(
                    "spec.user",
                    &json!(user),
                    "at least one of user or group must be specified",
                ));
            }
        }
        // SelfSubjectRulesReview (its namespace is checked when answering, with a 400, as
        // Kubernetes does) and SelfSubjectReview have nothing to validate.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::kinds::{by_kind, Kind};
    use crate::status::Cause;
    use crate::validate::{decode, default, validate_create, validate_update, FieldValidation};

    fn k(kind: &str) -> &'static Kind {
        by_kind(kind).unwrap()
    }

    fn prepared(kind: &str, body: Value) -> Value {
        let mut d = decode(k(kind), &body, FieldValidation::Strict).unwrap();
        default(k(kind), &mut d.object);
        d.object
    }

    fn create(kind: &str, body: Value) -> Vec<Cause> {
        validate_create(k(kind), &prepared(kind, body))
    }

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{} {}: {}", c.reason, c.field, c.message))
            .collect()
    }

    fn role(kind: &str, rules: Value) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
               "metadata": {"name": "r", "namespace": "shop"}, "rules": rules})
    }

    fn binding(kind: &str, role_ref: Value, subjects: Value) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
               "metadata": {"name": "b", "namespace": "shop"}, "roleRef": role_ref, "subjects": subjects})
    }

    #[test]
    fn kubectl_create_role_and_binding_are_accepted_and_defaulted() {
        // `kubectl create role pod-reader --verb=get --resource=pods -o json`.
        let r = json!({"kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "pod-reader", "namespace": "default", "creationTimestamp": null},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]});
        assert_eq!(create("Role", r), vec![]);
        let b = binding(
            "RoleBinding",
            json!({"kind": "ClusterRole", "name": "view"}),
            json!([{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "dev"},
                   {"kind": "ServiceAccount", "name": "ci", "namespace": "build"}]),
        );
        let o = prepared("RoleBinding", b.clone());
        assert_eq!(o["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(o["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(o["subjects"][1]["apiGroup"], "rbac.authorization.k8s.io");
        assert!(o["subjects"][2].get("apiGroup").is_none_or(|g| g == ""));
        assert_eq!(create("RoleBinding", b), vec![]);
        let names = ["system:controller:x", "a.b", "UPPER_case"];
        for name in names {
            let mut c = role("ClusterRole", json!([]));
            c["metadata"] = json!({"name": name});
            assert_eq!(create("ClusterRole", c), vec![], "{name}");
        }
    }

    #[test]
    fn rule_errors() {
        let cases = [
            (
                "Role",
                json!([{"apiGroups": [""], "resources": ["pods"]}]),
                vec!["FieldValueRequired rules[0].verbs: Required value: verbs must contain at least one value"],
            ),
            (
                "Role",
                json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]),
                vec![r#"FieldValueInvalid rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules cannot apply to non-resource URLs"#],
            ),
            ("ClusterRole", json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]), vec![]),
            (
                "ClusterRole",
                json!([{"verbs": ["get"], "nonResourceURLs": ["/x"], "resources": ["pods"]}]),
                vec![r#"FieldValueInvalid rules[0].nonResourceURLs: Invalid value: []string{"/x"}: rules cannot apply to both regular resources and non-resource URLs"#],
            ),
            (
                "ClusterRole",
                json!([{"verbs": ["get"]}]),
                vec![
                    "FieldValueRequired rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                    "FieldValueRequired rules[0].resources: Required value: resource rules must supply at least one resource",
                ],
            ),
        ];
        for (kind, rules, want) in cases {
            assert_eq!(
                messages(&create(kind, role(kind, rules.clone()))),
                want,
                "{kind} {rules}"
            );
        }
        let mut bad = role("Role", json!([]));
        bad["metadata"]["name"] = json!("a/b");
        assert_eq!(
            messages(&create("Role", bad)),
            [r#"FieldValueInvalid metadata.name: Invalid value: "a/b": may not contain '/'"#]
        );
        bad = role("Role", json!([]));
        bad["metadata"]["name"] = json!("..");
        assert_eq!(
            messages(&create("Role", bad)),
            [r#"FieldValueInvalid metadata.name: Invalid value: "..": may not be '..'"#]
        );
    }

    #[test]
    fn aggregation_is_not_supported() {
        let mut c = role("ClusterRole", json!([]));
        c["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]});
        let causes = create("ClusterRole", c);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].reason, "FieldValueNotSupported");
        assert_eq!(causes[0].field, "aggregationRule");
        assert!(causes[0].message.starts_with("not supported by navarch"));
        // An empty aggregationRule is nothing set.
        let mut c = role("ClusterRole", json!([]));
        c["aggregationRule"] = json!({});
        assert_eq!(create("ClusterRole", c), vec![]);
    }

    #[test]
    fn binding_errors() {
        let user = json!([{"kind": "User", "name": "alice"}]);
        let cases = [
            (
                "RoleBinding",
                json!({"apiGroup": "example.com", "kind": "Role", "name": "r"}),
                user.clone(),
                vec![
                    r#"FieldValueNotSupported roleRef.apiGroup: Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io""#,
                ],
            ),
            (
                "RoleBinding",
                json!({"kind": "Secret", "name": "r"}),
                user.clone(),
                vec![
                    r#"FieldValueNotSupported roleRef.kind: Unsupported value: "Secret": supported values: "Role", "ClusterRole""#,
                ],
            ),
            (
                "ClusterRoleBinding",
                json!({"kind": "Role", "name": "r"}),
                user.clone(),
                vec![
                    r#"FieldValueNotSupported roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole""#,
                ],
            ),
            (
                "RoleBinding",
                json!({"kind": "ClusterRole"}),
                user.clone(),
                vec!["FieldValueRequired roleRef.name: Required value"],
            ),
            (
                "RoleBinding",
                json!({"kind": "ClusterRole", "name": "view"}),
                json!([{"kind": "Robot", "name": "r2"}, {"kind": "User"},
                       {"kind": "Group", "name": "g", "apiGroup": "example.com"},
                       {"kind": "ServiceAccount", "name": "Bad_Name", "apiGroup": "rbac.authorization.k8s.io"}]),
                vec![
                    r#"FieldValueNotSupported subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group""#,
                    "FieldValueRequired subjects[1].name: Required value",
                    r#"FieldValueNotSupported subjects[2].apiGroup: Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io""#,
                    r#"FieldValueInvalid subjects[3].name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#,
                    r#"FieldValueNotSupported subjects[3].apiGroup: Unsupported value: "rbac.authorization.k8s.io": supported values: """#,
                ],
            ),
            // In a ClusterRoleBinding a service account needs its namespace.
            (
                "ClusterRoleBinding",
                json!({"kind": "ClusterRole", "name": "view"}),
                json!([{"kind": "ServiceAccount", "name": "ci"}]),
                vec!["FieldValueRequired subjects[0].namespace: Required value"],
            ),
            (
                "RoleBinding",
                json!({"kind": "ClusterRole", "name": "view"}),
                json!([{"kind": "ServiceAccount", "name": "ci"}]),
                vec![],
            ),
        ];
        for (kind, role_ref, subjects, want) in cases {
            let b = binding(kind, role_ref.clone(), subjects.clone());
            assert_eq!(
                messages(&create(kind, b)),
                want,
                "{kind} {role_ref} {subjects}"
            );
        }
        // A binding without a roleRef: the zero value, refused as Kubernetes refuses it.
        let mut b = binding("RoleBinding", json!({}), user);
        b.as_object_mut().unwrap().remove("roleRef");
        assert_eq!(
            messages(&create("RoleBinding", b)),
            [
                r#"FieldValueNotSupported roleRef.kind: Unsupported value: "": supported values: "Role", "ClusterRole""#,
                "FieldValueRequired roleRef.name: Required value",
            ]
        );
    }

    #[test]
    fn role_ref_is_immutable() {
        let old = prepared(
            "RoleBinding",
            binding(
                "RoleBinding",
                json!({"kind": "ClusterRole", "name": "view"}),
                json!([]),
            ),
        );
        let mut new = old.clone();
        new["subjects"] =
            json!([{"kind": "User", "name": "bob", "apiGroup": "rbac.authorization.k8s.io"}]);
        assert_eq!(validate_update(k("RoleBinding"), &old, &new), vec![]);
        new["roleRef"]["name"] = json!("edit");
        assert_eq!(
            messages(&validate_update(k("RoleBinding"), &old, &new)),
            [
                r#"FieldValueInvalid roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: cannot change roleRef"#
            ]
        );
        let old = prepared(
            "ClusterRoleBinding",
            binding(
                "ClusterRoleBinding",
                json!({"kind": "ClusterRole", "name": "view"}),
                json!([]),
            ),
        );
        let mut new = old.clone();
        new["roleRef"]["kind"] = json!("Role");
        let causes = validate_update(k("ClusterRoleBinding"), &old, &new);
        assert!(causes.iter().any(|c| c.field == "roleRef"), "{causes:?}");
    }

    fn review(kind: &str, spec: Value) -> Value {
        let group = by_kind(kind).unwrap().api_version();
        json!({"kind": kind, "apiVersion": group, "metadata": {"creationTimestamp": null}, "spec": spec})
    }

    #[test]
    fn review_requests() {
        // What `kubectl auth can-i create pods` sends.
        let ssar = review(
            "SelfSubjectAccessReview",
            json!({"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}}),
        );
        assert_eq!(create("SelfSubjectAccessReview", ssar), vec![]);
        let url = review(
            "SelfSubjectAccessReview",
            json!({"nonResourceAttributes": {"path": "/api", "verb": "get"}}),
        );
        assert_eq!(create("SelfSubjectAccessReview", url), vec![]);
        assert_eq!(
            messages(&create(
                "SelfSubjectAccessReview",
                review("SelfSubjectAccessReview", json!({}))
            )),
            [
                r#"FieldValueInvalid spec.resourceAttributes: Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes must be specified"#
            ]
        );
        let both = review(
            "SelfSubjectAccessReview",
            json!({"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"path": "/api", "verb": "get"}}),
        );
        let causes = create("SelfSubjectAccessReview", both);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.nonResourceAttributes");
        assert!(causes[0]
            .message
            .ends_with("cannot be specified in combination with resourceAttributes"));
        let mut named = review(
            "SelfSubjectAccessReview",
            json!({"nonResourceAttributes": {"path": "/", "verb": "get"}}),
        );
        named["metadata"] = json!({"name": "x"});
        assert_eq!(
            create("SelfSubjectAccessReview", named)[0].field,
            "metadata"
        );
        let selector = review(
            "SelfSubjectAccessReview",
            json!({"resourceAttributes": {"verb": "list", "resource": "pods", "labelSelector": {"rawSelector": "a=b"}}}),
        );
        let causes = create("SelfSubjectAccessReview", selector);
        assert_eq!(causes[0].reason, "FieldValueNotSupported");
        assert_eq!(causes[0].field, "spec.resourceAttributes.labelSelector");

        let sar = review(
            "SubjectAccessReview",
            json!({"nonResourceAttributes": {"path": "/api", "verb": "get"}}),
        );
        assert_eq!(
            messages(&create("SubjectAccessReview", sar)),
            [
                r#"FieldValueInvalid spec.user: Invalid value: "": at least one of user or group must be specified"#
            ]
        );
        let sar = review(
            "SubjectAccessReview",
            json!({"user": "alice", "resourceAttributes": {"verb": "get", "resource": "pods"}}),
        );
        assert_eq!(create("SubjectAccessReview", sar), vec![]);
        assert_eq!(
            create(
                "SelfSubjectRulesReview",
                review("SelfSubjectRulesReview", json!({"namespace": "default"}))
            ),
            vec![]
        );
        let ssr = json!({"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                         "metadata": {"creationTimestamp": null}, "status": {"userInfo": {}}});
        assert_eq!(create("SelfSubjectReview", ssr), vec![]);
    }
}
