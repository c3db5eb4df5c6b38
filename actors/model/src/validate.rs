//! Decoding, defaulting and validating objects as Kubernetes does for the fields we support;
//! fields we do not implement are refused, never silently accepted.
//!
//! The pipeline the API server runs on a write is [`decode`] (schema check, unknown fields),
//! [`default`] (Kubernetes' defaults), then [`validate_create`] or [`validate_update`].
//! Which fields navarch implements (under `spec`, or an RBAC object's `rules`, `roleRef` and
//! `subjects`) is decided by one table, [`SUPPORTED_FIELDS`] (with [`POD_SPEC_FIELDS`] for
//! every embedded PodSpec): extend it there when a feature lands. The RBAC kinds' and the
//! review kinds' own rules live in `validate/rbac.rs`; a review kind (not stored) is a request
//! without a name, validated as Kubernetes validates the request.

mod affinity;
mod discovery;
pub use discovery::API_SERVER_SLICE_MANAGER;
mod policy;
mod rbac;

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenReview};
use k8s_openapi::api::authorization::v1::{
    SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, Node, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::schemars::JsonSchema;

use crate::kinds::Kind;
use crate::selector::LabelSelector;
use crate::status::Cause;

/// The `fieldValidation` query parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    /// `Ignore`, `Warn` or `Strict` (Kubernetes' spelling); `None` for anything else.
    pub fn parse(s: &str) -> Option<FieldValidation> {
        match s {
            "Ignore" => Some(FieldValidation::Ignore),
            "Warn" => Some(FieldValidation::Warn),
            "Strict" => Some(FieldValidation::Strict),
            _ => None,
        }
    }
}

/// The result of decoding a request body.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// The object with unknown fields dropped, as the typed schema would keep it.
    pub object: Value,
    /// `unknown field "spec.foo"` messages (sent as `Warning` headers under `Warn`).
    pub warnings: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// The table of supported fields.
// ---------------------------------------------------------------------------------------

/// One entry of the supported-fields table. Paths are dotted JSON paths in which `[]`
/// stands for every element of a list (`containers[].image`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Supported {
    /// The field and everything below it are implemented.
    Any(&'static str),
    /// A scalar field of which only these values are implemented.
    OneOf(&'static str, &'static [&'static str]),
    /// A PodSpec lives at this path: [`POD_SPEC_FIELDS`] applies below it.
    PodSpec(&'static str),
}

/// The PodSpec fields navarch implements, relative to the PodSpec (a Pod's `spec`, a
/// template's `spec.template.spec`). Anything else set in a PodSpec is refused.
pub const POD_SPEC_FIELDS: &[Supported] = &[
    Supported::Any("containers[].name"),
    Supported::Any("containers[].image"),
    Supported::Any("containers[].command"),
    Supported::Any("containers[].args"),
    Supported::Any("containers[].workingDir"),
    Supported::Any("containers[].env[].name"),
    Supported::Any("containers[].env[].value"),
    Supported::Any("containers[].env[].valueFrom.fieldRef"),
    Supported::Any("containers[].env[].valueFrom.resourceFieldRef"),
    Supported::Any("containers[].env[].valueFrom.configMapKeyRef"),
    Supported::Any("containers[].env[].valueFrom.secretKeyRef"),
    Supported::Any("containers[].envFrom"),
    Supported::Any("containers[].ports[].name"),
    Supported::Any("containers[].ports[].containerPort"),
    Supported::Any("containers[].ports[].protocol"),
    Supported::Any("containers[].ports[].hostPort"),
    Supported::Any("containers[].ports[].hostIP"),
    Supported::Any("containers[].resources.limits"),
    Supported::Any("containers[].resources.requests"),
    Supported::Any("containers[].imagePullPolicy"),
    Supported::Any("containers[].terminationMessagePath"),
    Supported::Any("containers[].terminationMessagePolicy"),
    Supported::Any("containers[].volumeMounts[].name"),
    Supported::Any("containers[].volumeMounts[].mountPath"),
    Supported::Any("containers[].volumeMounts[].readOnly"),
    Supported::Any("containers[].volumeMounts[].subPath"),
    Supported::Any("containers[].securityContext.readOnlyRootFilesystem"),
    Supported::Any("initContainers[].name"),
    Supported::Any("initContainers[].image"),
    Supported::Any("initContainers[].command"),
    Supported::Any("initContainers[].args"),
    Supported::Any("initContainers[].workingDir"),
    Supported::Any("initContainers[].env[].name"),
    Supported::Any("initContainers[].env[].value"),
    Supported::Any("initContainers[].env[].valueFrom.fieldRef"),
    Supported::Any("initContainers[].env[].valueFrom.resourceFieldRef"),
    Supported::Any("initContainers[].env[].valueFrom.configMapKeyRef"),
    Supported::Any("initContainers[].env[].valueFrom.secretKeyRef"),
    Supported::Any("initContainers[].envFrom"),
    Supported::Any("initContainers[].ports[].name"),
    Supported::Any("initContainers[].ports[].containerPort"),
    Supported::Any("initContainers[].ports[].protocol"),
    Supported::Any("initContainers[].ports[].hostPort"),
    Supported::Any("initContainers[].ports[].hostIP"),
    Supported::Any("initContainers[].resources.limits"),
    Supported::Any("initContainers[].resources.requests"),
    Supported::Any("initContainers[].imagePullPolicy"),
    Supported::Any("initContainers[].terminationMessagePath"),
    Supported::Any("initContainers[].terminationMessagePolicy"),
    Supported::Any("initContainers[].volumeMounts[].name"),
    Supported::Any("initContainers[].volumeMounts[].mountPath"),
    Supported::Any("initContainers[].volumeMounts[].readOnly"),
    Supported::Any("initContainers[].volumeMounts[].subPath"),
    Supported::Any("initContainers[].securityContext.readOnlyRootFilesystem"),
    Supported::Any("containers[].livenessProbe.exec.command"),
    Supported::Any("containers[].livenessProbe.httpGet.path"),
    Supported::Any("containers[].livenessProbe.httpGet.port"),
    Supported::Any("containers[].livenessProbe.httpGet.host"),
    Supported::Any("containers[].livenessProbe.httpGet.httpHeaders"),
    Supported::Any("containers[].livenessProbe.tcpSocket.port"),
    Supported::Any("containers[].livenessProbe.tcpSocket.host"),
    Supported::Any("containers[].livenessProbe.initialDelaySeconds"),
    Supported::Any("containers[].livenessProbe.periodSeconds"),
    Supported::Any("containers[].livenessProbe.timeoutSeconds"),
    Supported::Any("containers[].livenessProbe.successThreshold"),
    Supported::Any("containers[].livenessProbe.failureThreshold"),
    Supported::Any("containers[].livenessProbe.terminationGracePeriodSeconds"),
    Supported::OneOf("containers[].livenessProbe.httpGet.scheme", &["HTTP"]),
    Supported::Any("containers[].readinessProbe.exec.command"),
    Supported::Any("containers[].readinessProbe.httpGet.path"),
    Supported::Any("containers[].readinessProbe.httpGet.port"),
    Supported::Any("containers[].readinessProbe.httpGet.host"),
    Supported::Any("containers[].readinessProbe.httpGet.httpHeaders"),
    Supported::Any("containers[].readinessProbe.tcpSocket.port"),
    Supported::Any("containers[].readinessProbe.tcpSocket.host"),
    Supported::Any("containers[].readinessProbe.initialDelaySeconds"),
    Supported::Any("containers[].readinessProbe.periodSeconds"),
    Supported::Any("containers[].readinessProbe.timeoutSeconds"),
    Supported::Any("containers[].readinessProbe.successThreshold"),
    Supported::Any("containers[].readinessProbe.failureThreshold"),
    Supported::Any("containers[].readinessProbe.terminationGracePeriodSeconds"),
    Supported::OneOf("containers[].readinessProbe.httpGet.scheme", &["HTTP"]),
    Supported::Any("containers[].startupProbe.exec.command"),
    Supported::Any("containers[].startupProbe.httpGet.path"),
    Supported::Any("containers[].startupProbe.httpGet.port"),
    Supported::Any("containers[].startupProbe.httpGet.host"),
    Supported::Any("containers[].startupProbe.httpGet.httpHeaders"),
    Supported::Any("containers[].startupProbe.tcpSocket.port"),
    Supported::Any("containers[].startupProbe.tcpSocket.host"),
    Supported::Any("containers[].startupProbe.initialDelaySeconds"),
    Supported::Any("containers[].startupProbe.periodSeconds"),
    Supported::Any("containers[].startupProbe.timeoutSeconds"),
    Supported::Any("containers[].startupProbe.successThreshold"),
    Supported::Any("containers[].startupProbe.failureThreshold"),
    Supported::Any("containers[].startupProbe.terminationGracePeriodSeconds"),
    Supported::OneOf("containers[].startupProbe.httpGet.scheme", &["HTTP"]),
    Supported::Any("containers[].lifecycle.preStop.exec.command"),
    Supported::Any("volumes[].name"),
    Supported::Any("volumes[].emptyDir"),
    Supported::Any("volumes[].hostPath"),
    Supported::Any("volumes[].configMap"),
    Supported::Any("volumes[].secret"),
    Supported::Any("volumes[].downwardAPI"),
    Supported::Any("volumes[].projected.defaultMode"),
    Supported::Any("volumes[].projected.sources[].configMap"),
    Supported::Any("volumes[].projected.sources[].secret"),
    Supported::Any("volumes[].projected.sources[].downwardAPI"),
    Supported::Any("volumes[].projected.sources[].serviceAccountToken"),
    Supported::Any("hostAliases"),
    Supported::Any("runtimeClassName"),
    Supported::Any("restartPolicy"),
    Supported::Any("terminationGracePeriodSeconds"),
    Supported::Any("activeDeadlineSeconds"),
    Supported::OneOf(
        "dnsPolicy",
        &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
    ),
    Supported::Any("dnsConfig.nameservers"),
    Supported::Any("dnsConfig.searches"),
    Supported::Any("dnsConfig.options"),
    Supported::Any("schedulerName"),
    Supported::Any("nodeName"),
    Supported::Any("nodeSelector"),
    Supported::Any("tolerations"),
    // Node affinity only: `podAffinity` and `podAntiAffinity` are refused.
    Supported::Any("affinity.nodeAffinity"),
    Supported::Any("hostname"),
    Supported::Any("subdomain"),
    Supported::Any("enableServiceLinks"),
    Supported::Any("serviceAccountName"),
    Supported::Any("serviceAccount"),
    Supported::Any("automountServiceAccountToken"),
    // `securityContext` is accepted only empty: no entry, so any field set in it is refused.
];

/// THE table of what navarch implements in each kind's top-level fields (`spec`, or `rules`,
/// `roleRef` and `subjects` for the RBAC kinds): anything set (non-null, non-empty) outside
/// `apiVersion`, `kind`, `metadata` and `status` that no entry covers is refused with
/// `FieldValueNotSupported` (`not supported by navarch: ...`). `status` is never checked
/// (controllers and nodes write it; a review's is the answer). Kinds absent here (Endpoints,
/// EndpointSlice, Event) have no `spec`; their data is accepted
/// whole. Later issues that implement a field extend this table (and [`POD_SPEC_FIELDS`]).
pub const SUPPORTED_FIELDS: &[(&str, &[Supported])] = &[
    ("Namespace", &[Supported::Any("spec.finalizers")]),
    // Tokens are projected into pods (never kept in Secrets): `secrets` and
    // `imagePullSecrets` are refused.
    (
        "ServiceAccount",
        &[Supported::Any("automountServiceAccountToken")],
    ),
    (
        "Node",
        &[
            Supported::Any("spec.podCIDR"),
            Supported::Any("spec.podCIDRs"),
            Supported::Any("spec.taints"),
            Supported::Any("spec.unschedulable"),
            Supported::Any("spec.providerID"),
        ],
    ),
    ("Pod", &[Supported::PodSpec("spec")]),
    (
        "Service",
        &[
            Supported::OneOf("spec.type", &["ClusterIP", "NodePort"]),
            Supported::Any("spec.selector"),
            Supported::Any("spec.ports[].name"),
            Supported::OneOf("spec.ports[].protocol", &["TCP", "UDP"]),
            Supported::Any("spec.ports[].port"),
            Supported::Any("spec.ports[].targetPort"),
            Supported::Any("spec.ports[].nodePort"),
            Supported::Any("spec.clusterIP"),
            Supported::Any("spec.clusterIPs"),
            Supported::OneOf("spec.sessionAffinity", &["None", "ClientIP"]),
            Supported::Any("spec.sessionAffinityConfig.clientIP.timeoutSeconds"),
            Supported::Any("spec.ipFamilies"),
            Supported::Any("spec.ipFamilyPolicy"),
            Supported::Any("spec.internalTrafficPolicy"),
            Supported::OneOf("spec.externalTrafficPolicy", &["Cluster", "Local"]),
        ],
    ),
    (
        "Deployment",
        &[
            Supported::Any("spec.selector"),
            Supported::Any("spec.template.metadata"),
            Supported::PodSpec("spec.template.spec"),
            Supported::Any("spec.replicas"),
            Supported::Any("spec.strategy"),
            Supported::Any("spec.minReadySeconds"),
            Supported::Any("spec.revisionHistoryLimit"),
            Supported::Any("spec.progressDeadlineSeconds"),
            Supported::Any("spec.paused"),
        ],
    ),
    (
        "ReplicaSet",
        &[
            Supported::Any("spec.selector"),
            Supported::Any("spec.template.metadata"),
            Supported::PodSpec("spec.template.spec"),
            Supported::Any("spec.replicas"),
            Supported::Any("spec.minReadySeconds"),
        ],
    ),
    ("Lease", &[Supported::Any("spec")]),
    // A Secret's `stringData` is merged into `data` before validation, as Kubernetes does.
    (
        "Secret",
        &[
            Supported::Any("data"),
            Supported::Any("type"),
            Supported::Any("immutable"),
        ],
    ),
    // A ConfigMap has no `spec`: its top-level fields are checked.
    (
        "ConfigMap",
        &[
            Supported::Any("data"),
            Supported::Any("binaryData"),
            Supported::Any("immutable"),
        ],
    ),
    // A RuntimeClass has no `spec` either. Its `overhead` (charged to its pods by admission
    // and counted by the scheduler) and `scheduling` (merged into its pods' node selectors
    // and tolerations) are not implemented, so they are refused.
    ("RuntimeClass", &[Supported::Any("handler")]),
    (
        "PodDisruptionBudget",
        &[
            Supported::Any("spec.minAvailable"),
            Supported::Any("spec.maxUnavailable"),
            Supported::Any("spec.selector"),
            Supported::Any("spec.unhealthyPodEvictionPolicy"),
        ],
    ),
    // RBAC objects have no `spec`: their top-level fields are checked. `aggregationRule` is
    // not implemented (a ClusterRole's rules are its own), so it is refused.
    ("Role", &[Supported::Any("rules")]),
    ("ClusterRole", &[Supported::Any("rules")]),
    (
        "RoleBinding",
        &[Supported::Any("roleRef"), Supported::Any("subjects")],
    ),
    (
        "ClusterRoleBinding",
        &[Supported::Any("roleRef"), Supported::Any("subjects")],
    ),
    // Review requests: the attributes navarch's authorizers decide on. Field and label
    // selectors in resourceAttributes are not.
    ("SelfSubjectAccessReview", REVIEW_ATTRIBUTES),
    (
        "SelfSubjectRulesReview",
        &[Supported::Any("spec.namespace")],
    ),
    (
        "SubjectAccessReview",
        &[
            Supported::Any("spec.resourceAttributes.namespace"),
            Supported::Any("spec.resourceAttributes.verb"),
            Supported::Any("spec.resourceAttributes.group"),
            Supported::Any("spec.resourceAttributes.version"),
            Supported::Any("spec.resourceAttributes.resource"),
            Supported::Any("spec.resourceAttributes.subresource"),
            Supported::Any("spec.resourceAttributes.name"),
            Supported::Any("spec.nonResourceAttributes"),
            Supported::Any("spec.user"),
            Supported::Any("spec.groups"),
            Supported::Any("spec.uid"),
            Supported::Any("spec.extra"),
        ],
    ),
    ("SelfSubjectReview", &[]),
    (
        "TokenReview",
        &[
            Supported::Any("spec.token"),
            Supported::Any("spec.audiences"),
        ],
    ),
];

/// What a SelfSubjectAccessReview may ask about.
const REVIEW_ATTRIBUTES: &[Supported] = &[
    Supported::Any("spec.resourceAttributes.namespace"),
    Supported::Any("spec.resourceAttributes.verb"),
    Supported::Any("spec.resourceAttributes.group"),
    Supported::Any("spec.resourceAttributes.version"),
    Supported::Any("spec.resourceAttributes.resource"),
    Supported::Any("spec.resourceAttributes.subresource"),
    Supported::Any("spec.resourceAttributes.name"),
    Supported::Any("spec.nonResourceAttributes"),
];

/// Supported paths, PodSpecs expanded: `(path, allowed values or None for any)`.
pub type SupportedPaths = Vec<(String, Option<&'static [&'static str]>)>;

/// The supported paths of `kind`, PodSpecs expanded. `None` when the kind's `spec` is not
/// checked at all.
pub fn supported_paths(kind: &str) -> Option<&'static SupportedPaths> {
    // Built once per kind: validation consults it on every write.
    static CACHE: std::sync::OnceLock<Vec<(&'static str, SupportedPaths)>> =
        std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(|| {
        SUPPORTED_FIELDS
            .iter()
            .filter_map(|(k, _)| build_supported_paths(k).map(|p| (*k, p)))
            .collect()
    });
    cache.iter().find(|(k, _)| *k == kind).map(|(_, p)| p)
}

fn build_supported_paths(kind: &str) -> Option<SupportedPaths> {
    let (_, entries) = SUPPORTED_FIELDS.iter().find(|(k, _)| *k == kind)?;
    let mut out = Vec::new();
    for e in entries.iter() {
        match e {
            Supported::Any(p) => out.push((p.to_string(), None)),
            Supported::OneOf(p, v) => out.push((p.to_string(), Some(*v))),
            Supported::PodSpec(prefix) => {
                for pe in POD_SPEC_FIELDS {
                    match pe {
                        Supported::Any(p) => out.push((format!("{prefix}.{p}"), None)),
                        Supported::OneOf(p, v) => out.push((format!("{prefix}.{p}"), Some(*v))),
                        Supported::PodSpec(_) => {}
                    }
                }
            }
        }
    }
    Some(out)
}

type Rules = SupportedPaths;

/// `path` is `prefix` or lies below it.
fn is_under(path: &str, prefix: &str) -> bool {
    path == prefix
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), Some(b'.') | Some(b'[')))
}

/// Refuses every field set outside the object's metadata and status that the table does not
/// cover.
fn check_supported(kind: &Kind, object: &Value, out: &mut Vec<Cause>) {
    let Some(rules) = supported_paths(kind.kind) else {
        return;
    };
    let Some(fields) = object.as_object() else {
        return;
    };
    for (key, value) in fields {
        if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata" | "status") {
            walk_supported(value, key, key, rules, out);
        }
    }
}

fn walk_supported(v: &Value, path: &str, norm: &str, rules: &Rules, out: &mut Vec<Cause>) {
    if is_empty(v) {
        return;
    }
    for (p, values) in rules {
        match values {
            None if is_under(norm, p) => return,
            Some(values) if norm == p => {
                if let Some(s) = scalar_string(v) {
                    if values.contains(&s.as_str()) {
                        return;
                    }
                }
                out.push(Cause::not_supported(
                    path,
                    format!(
                        "not supported by navarch: Unsupported value: {}: supported values: {}",
                        show(v),
                        quoted_list(values)
                    ),
                ));
                return;
            }
            _ => {}
        }
    }
    let below = rules.iter().any(|(p, _)| is_under(p, norm));
    match v {
        Value::Object(m) if below => {
            for (k, child) in m {
                walk_supported(
                    child,
                    &format!("{path}.{k}"),
                    &format!("{norm}.{k}"),
                    rules,
                    out,
                );
            }
        }
        Value::Array(a) if below => {
            for (i, child) in a.iter().enumerate() {
                walk_supported(
                    child,
                    &format!("{path}[{i}]"),
                    &format!("{norm}[]"),
                    rules,
                    out,
                );
            }
        }
        _ => out.push(Cause::not_supported(
            path,
            "not supported by navarch: this field is not implemented",
        )),
    }
}

/// Null, `""`, `false`, and objects or lists holding only such values.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(_) => false,
        Value::Array(a) => a.iter().all(is_empty),
        Value::Object(m) => m.values().all(is_empty),
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A value as Kubernetes quotes it in messages: strings quoted, the rest as JSON.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn quoted_list(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------
// Decoding.
// ---------------------------------------------------------------------------------------

/// Checks `body` against the kind's schema (via its `k8s-openapi` type): wrong types are
/// errors; unknown fields are errors under `Strict` (one cause per field, naming it, like
/// `unknown field "spec.foo"`), warnings under `Warn`, dropped silently under `Ignore`.
pub fn decode(kind: &Kind, body: &Value, mode: FieldValidation) -> Result<Decoded, Vec<Cause>> {
    let Some(input) = body.as_object() else {
        return Err(vec![Cause::new(
            "FieldValueTypeInvalid",
            "",
            format!(
                "Invalid value: {}: the body must be a JSON object",
                json_type(body)
            ),
        )]);
    };
    let mut input = input.clone();
    set_if_absent(&mut input, "apiVersion", json!(kind.api_version()));
    set_if_absent(&mut input, "kind", json!(kind.kind));
    for (key, expected) in [
        ("apiVersion", kind.api_version()),
        ("kind", kind.kind.into()),
    ] {
        if input.get(key) != Some(&json!(expected)) {
            return Err(vec![invalid(
                key,
                input.get(key).unwrap_or(&Value::Null),
                &format!("must be {expected:?}"),
            )]);
        }
    }
    let input = Value::Object(input);
    let object = match kind.kind {
        "Namespace" => round_trip::<Namespace>(&input),
        "Node" => round_trip::<Node>(&input),
        "Pod" => round_trip::<Pod>(&input),
        "Service" => round_trip::<Service>(&input),
        "ConfigMap" => round_trip::<ConfigMap>(&input),
        "Secret" => round_trip::<Secret>(&input),
        "ServiceAccount" => round_trip::<ServiceAccount>(&input),
        "Endpoints" => round_trip::<Endpoints>(&input),
        "Event" => round_trip::<Event>(&input),
        "Deployment" => round_trip::<Deployment>(&input),
        "ReplicaSet" => round_trip::<ReplicaSet>(&input),
        "Lease" => round_trip::<Lease>(&input),
        "EndpointSlice" => round_trip::<EndpointSlice>(&input),
        "PodDisruptionBudget" => round_trip::<PodDisruptionBudget>(&input),
        "RuntimeClass" => round_trip::<RuntimeClass>(&input),
        "Role" => round_trip::<Role>(&input),
        "ClusterRole" => round_trip::<ClusterRole>(&input),
        "RoleBinding" => round_trip::<RoleBinding>(&input),
        "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(&input),
        "SelfSubjectAccessReview" => round_trip::<SelfSubjectAccessReview>(&input),
        "SelfSubjectRulesReview" => round_trip::<SelfSubjectRulesReview>(&input),
        "SubjectAccessReview" => round_trip::<SubjectAccessReview>(&input),
        "SelfSubjectReview" => round_trip::<SelfSubjectReview>(&input),
        "TokenReview" => round_trip::<TokenReview>(&input),
        other => Err(vec![Cause::new(
            "FieldValueNotSupported",
            "kind",
            format!("not supported by navarch: kind {other:?}"),
        )]),
    }?;
    let mut unknown = Vec::new();
    find_unknown(&input, &object, "", &mut unknown);
    let messages: Vec<String> = unknown
        .iter()
        .map(|p| format!("unknown field {p:?}"))
        .collect();
    match mode {
        FieldValidation::Strict if !unknown.is_empty() => Err(unknown
            .into_iter()
            .zip(messages)
            .map(|(p, m)| Cause::invalid(p, m))
            .collect()),
        FieldValidation::Strict | FieldValidation::Ignore => Ok(Decoded {
            object,
            warnings: Vec::new(),
        }),
        FieldValidation::Warn => Ok(Decoded {
            object,
            warnings: messages,
        }),
    }
}

/// Deserializes into `T` and serializes back; a type error is located with `T`'s schema.
fn round_trip<T: DeserializeOwned + Serialize + JsonSchema>(
    input: &Value,
) -> Result<Value, Vec<Cause>> {
    match serde_json::from_value::<T>(input.clone()) {
        Ok(typed) => serde_json::to_value(&typed)
            .map_err(|e| vec![Cause::new("FieldValueTypeInvalid", "", e.to_string())]),
        Err(e) => {
            let schema = k8s_openapi::schemars::SchemaGenerator::default()
                .into_root_schema_for::<T>()
                .to_value();
            let mut causes = Vec::new();
            type_check(&schema, &schema, input, "", &mut causes);
            if causes.is_empty() {
                causes.push(Cause::new("FieldValueTypeInvalid", "", e.to_string()));
            }
            Err(causes)
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn resolve<'a>(root: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..32 {
        let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let name = r
            .strip_prefix("#/$defs/")
            .or_else(|| r.strip_prefix("#/definitions/"))
            .unwrap_or(r);
        let found = root
            .get("$defs")
            .and_then(|d| d.get(name))
            .or_else(|| root.get("definitions").and_then(|d| d.get(name)));
        match found {
            Some(s) => schema = s,
            None => break,
        }
    }
    schema
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Finds the fields whose JSON type does not fit the schema (what serde refused).
fn type_check(root: &Value, schema: &Value, v: &Value, path: &str, out: &mut Vec<Cause>) {
    if v.is_null() {
        return;
    }
    let schema = resolve(root, schema);
    let mismatch = |expected: &str, out: &mut Vec<Cause>| {
        out.push(Cause::new(
            "FieldValueTypeInvalid",
            path,
            format!(
                "Invalid value: {}: {path} in body must be of type {expected}: {}",
                show(&json!(json_type(v))),
                show(v)
            ),
        ))
    };
    if schema.get("x-kubernetes-int-or-string").is_some() {
        if !(v.is_string() || v.is_number()) {
            mismatch("int-or-string", out);
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
    match ty {
        "object" => {
            let Some(m) = v.as_object() else {
                return mismatch("object", out);
            };
            let props = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties");
            for (k, child) in m {
                if path.is_empty() && (k == "apiVersion" || k == "kind") {
                    continue;
                }
                let sub = props
                    .and_then(|p| p.get(k))
                    .or(extra.filter(|e| e.is_object()));
                if let Some(sub) = sub {
                    type_check(root, sub, child, &join(path, k), out);
                }
            }
        }
        "array" => {
            let Some(a) = v.as_array() else {
                return mismatch("array", out);
            };
            if let Some(items) = schema.get("items") {
                for (i, child) in a.iter().enumerate() {
                    type_check(root, items, child, &format!("{path}[{i}]"), out);
                }
            }
        }
        "string" => match v.as_str() {
            None => mismatch("string", out),
            Some(s) if format == "date-time" => {
                if s.parse::<k8s_openapi::jiff::Timestamp>().is_err() {
                    out.push(Cause::new(
                        "FieldValueTypeInvalid",
                        path,
                        format!("Invalid value: {s:?}: must be an RFC 3339 date-time"),
                    ));
                }
            }
            Some(_) => {}
        },
        "integer" => {
            let ok = match format {
                "int32" => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
                _ => v.as_i64().is_some(),
            };
            if !ok {
                mismatch(if format.is_empty() { "integer" } else { format }, out);
            }
        }
        "number" if !v.is_number() => mismatch("number", out),
        "boolean" if !v.is_boolean() => mismatch("boolean", out),
        _ => {}
    }
}

/// Every key set (non-null) in `input` that the typed round trip did not keep.
fn find_unknown(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(im), Value::Object(tm)) => {
            for (k, iv) in im {
                if iv.is_null() {
                    continue;
                }
                let p = join(path, k);
                match tm.get(k) {
                    None => out.push(p),
                    Some(tv) => find_unknown(iv, tv, &p, out),
                }
            }
        }
        (Value::Array(ia), Value::Array(ta)) => {
            for (i, (iv, tv)) in ia.iter().zip(ta).enumerate() {
                find_unknown(iv, tv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Defaults.
// ---------------------------------------------------------------------------------------

/// Fills Kubernetes' defaults for the fields we support (e.g. Deployment `replicas: 1`,
/// `strategy`, `revisionHistoryLimit`; container `imagePullPolicy`, `terminationMessagePath`;
/// Pod `restartPolicy`, `dnsPolicy`, `schedulerName`; Service `type`, port `protocol`,
/// `targetPort`; Namespace `status.phase`).
pub fn default(kind: &Kind, object: &mut Value) {
    let Some(obj) = object.as_object_mut() else {
        return;
    };
    match kind.kind {
        "Secret" => default_secret(obj),
        "Pod" => {
            default_pod_spec(child_object(obj, "spec"));
            if obj.get("status").is_none_or(is_empty) {
                obj.insert("status".into(), json!({"phase": "Pending"}));
            }
        }
        "Deployment" => {
            let spec = child_object(obj, "spec");
            set_if_absent(spec, "replicas", json!(1));
            let strategy = child_object(spec, "strategy");
            set_if_absent(strategy, "type", json!("RollingUpdate"));
            if strategy.get("type") == Some(&json!("RollingUpdate")) {
                let ru = child_object(strategy, "rollingUpdate");
                set_if_absent(ru, "maxUnavailable", json!("25%"));
                set_if_absent(ru, "maxSurge", json!("25%"));
            }
            set_if_absent(spec, "revisionHistoryLimit", json!(10));
            set_if_absent(spec, "progressDeadlineSeconds", json!(600));
            default_template(spec);
        }
        "ReplicaSet" => {
            let spec = child_object(obj, "spec");
            set_if_absent(spec, "replicas", json!(1));
            default_template(spec);
        }
        "Service" => {
            let spec = child_object(obj, "spec");
            set_if_absent(spec, "type", json!("ClusterIP"));
            set_if_absent(spec, "sessionAffinity", json!("None"));
            if spec.get("sessionAffinity") == Some(&json!("ClientIP")) {
                set_if_absent(
                    spec,
                    "sessionAffinityConfig",
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                    set_if_absent(port, "protocol", json!("TCP"));
                    if let Some(p) = port.get("port").cloned() {
                        set_if_absent(port, "targetPort", p);
                    }
                }
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => rbac::default_binding(obj),
        "EndpointSlice" => discovery::default_slice(obj),
        "PodDisruptionBudget" => policy::default_budget(obj),
        // `spec.finalizers` is not defaulted (Kubernetes adds `kubernetes` on create only,
        // in the API server, and lets the namespace controller remove it).
        "Namespace" => {
            let status = child_object(obj, "status");
            set_if_absent(status, "phase", json!("Active"));
        }
        _ => {}
    }
}

/// `obj[key]` as an object, created (or replacing null) when absent.
fn child_object<'a>(obj: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = obj.entry(key).or_insert(Value::Null);
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().unwrap()
}

fn set_if_absent(obj: &mut Map<String, Value>, key: &str, value: Value) {
    if obj.get(key).is_none_or(Value::is_null) {
        obj.insert(key.to_string(), value);
    }
}

fn default_template(spec: &mut Map<String, Value>) {
    let template = child_object(spec, "template");
    default_pod_spec(child_object(template, "spec"));
}

fn default_pod_spec(spec: &mut Map<String, Value>) {
    set_if_absent(spec, "restartPolicy", json!("Always"));
    set_if_absent(spec, "terminationGracePeriodSeconds", json!(30));
    set_if_absent(spec, "dnsPolicy", json!("ClusterFirst"));
    set_if_absent(spec, "schedulerName", json!("default-scheduler"));
    set_if_absent(spec, "securityContext", json!({}));
    if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            let policy = match c.get("image").and_then(Value::as_str) {
                Some(image) if image_is_latest(image) => "Always",
                Some(_) => "IfNotPresent",
                None => "Always",
            };
            set_if_absent(c, "imagePullPolicy", json!(policy));
            set_if_absent(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_if_absent(c, "terminationMessagePolicy", json!("File"));
            if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    set_if_absent(p, "protocol", json!("TCP"));
                }
            }
        }
    }
}

/// The image names no tag, or the tag `latest` (a digest pins it: not latest).
fn image_is_latest(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => tag == "latest",
        None => true,
    }
}

// ---------------------------------------------------------------------------------------
// Name, label and value syntax.
// ---------------------------------------------------------------------------------------

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn is_dns_label_body(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// DNS-1123 label: problems, none when valid.
fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !is_dns_label_body(s) {
        errs.push(DNS1123_LABEL_MSG.to_string());
    }
    errs
}

/// DNS-1123 subdomain: problems, none when valid.
fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if !s.split('.').all(is_dns_label_body) {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A qualified name (`[prefix/]name`), as label and annotation keys are.
fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            errs.extend(
                dns1123_subdomain(p)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
        if name.contains('/') {
            errs.push("a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string());
            return errs;
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else {
        if name.len() > 63 {
            errs.push("name part must be no more than 63 characters".to_string());
        }
        if !is_name_part(name) {
            errs.push(QUALIFIED_NAME_MSG.to_string());
        }
    }
    errs
}

fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !s.is_empty() && !is_name_part(s) {
        errs.push(LABEL_VALUE_MSG.to_string());
    }
    errs
}

/// IANA_SVC_NAME, the syntax of a port name.
fn iana_svc_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 15 {
        errs.push("must be no more than 15 characters".to_string());
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

fn push_invalid(out: &mut Vec<Cause>, path: &str, v: &Value, errs: Vec<String>) {
    for e in errs {
        out.push(Cause::invalid(
            path,
            format!("Invalid value: {}: {e}", show(v)),
        ));
    }
}

fn invalid(path: impl Into<String>, v: &Value, msg: &str) -> Cause {
    Cause::invalid(path, format!("Invalid value: {}: {msg}", show(v)))
}

fn unsupported(path: impl Into<String>, v: &Value, values: &[&str]) -> Cause {
    Cause::not_supported(
        path,
        format!(
            "Unsupported value: {}: supported values: {}",
            show(v),
            quoted_list(values)
        ),
    )
}

fn duplicate(path: impl Into<String>, v: &Value) -> Cause {
    Cause::new(
        "FieldValueDuplicate",
        path,
        format!("Duplicate value: {}", show(v)),
    )
}

fn forbidden(path: impl Into<String>, msg: &str) -> Cause {
    Cause::forbidden(path, format!("Forbidden: {msg}"))
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn int_at(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

fn array_at<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn object_at<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

fn check_one_of(out: &mut Vec<Cause>, path: &str, v: Option<&Value>, values: &[&str]) {
    if let Some(v) = v.filter(|v| !v.is_null()) {
        if !v.as_str().is_some_and(|s| values.contains(&s)) {
            out.push(unsupported(path, v, values));
        }
    }
}

fn check_range(out: &mut Vec<Cause>, path: &str, v: &Value, key: &str, lo: i64, hi: i64) {
    if let Some(n) = int_at(v, key) {
        if n < lo || n > hi {
            out.push(invalid(
                format!("{path}.{key}"),
                &json!(n),
                &format!("must be between {lo} and {hi}, inclusive"),
            ));
        }
    }
}

fn check_non_negative(out: &mut Vec<Cause>, path: &str, v: &Value, key: &str) {
    if let Some(n) = int_at(v, key) {
        if n < 0 {
            out.push(invalid(
                join(path, key),
                &json!(n),
                "must be greater than or equal to 0",
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Quantities.
// ---------------------------------------------------------------------------------------

/// A Kubernetes quantity in nano-units (rounded up), saturating; `None` when malformed.
pub fn parse_quantity(s: &str) -> Option<i128> {
    let (neg, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return None;
    }
    let (exp10, exp2): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        s if s.starts_with(['e', 'E']) => {
            let e = &s[1..];
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            (e.parse::<i32>().ok()?, 0)
        }
        _ => return None,
    };
    // value = digits * 10^(exp10 - frac_len + 9) * 2^exp2, in nano-units.
    let digits: String = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    let mut scale = exp10 - frac_part.len() as i32 + 9;
    let mut mantissa: i128 = 0;
    let mut saturated = false;
    for (i, c) in digits.bytes().enumerate() {
        if i >= 38 {
            // Too many digits to hold: the rest only shifts the scale.
            scale += (digits.len() - i) as i32;
            break;
        }
        mantissa = mantissa * 10 + i128::from(c - b'0');
    }
    if mantissa == 0 {
        return Some(0);
    }
    let mut value = mantissa;
    if scale >= 0 {
        for _ in 0..scale {
            match value.checked_mul(10) {
                Some(v) => value = v,
                None => {
                    saturated = true;
                    break;
                }
            }
        }
    } else {
        let mut remainder = false;
        for _ in 0..(-scale) {
            if value == 0 {
                break;
            }
            remainder |= value % 10 != 0;
            value /= 10;
        }
        if remainder {
            value += 1;
        }
    }
    if !saturated {
        value = value.checked_mul(1i128 << exp2).unwrap_or_else(|| {
            saturated = true;
            i128::MAX
        });
    }
    if saturated {
        value = i128::MAX;
    }
    Some(if neg { -value } else { value })
}

fn quantity_str(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Validation.
// ---------------------------------------------------------------------------------------

/// Validates a new object (metadata and spec). An empty result means valid.
pub fn validate_create(kind: &Kind, object: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    if !kind.stored {
        // A review: a request, not an object; it has no name.
        check_supported(kind, object, &mut out);
        rbac::validate_review(kind.kind, object, &mut out);
        return out;
    }
    validate_metadata(kind, object, &mut out);
    check_supported(kind, object, &mut out);
    let empty = json!({});
    let spec = object
        .get("spec")
        .filter(|s| s.is_object())
        .unwrap_or(&empty);
    match kind.kind {
        "Pod" => validate_pod_spec(spec, "spec", &mut out),
        "Deployment" => validate_workload(spec, true, &mut out),
        "ReplicaSet" => validate_workload(spec, false, &mut out),
        "Service" => validate_service(spec, &mut out),
        "Namespace" => {
            for (i, f) in array_at(spec, "finalizers").iter().enumerate() {
                if let Some(s) = f.as_str() {
                    let path = format!("spec.finalizers[{i}]");
                    push_invalid(&mut out, &path, f, qualified_name(s));
                    // Kubernetes' validateKubeFinalizerName.
                    if !s.contains('/') && !STANDARD_FINALIZERS.contains(&s) {
                        out.push(invalid(
                            path,
                            f,
                            "name is neither a standard finalizer name nor is it fully qualified",
                        ));
                    }
                }
            }
        }
        "Node" => {}
        "Lease" => {
            if let Some(n) = int_at(spec, "leaseDurationSeconds") {
                if n <= 0 {
                    out.push(invalid(
                        "spec.leaseDurationSeconds",
                        &json!(n),
                        "must be greater than 0",
                    ));
                }
            }
            check_non_negative(&mut out, "spec", spec, "leaseTransitions");
        }
        "Event" => validate_event(object, &mut out),
        "Endpoints" => validate_endpoints(object, &mut out),
        "ConfigMap" => validate_config_map(object, &mut out),
        "Secret" => validate_secret(object, &mut out),
        "EndpointSlice" => discovery::validate_slice(object, &mut out),
        "RuntimeClass" => {
            // Kubernetes' ValidateRuntimeClass: a missing handler is the empty string, which
            // is not a DNS-1123 label either.
            let handler = str_at(object, "handler").unwrap_or("");
            push_invalid(&mut out, "handler", &json!(handler), dns1123_label(handler));
        }
        "PodDisruptionBudget" => {
            policy::validate_budget(spec, &mut out);
            if let Some(status) = object.get("status").filter(|s| s.is_object()) {
                policy::validate_budget_status(status, &mut out);
            }
        }
        "Role" => rbac::validate_rules(object, true, &mut out),
        "ClusterRole" => rbac::validate_rules(object, false, &mut out),
        "RoleBinding" => rbac::validate_binding(object, true, &mut out),
        "ClusterRoleBinding" => rbac::validate_binding(object, false, &mut out),
        _ => {}
    }
    out
}

fn validate_metadata(kind: &Kind, object: &Value, out: &mut Vec<Cause>) {
    let empty = json!({});
    let meta = object
        .get("metadata")
        .filter(|m| m.is_object())
        .unwrap_or(&empty);
    match meta.get("name") {
        Some(Value::String(name)) if !name.is_empty() => {
            let errs = match kind.kind {
                "Namespace" | "Service" => dns1123_label(name),
                "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => {
                    rbac::path_segment_name(name)
                }
                _ => dns1123_subdomain(name),
            };
            push_invalid(out, "metadata.name", &json!(name), errs);
        }
        _ => out.push(Cause::new(
            "FieldValueRequired",
            "metadata.name",
            "Required value: name or generateName is required",
        )),
    }
    if let Some(ns) = str_at(meta, "namespace").filter(|s| !s.is_empty()) {
        push_invalid(out, "metadata.namespace", &json!(ns), dns1123_label(ns));
    }
    validate_labels(meta.get("labels"), "metadata.labels", out);
    validate_annotations(meta.get("annotations"), "metadata.annotations", out);
}

fn validate_labels(labels: Option<&Value>, path: &str, out: &mut Vec<Cause>) {
    let Some(labels) = labels.and_then(Value::as_object) else {
        return;
    };
    for (k, v) in labels {
        push_invalid(out, path, &json!(k), qualified_name(k));
        match v {
            Value::String(s) => push_invalid(out, path, v, label_value(s)),
            Value::Null => {}
            other => out.push(invalid(path, other, "label values must be strings")),
        }
    }
}

/// The total size Kubernetes allows for an object's annotations.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

fn validate_annotations(annotations: Option<&Value>, path: &str, out: &mut Vec<Cause>) {
    let Some(annotations) = annotations.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0usize;
    for (k, v) in annotations {
        push_invalid(out, path, &json!(k), qualified_name(&k.to_lowercase()));
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        out.push(Cause::new(
            "FieldValueTooLong",
            path,
            format!("Too long: may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        ));
    }
}

fn validate_selector_syntax(sel: &Value, path: &str, out: &mut Vec<Cause>) {
    validate_labels(sel.get("matchLabels"), &format!("{path}.matchLabels"), out);
    for (i, e) in array_at(sel, "matchExpressions").iter().enumerate() {
        let ep = format!("{path}.matchExpressions[{i}]");
        let key = str_at(e, "key").unwrap_or("");
        if key.is_empty() {
            out.push(Cause::required(format!("{ep}.key")));
        } else {
            push_invalid(out, &format!("{ep}.key"), &json!(key), qualified_name(key));
        }
        let values = array_at(e, "values");
        match str_at(e, "operator").unwrap_or("") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    out.push(Cause::new(
                        "FieldValueRequired",
                        format!("{ep}.values"),
                        "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    out.push(forbidden(
                        format!("{ep}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => out.push(invalid(
                format!("{ep}.operator"),
                &json!(other),
                "not a valid selector operator",
            )),
        }
    }
}

fn selector_is_empty(sel: &Value) -> bool {
    object_at(sel, "matchLabels").is_none_or(Map::is_empty)
        && array_at(sel, "matchExpressions").is_empty()
}

/// Kubernetes' checks of projected `serviceAccountToken` sources: a relative `path`, at
/// least ten minutes and at most 2^32 seconds of `expirationSeconds`, one per volume.
fn validate_token_projections(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    for (i, v) in array_at(spec, "volumes").iter().enumerate() {
        let mut seen = 0;
        for (j, source) in array_at(&v["projected"], "sources").iter().enumerate() {
            let Some(t) = source.get("serviceAccountToken").filter(|t| t.is_object()) else {
                continue;
            };
            seen += 1;
            let at = format!("{path}.volumes[{i}].projected.sources[{j}].serviceAccountToken");
            match str_at(t, "path") {
                None | Some("") => out.push(Cause::required(format!("{at}.path"))),
                Some(p) if p.starts_with('/') || p.split('/').any(|c| c == "..") => {
                    out.push(invalid(
                        format!("{at}.path"),
                        &json!(p),
                        "must be a relative path without '..'",
                    ))
                }
                Some(_) => {}
            }
            if let Some(e) = t.get("expirationSeconds").and_then(Value::as_i64) {
                if e < crate::admission::MIN_TOKEN_SECONDS {
                    out.push(invalid(
                        format!("{at}.expirationSeconds"),
                        &json!(e),
                        "may not specify a duration less than 10 minutes",
                    ));
                } else if e > crate::admission::MAX_TOKEN_ASK_SECONDS {
                    out.push(invalid(
                        format!("{at}.expirationSeconds"),
                        &json!(e),
                        "may not specify a duration larger than 2^32 seconds",
                    ));
                }
            }
            if seen > 1 {
                out.push(Cause::forbidden(
                    at,
                    "Forbidden: may not have more than one service account token source",
                ));
            }
        }
    }
}

fn validate_pod_spec(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let containers = array_at(spec, "containers");
    if containers.is_empty() {
        out.push(Cause::required(format!("{path}.containers")));
    }
    let mut names = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        validate_container(c, &format!("{path}.containers[{i}]"), &mut names, out);
    }
    check_one_of(
        out,
        &format!("{path}.restartPolicy"),
        spec.get("restartPolicy"),
        &["Always", "OnFailure", "Never"],
    );
    check_non_negative(out, path, spec, "terminationGracePeriodSeconds");
    let nameservers = array_at(&spec["dnsConfig"], "nameservers");
    if str_at(spec, "dnsPolicy") == Some("None") && nameservers.is_empty() {
        out.push(Cause::required(format!("{path}.dnsConfig.nameservers")));
    }
    for (i, n) in nameservers.iter().enumerate() {
        if !n.as_str().is_some_and(is_ip) {
            out.push(invalid(
                format!("{path}.dnsConfig.nameservers[{i}]"),
                n,
                "must be a valid IP address",
            ));
        }
    }
    check_range(
        out,
        path,
        spec,
        "activeDeadlineSeconds",
        1,
        i64::from(i32::MAX),
    );
    for key in ["hostname", "subdomain"] {
        if let Some(s) = str_at(spec, key).filter(|s| !s.is_empty()) {
            push_invalid(out, &format!("{path}.{key}"), &json!(s), dns1123_label(s));
        }
    }
    for key in ["nodeName", "schedulerName", "serviceAccountName"] {
        if let Some(s) = str_at(spec, key).filter(|s| !s.is_empty()) {
            push_invalid(
                out,
                &format!("{path}.{key}"),
                &json!(s),
                dns1123_subdomain(s),
            );
        }
    }
    validate_token_projections(spec, path, out);
    // Kubernetes' ValidateRuntimeClassName: a RuntimeClass's name, when set (even empty).
    if let Some(s) = str_at(spec, "runtimeClassName") {
        push_invalid(
            out,
            &format!("{path}.runtimeClassName"),
            &json!(s),
            dns1123_subdomain(s),
        );
    }
    validate_labels(
        spec.get("nodeSelector"),
        &format!("{path}.nodeSelector"),
        out,
    );
    for (i, t) in array_at(spec, "tolerations").iter().enumerate() {
        validate_toleration(t, &format!("{path}.tolerations[{i}]"), out);
    }
    affinity::validate_node_affinity(spec, path, out);
    affinity::validate_unique_host_ports(spec, path, out);
}

fn validate_container(c: &Value, path: &str, names: &mut BTreeSet<String>, out: &mut Vec<Cause>) {
    match str_at(c, "name").filter(|s| !s.is_empty()) {
        None => out.push(Cause::required(format!("{path}.name"))),
        Some(name) => {
            push_invalid(
                out,
                &format!("{path}.name"),
                &json!(name),
                dns1123_label(name),
            );
            if !names.insert(name.to_string()) {
                out.push(duplicate(format!("{path}.name"), &json!(name)));
            }
        }
    }
    if str_at(c, "image").is_none_or(|s| s.trim().is_empty()) {
        out.push(Cause::required(format!("{path}.image")));
    }
    let mut port_names = BTreeSet::new();
    for (i, p) in array_at(c, "ports").iter().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        match int_at(p, "containerPort") {
            None => out.push(Cause::required(format!("{pp}.containerPort"))),
            Some(_) => check_range(out, &pp, p, "containerPort", 1, 65535),
        }
        check_one_of(
            out,
            &format!("{pp}.protocol"),
            p.get("protocol"),
            &["SCTP", "TCP", "UDP"],
        );
        affinity::validate_host_port(p, &pp, out);
        if let Some(name) = str_at(p, "name").filter(|s| !s.is_empty()) {
            push_invalid(
                out,
                &format!("{pp}.name"),
                &json!(name),
                iana_svc_name(name),
            );
            if !port_names.insert(name.to_string()) {
                out.push(duplicate(format!("{pp}.name"), &json!(name)));
            }
        }
    }
    for (i, e) in array_at(c, "env").iter().enumerate() {
        let ep = format!("{path}.env[{i}].name");
        match str_at(e, "name").filter(|s| !s.is_empty()) {
            None => out.push(Cause::required(ep)),
            Some(name) => {
                if name.contains('=') || !name.chars().all(|ch| (' '..='~').contains(&ch)) {
                    out.push(invalid(
                        ep,
                        &json!(name),
                        "a valid environment variable name must consist only of printable ASCII characters other than '='",
                    ));
                }
            }
        }
    }
    check_one_of(
        out,
        &format!("{path}.imagePullPolicy"),
        c.get("imagePullPolicy"),
        &["Always", "IfNotPresent", "Never"],
    );
    check_one_of(
        out,
        &format!("{path}.terminationMessagePolicy"),
        c.get("terminationMessagePolicy"),
        &["File", "FallbackToLogsOnError"],
    );
    if let Some(res) = c.get("resources") {
        validate_resources(res, &format!("{path}.resources"), out);
    }
}

fn validate_resources(res: &Value, path: &str, out: &mut Vec<Cause>) {
    let mut parsed: [BTreeMap<String, (i128, String)>; 2] = Default::default();
    for (slot, key) in ["limits", "requests"].into_iter().enumerate() {
        let Some(m) = object_at(res, key) else {
            continue;
        };
        for (name, q) in m {
            let qp = format!("{path}.{key}[{name}]");
            push_invalid(out, &qp, &json!(name), qualified_name(name));
            let Some(s) = quantity_str(q) else {
                out.push(invalid(&qp, q, "must be a quantity"));
                continue;
            };
            match parse_quantity(&s) {
                None => out.push(invalid(
                    &qp,
                    q,
                    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                )),
                Some(n) if n < 0 => out.push(invalid(&qp, q, "must be greater than or equal to 0")),
                Some(n) => {
                    parsed[slot].insert(name.clone(), (n, s));
                }
            }
        }
    }
    let [limits, requests] = &parsed;
    for (name, (req, shown)) in requests {
        if let Some((lim, lim_shown)) = limits.get(name) {
            if req > lim {
                out.push(invalid(
                    format!("{path}.requests"),
                    &json!(shown),
                    &format!("must be less than or equal to {name} limit of {lim_shown}"),
                ));
            }
        }
    }
}

fn validate_toleration(t: &Value, path: &str, out: &mut Vec<Cause>) {
    let key = str_at(t, "key").unwrap_or("");
    if !key.is_empty() {
        push_invalid(
            out,
            &format!("{path}.key"),
            &json!(key),
            qualified_name(key),
        );
    }
    let op = str_at(t, "operator").unwrap_or("");
    match op {
        "" | "Equal" => {
            if key.is_empty() {
                out.push(invalid(
                    format!("{path}.operator"),
                    &json!(op),
                    "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                ));
            }
            let value = str_at(t, "value").unwrap_or("");
            push_invalid(
                out,
                &format!("{path}.value"),
                &json!(value),
                label_value(value),
            );
        }
        "Exists" => {
            if str_at(t, "value").is_some_and(|v| !v.is_empty()) {
                out.push(invalid(
                    format!("{path}.operator"),
                    &json!(op),
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
        }
        other => out.push(unsupported(
            format!("{path}.operator"),
            &json!(other),
            &["Equal", "Exists"],
        )),
    }
    let effect = str_at(t, "effect").unwrap_or("");
    if !effect.is_empty() {
        check_one_of(
            out,
            &format!("{path}.effect"),
            t.get("effect"),
            &["NoExecute", "NoSchedule", "PreferNoSchedule"],
        );
    }
    if t.get("tolerationSeconds").is_some_and(|v| !v.is_null()) && effect != "NoExecute" {
        out.push(invalid(
            format!("{path}.effect"),
            &json!(effect),
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ));
    }
}

fn validate_workload(spec: &Value, deployment: bool, out: &mut Vec<Cause>) {
    // The typed round trip turns an absent selector into `{}`: both are "required".
    match spec.get("selector").filter(|s| !s.is_null()) {
        Some(sel) if !selector_is_empty(sel) => validate_selector_syntax(sel, "spec.selector", out),
        _ => out.push(Cause::required("spec.selector")),
    }
    check_non_negative(out, "spec", spec, "replicas");
    check_non_negative(out, "spec", spec, "minReadySeconds");
    let empty = json!({});
    let template = spec.get("template").unwrap_or(&empty);
    let tmeta = template.get("metadata").unwrap_or(&empty);
    validate_labels(tmeta.get("labels"), "spec.template.metadata.labels", out);
    validate_annotations(
        tmeta.get("annotations"),
        "spec.template.metadata.annotations",
        out,
    );
    if let Some(sel) = spec.get("selector").filter(|s| !selector_is_empty(s)) {
        let labels = object_at(tmeta, "labels").cloned().unwrap_or_default();
        // A selector that does not parse (its syntax errors are reported above) selects nothing.
        let selects = LabelSelector::from_object(sel)
            .is_ok_and(|s| s.matches(&Value::Object(labels.clone())));
        if !selects {
            out.push(invalid(
                "spec.template.metadata.labels",
                &Value::Object(labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    let pod_spec = template
        .get("spec")
        .filter(|s| s.is_object())
        .unwrap_or(&empty);
    validate_pod_spec(pod_spec, "spec.template.spec", out);
    if let Some(ads) = pod_spec
        .get("activeDeadlineSeconds")
        .filter(|v| !v.is_null())
    {
        out.push(invalid(
            "spec.template.spec.activeDeadlineSeconds",
            ads,
            // Kubernetes says ReplicaSet for Deployments too (one check serves both).
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
    // Other values than these are already refused by the PodSpec check.
    if let Some(rp) = pod_spec.get("restartPolicy") {
        if matches!(rp.as_str(), Some("OnFailure" | "Never")) {
            out.push(unsupported(
                "spec.template.spec.restartPolicy",
                rp,
                &["Always"],
            ));
        }
    }
    if !deployment {
        return;
    }
    check_non_negative(out, "spec", spec, "revisionHistoryLimit");
    if let Some(pd) = int_at(spec, "progressDeadlineSeconds") {
        let min_ready = int_at(spec, "minReadySeconds").unwrap_or(0);
        if pd <= min_ready {
            out.push(invalid(
                "spec.progressDeadlineSeconds",
                &json!(pd),
                "must be greater than minReadySeconds",
            ));
        }
    }
    let Some(strategy) = spec.get("strategy").filter(|s| s.is_object()) else {
        return;
    };
    let ty = str_at(strategy, "type").unwrap_or("");
    let ru = strategy.get("rollingUpdate").filter(|v| !v.is_null());
    match ty {
        "Recreate" => {
            if ru.is_some() {
                out.push(forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = ru {
                let surge = int_or_percent(ru, "maxSurge", "spec.strategy.rollingUpdate", out);
                let unavailable =
                    int_or_percent(ru, "maxUnavailable", "spec.strategy.rollingUpdate", out);
                if let Some(u) = unavailable {
                    if u.1 && u.0 > 100 {
                        out.push(invalid(
                            "spec.strategy.rollingUpdate.maxUnavailable",
                            &ru["maxUnavailable"],
                            "must not be greater than 100%",
                        ));
                    }
                }
                if surge.is_some_and(|s| s.0 == 0) && unavailable.is_some_and(|u| u.0 == 0) {
                    out.push(invalid(
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        &ru["maxUnavailable"],
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
            }
        }
        other => out.push(unsupported(
            "spec.strategy.type",
            &json!(other),
            &["Recreate", "RollingUpdate"],
        )),
    }
}

/// An int-or-percent field: `(number, is_percent)`, `None` when absent or invalid.
fn int_or_percent(obj: &Value, key: &str, path: &str, out: &mut Vec<Cause>) -> Option<(i64, bool)> {
    let path = format!("{path}.{key}");
    match obj.get(key)? {
        Value::Number(n) => {
            let n = n.as_i64()?;
            if n < 0 {
                out.push(invalid(
                    path,
                    &json!(n),
                    "must be greater than or equal to 0",
                ));
                return None;
            }
            Some((n, false))
        }
        Value::String(s) => {
            let parsed = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|d| d.parse::<i64>().ok());
            match parsed {
                Some(n) => Some((n, true)),
                None => {
                    out.push(invalid(
                        path,
                        &json!(s),
                        "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                    ));
                    None
                }
            }
        }
        _ => None,
    }
}

fn is_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

fn validate_service(spec: &Value, out: &mut Vec<Cause>) {
    let ty = str_at(spec, "type").unwrap_or("ClusterIP");
    let cluster_ip = str_at(spec, "clusterIP").unwrap_or("");
    let headless = cluster_ip == "None";
    let ports = array_at(spec, "ports");
    if ports.is_empty() && !headless {
        out.push(Cause::required("spec.ports"));
    }
    let mut names = BTreeSet::new();
    let mut port_protocols = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        let name = str_at(p, "name").unwrap_or("");
        if name.is_empty() {
            if ports.len() > 1 {
                out.push(Cause::required(format!("{pp}.name")));
            }
        } else {
            push_invalid(
                out,
                &format!("{pp}.name"),
                &json!(name),
                dns1123_label(name),
            );
            if !names.insert(name.to_string()) {
                out.push(duplicate(format!("{pp}.name"), &json!(name)));
            }
        }
        match int_at(p, "port") {
            Some(_) => check_range(out, &pp, p, "port", 1, 65535),
            None => out.push(Cause::required(format!("{pp}.port"))),
        }
        check_one_of(
            out,
            &format!("{pp}.protocol"),
            p.get("protocol"),
            &["SCTP", "TCP", "UDP"],
        );
        let protocol = str_at(p, "protocol").unwrap_or("TCP");
        if let Some(port) = int_at(p, "port") {
            if !port_protocols.insert((port, protocol.to_string())) {
                out.push(duplicate(
                    pp.clone(),
                    &json!({"port": port, "protocol": protocol}),
                ));
            }
        }
        if let Some(np) = int_at(p, "nodePort").filter(|n| *n != 0) {
            if ty != "NodePort" {
                out.push(forbidden(
                    format!("{pp}.nodePort"),
                    &format!("may not be used when `type` is '{ty}'"),
                ));
            } else if !(30000..=32767).contains(&np) {
                out.push(invalid(
                    format!("{pp}.nodePort"),
                    &json!(np),
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                ));
            }
        }
        match p.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(0);
                if !(1..=65535).contains(&n) {
                    out.push(invalid(
                        format!("{pp}.targetPort"),
                        &json!(n),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
            }
            Some(Value::String(s)) => {
                push_invalid(
                    out,
                    &format!("{pp}.targetPort"),
                    &json!(s),
                    iana_svc_name(s),
                );
            }
            _ => {}
        }
    }
    if !cluster_ip.is_empty() && !headless && !is_ip(cluster_ip) {
        out.push(invalid(
            "spec.clusterIP",
            &json!(cluster_ip),
            "must be empty, 'None', or a valid IP address",
        ));
    }
    if headless && ty == "NodePort" {
        out.push(invalid(
            "spec.clusterIP",
            &json!(cluster_ip),
            "may not be set to 'None' for NodePort services",
        ));
    }
    if let Some(policy) = spec.get("externalTrafficPolicy").filter(|v| !is_empty(v)) {
        if ty == "ClusterIP" {
            out.push(invalid(
                "spec.externalTrafficPolicy",
                policy,
                "may only be set for externally-accessible services",
            ));
        }
    }
    let affinity = str_at(spec, "sessionAffinity").unwrap_or("None");
    if let Some(cfg) = spec.get("sessionAffinityConfig").filter(|v| !is_empty(v)) {
        if affinity != "ClientIP" {
            out.push(forbidden(
                "spec.sessionAffinityConfig",
                &format!("must not be set when session affinity is {affinity}"),
            ));
        } else if let Some(t) = cfg["clientIP"].get("timeoutSeconds") {
            if !t.as_i64().is_some_and(|t| (1..=86400).contains(&t)) {
                out.push(invalid(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    t,
                    "must be greater than 0 and less than 86400",
                ));
            }
        }
    }
    for (i, ip) in array_at(spec, "clusterIPs").iter().enumerate() {
        if let Some(s) = ip.as_str() {
            if !(s == "None" || is_ip(s)) {
                out.push(invalid(
                    format!("spec.clusterIPs[{i}]"),
                    ip,
                    "must be 'None' or a valid IP address",
                ));
            }
        }
    }
    validate_labels(spec.get("selector"), "spec.selector", out);
}

fn validate_event(event: &Value, out: &mut Vec<Cause>) {
    let involved = event.get("involvedObject").filter(|v| !is_empty(v));
    let Some(involved) = involved else {
        out.push(Cause::required("involvedObject"));
        return;
    };
    let event_ns = event
        .get("metadata")
        .and_then(|m| str_at(m, "namespace"))
        .unwrap_or("");
    if let Some(ns) = str_at(involved, "namespace").filter(|s| !s.is_empty()) {
        if ns != event_ns {
            out.push(invalid(
                "involvedObject.namespace",
                &json!(ns),
                "does not match event.namespace",
            ));
        }
    }
}

/// The most a ConfigMap's `data` and `binaryData` may hold together (Kubernetes'
/// `MaxSecretSize`, 1 MiB: it must fit in one store value).
pub const MAX_CONFIG_MAP_SIZE: usize = 1 << 20;

/// Kubernetes' `IsConfigMapKey`: what a ConfigMap or Secret key may be (it becomes a file
/// name in a volume).
fn config_map_key(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        errs.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
                .to_string(),
        );
    }
    if key == "." {
        errs.push("must not be '.'".to_string());
    } else if key == ".." {
        errs.push("must not be '..'".to_string());
    } else if key.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// The Secret types whose required keys Kubernetes checks: (type, keys of which at least one
/// must be present — all when `all`).
const SECRET_TYPES: &[(&str, &[&str], bool)] = &[
    ("kubernetes.io/tls", &["tls.crt", "tls.key"], true),
    (
        "kubernetes.io/dockerconfigjson",
        &[".dockerconfigjson"],
        true,
    ),
    ("kubernetes.io/dockercfg", &[".dockercfg"], true),
    ("kubernetes.io/basic-auth", &["username", "password"], false),
    ("kubernetes.io/ssh-auth", &["ssh-privatekey"], true),
];

/// A Secret's defaults: type `Opaque`, and `stringData` merged into `data` (base64), its
/// values winning, as Kubernetes' conversion does; `stringData` itself is never stored.
fn default_secret(obj: &mut Map<String, Value>) {
    use base64::Engine as _;
    if obj
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        obj.insert("type".into(), json!("Opaque"));
    }
    if let Some(Value::Object(plain)) = obj.remove("stringData") {
        let data = child_object(obj, "data");
        for (k, v) in plain {
            if let Some(text) = v.as_str() {
                let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
                data.insert(k, json!(b64));
            }
        }
    }
}

/// A Secret's keys and size (as a ConfigMap's), and the keys its type requires.
fn validate_secret(secret: &Value, out: &mut Vec<Cause>) {
    use base64::Engine as _;
    let data = secret.get("data").and_then(Value::as_object);
    let mut total = 0usize;
    for (k, v) in data.into_iter().flatten() {
        push_invalid(out, "data", &json!(k), config_map_key(k));
        total += v.as_str().map_or(0, |b| b.len() / 4 * 3);
    }
    if total > MAX_CONFIG_MAP_SIZE {
        out.push(Cause::new(
            "FieldValueTooLong",
            "data",
            format!("Too long: must have at most {MAX_CONFIG_MAP_SIZE} bytes"),
        ));
    }
    let ty = str_at(secret, "type").unwrap_or("Opaque");
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    if let Some((_, keys, all)) = SECRET_TYPES.iter().find(|(t, _, _)| *t == ty) {
        if *all {
            for k in keys.iter().filter(|k| !has(k)) {
                out.push(Cause::required(format!("data[{k}]")));
            }
        } else if !keys.iter().any(|k| has(k)) {
            out.push(Cause::new(
                "FieldValueRequired",
                format!("data[{}]", keys[0]),
                format!("Required value: either {} must be set", keys.join(" or ")),
            ));
        }
    }
    if ty == "kubernetes.io/service-account-token"
        && secret["metadata"]["annotations"]["kubernetes.io/service-account.name"]
            .as_str()
            .is_none_or(str::is_empty)
    {
        out.push(Cause::required(
            "metadata.annotations[kubernetes.io/service-account.name]",
        ));
    }
    // A registry credential of its own type must be a JSON object.
    let key = match ty {
        "kubernetes.io/dockerconfigjson" => Some(".dockerconfigjson"),
        "kubernetes.io/dockercfg" => Some(".dockercfg"),
        _ => None,
    };
    let encoded = key.and_then(|k| data.and_then(|d| d.get(k)).and_then(Value::as_str));
    if let (Some(key), Some(b64)) = (key, encoded) {
        let parsed = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok());
        if !parsed.is_some_and(|v| v.is_object()) {
            out.push(invalid(
                format!("data[{key}]"),
                &json!("<secret contents redacted>"),
                "invalid JSON",
            ));
        }
    }
}

/// A ConfigMap's keys (valid, none in both `data` and `binaryData`) and its total size.
fn validate_config_map(cm: &Value, out: &mut Vec<Cause>) {
    let mut total = 0usize;
    let data = cm.get("data").and_then(Value::as_object);
    let binary = cm.get("binaryData").and_then(Value::as_object);
    for (k, v) in data.into_iter().flatten() {
        push_invalid(out, "data", &json!(k), config_map_key(k));
        total += v.as_str().map_or(0, str::len);
    }
    for (k, v) in binary.into_iter().flatten() {
        push_invalid(out, "binaryData", &json!(k), config_map_key(k));
        if data.is_some_and(|d| d.contains_key(k)) {
            out.push(invalid(
                "binaryData",
                &json!(k),
                "duplicate of key present in data",
            ));
        }
        // Stored as base64: the decoded size counts.
        total += v.as_str().map_or(0, |b| b.len() / 4 * 3);
    }
    if total > MAX_CONFIG_MAP_SIZE {
        out.push(Cause::new(
            "FieldValueTooLong",
            "[]",
            format!("Too long: must have at most {MAX_CONFIG_MAP_SIZE} bytes"),
        ));
    }
}

/// An immutable ConfigMap or Secret stays as it is: its data, and its being immutable.
fn immutable_data_update(old: &Value, new: &Value, out: &mut Vec<Cause>) {
    if old.get("immutable") != Some(&Value::Bool(true)) {
        return;
    }
    let null = Value::Null;
    let msg = "field is immutable when `immutable` is set";
    if new.get("immutable") != Some(&Value::Bool(true)) {
        out.push(forbidden("immutable", msg));
    }
    for field in ["data", "binaryData"] {
        let o = pruned(old.get(field).unwrap_or(&null));
        let n = pruned(new.get(field).unwrap_or(&null));
        if o != n {
            out.push(forbidden(field, msg));
        }
    }
}

fn validate_endpoints(ep: &Value, out: &mut Vec<Cause>) {
    for (i, ss) in array_at(ep, "subsets").iter().enumerate() {
        let sp = format!("subsets[{i}]");
        for key in ["addresses", "notReadyAddresses"] {
            for (j, a) in array_at(ss, key).iter().enumerate() {
                let ip = str_at(a, "ip").unwrap_or("");
                if !is_ip(ip) {
                    out.push(invalid(
                        format!("{sp}.{key}[{j}].ip"),
                        &json!(ip),
                        "must be a valid IP address",
                    ));
                }
            }
        }
        for (j, p) in array_at(ss, "ports").iter().enumerate() {
            let pp = format!("{sp}.ports[{j}]");
            check_range(out, &pp, p, "port", 1, 65535);
            check_one_of(
                out,
                &format!("{pp}.protocol"),
                p.get("protocol"),
                &["SCTP", "TCP", "UDP"],
            );
        }
    }
}

/// Validates an update: everything `validate_create` checks, plus immutable fields
/// (e.g. a Deployment's `spec.selector`, most of a Pod's spec, a Service's `clusterIP`).
pub fn validate_update(kind: &Kind, old: &Value, new: &Value) -> Vec<Cause> {
    let mut out = validate_create(kind, new);
    for key in ["name", "namespace"] {
        let o = old
            .get("metadata")
            .and_then(|m| str_at(m, key))
            .unwrap_or("");
        let n = new
            .get("metadata")
            .and_then(|m| str_at(m, key))
            .unwrap_or("");
        if o != n {
            out.push(invalid(
                format!("metadata.{key}"),
                &json!(n),
                "field is immutable",
            ));
        }
    }
    let null = Value::Null;
    let old_spec = old.get("spec").unwrap_or(&null);
    let new_spec = new.get("spec").unwrap_or(&null);
    match kind.kind {
        "ConfigMap" => immutable_data_update(old, new, &mut out),
        "Secret" => {
            immutable_data_update(old, new, &mut out);
            let t = |o: &Value| str_at(o, "type").unwrap_or("").to_string();
            if t(old) != t(new) {
                out.push(invalid("type", &json!(t(new)), "field is immutable"));
            }
        }
        "Deployment" | "ReplicaSet" => {
            let o = pruned(old_spec.get("selector").unwrap_or(&null));
            let n = pruned(new_spec.get("selector").unwrap_or(&null));
            if o != n {
                out.push(invalid(
                    "spec.selector",
                    new_spec.get("selector").unwrap_or(&null),
                    "field is immutable",
                ));
            }
        }
        "Service" => {
            let o = str_at(old_spec, "clusterIP").unwrap_or("");
            let n = str_at(new_spec, "clusterIP").unwrap_or("");
            if !o.is_empty() && o != n {
                out.push(invalid("spec.clusterIP", &json!(n), "field is immutable"));
            }
        }
        "Pod" => validate_pod_update(old_spec, new_spec, &mut out),
        "EndpointSlice" => discovery::validate_slice_update(old, new, &mut out),
        "RuntimeClass" => {
            let handler = |o: &Value| str_at(o, "handler").unwrap_or("").to_string();
            if handler(old) != handler(new) {
                out.push(invalid(
                    "handler",
                    &json!(handler(new)),
                    "field is immutable",
                ));
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => rbac::validate_binding_update(old, new, &mut out),
        "Namespace" => validate_namespace_phase(new, &mut out),
        _ => {}
    }
    out
}

/// The finalizer names that need no domain (Kubernetes' `IsStandardFinalizerName`).
const STANDARD_FINALIZERS: &[&str] = &["kubernetes", "orphan", "foregroundDeletion"];

/// A Namespace's phase follows its deletion (Kubernetes' `ValidateNamespaceStatusUpdate`):
/// `Active` while it has no `deletionTimestamp`, `Terminating` once it has one.
fn validate_namespace_phase(new: &Value, out: &mut Vec<Cause>) {
    let phase = &new["status"]["phase"];
    let deleting = !new["metadata"]["deletionTimestamp"].is_null();
    let (want, message) = if deleting {
        (
            "Terminating",
            "may only be 'Terminating' if `deletionTimestamp` is not empty",
        )
    } else {
        (
            "Active",
            "may only be 'Active' if `deletionTimestamp` is empty",
        )
    };
    if phase.as_str() != Some(want) {
        out.push(invalid("status.Phase", phase, message));
    }
}

/// The message Kubernetes answers a forbidden Pod spec change with.
const POD_UPDATE_MSG: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds`";

fn validate_pod_update(old: &Value, new: &Value, out: &mut Vec<Cause>) {
    // activeDeadlineSeconds may be set or lowered, never raised or removed.
    match (
        int_at(old, "activeDeadlineSeconds"),
        int_at(new, "activeDeadlineSeconds"),
    ) {
        (Some(o), Some(n)) if n > o => out.push(invalid(
            "spec.activeDeadlineSeconds",
            &json!(n),
            "must be less than or equal to previous value",
        )),
        (Some(_), None) => out.push(invalid(
            "spec.activeDeadlineSeconds",
            &Value::Null,
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    // Tolerations may only be added; an existing one may change its tolerationSeconds.
    let without_seconds = |t: &Value| {
        let mut t = pruned(t);
        if let Some(m) = t.as_object_mut() {
            m.remove("tolerationSeconds");
        }
        t
    };
    let old_tol: Vec<Value> = array_at(old, "tolerations")
        .iter()
        .map(without_seconds)
        .collect();
    let new_tol: Vec<Value> = array_at(new, "tolerations")
        .iter()
        .map(without_seconds)
        .collect();
    if old_tol.iter().any(|t| !new_tol.contains(t)) {
        out.push(forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    // Everything else must be unchanged: blank out the mutable fields and compare.
    let mut o = pruned(old);
    let mut n = pruned(new);
    for v in [&mut o, &mut n] {
        if let Some(m) = v.as_object_mut() {
            for key in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
            ] {
                m.remove(key);
            }
            if let Some(cs) = m.get_mut("containers").and_then(Value::as_array_mut) {
                for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                    c.remove("image");
                }
            }
        }
    }
    if o != n {
        out.push(forbidden("spec", POD_UPDATE_MSG));
    }
}

/// `v` without nulls and empty objects or lists, so absent and empty compare equal.
fn pruned(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), pruned(v)))
                .filter(|(_, v)| !matches!(v, Value::Null) && !is_empty_container(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(pruned).collect()),
        other => other.clone(),
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::by_kind;

    fn k(kind: &str) -> &'static Kind {
        by_kind(kind).unwrap()
    }

    /// decode (strict) + default + validate_create.
    fn create(kind: &str, body: Value) -> Vec<Cause> {
        let mut d = decode(k(kind), &body, FieldValidation::Strict).unwrap();
        default(k(kind), &mut d.object);
        validate_create(k(kind), &d.object)
    }

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    fn has(causes: &[Cause], reason: &str, field: &str) -> bool {
        causes
            .iter()
            .any(|c| c.reason == reason && c.field == field)
    }

    /// `kubectl create deployment nginx --image=nginx --dry-run=client -o yaml`, as JSON.
    fn kubectl_deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"creationTimestamp": null, "labels": {"app": "nginx"}, "name": "nginx"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "nginx"}},
                "strategy": {},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "nginx"}},
                    "spec": {"containers": [{"image": "nginx", "name": "nginx", "resources": {}}]}
                }
            },
            "status": {}
        })
    }

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    }

    fn simple_pod() -> Value {
        pod(json!({"containers": [{"name": "c", "image": "nginx:1.27"}]}))
    }

    fn service(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn kubectl_deployment_is_accepted_as_is() {
        let body = kubectl_deployment();
        let d = decode(k("Deployment"), &body, FieldValidation::Strict).unwrap();
        assert!(d.warnings.is_empty());
        let d = decode(k("Deployment"), &body, FieldValidation::Warn).unwrap();
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        assert_eq!(create("Deployment", body), vec![]);
    }

    #[test]
    fn kubectl_pod_and_service_are_accepted() {
        let p = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"creationTimestamp": null, "labels": {"run": "nginx"}, "name": "nginx"},
            "spec": {"containers": [{"image": "nginx", "name": "nginx", "resources": {}}],
                     "dnsPolicy": "ClusterFirst", "restartPolicy": "Always"},
            "status": {}});
        assert_eq!(create("Pod", p), vec![]);
        let s = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"creationTimestamp": null, "labels": {"app": "web"}, "name": "web"},
            "spec": {"ports": [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                     "selector": {"app": "web"}, "type": "ClusterIP"},
            "status": {"loadBalancer": {}}});
        assert_eq!(create("Service", s), vec![]);
    }

    #[test]
    fn unknown_fields_strict_warn_ignore() {
        let mut body = kubectl_deployment();
        body["spec"]["template"]["spec"]["containers"][0]["imagee"] = json!("x");
        body["spec"]["foo"] = json!({"bar": 1});
        body["metadata"]["nope"] = json!(null); // null: never unknown
        let err = decode(k("Deployment"), &body, FieldValidation::Strict).unwrap_err();
        let mut f = fields(&err);
        f.sort();
        assert_eq!(
            f,
            vec!["spec.foo", "spec.template.spec.containers[0].imagee"]
        );
        let c = err.iter().find(|c| c.field == "spec.foo").unwrap();
        assert_eq!(c.reason, "FieldValueInvalid");
        assert_eq!(c.message, "unknown field \"spec.foo\"");

        let d = decode(k("Deployment"), &body, FieldValidation::Warn).unwrap();
        assert!(d
            .warnings
            .contains(&"unknown field \"spec.template.spec.containers[0].imagee\"".to_string()));
        assert_eq!(d.warnings.len(), 2);
        assert!(d.object["spec"].get("foo").is_none());
        assert!(d.object["spec"]["template"]["spec"]["containers"][0]
            .get("imagee")
            .is_none());

        let d = decode(k("Deployment"), &body, FieldValidation::Ignore).unwrap();
        assert!(d.warnings.is_empty());
        assert!(d.object["spec"].get("foo").is_none());
    }

    #[test]
    fn special_values_are_not_unknown() {
        let mut body = kubectl_deployment();
        body["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}});
        body["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": 1, "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": 0.5}});
        body["metadata"]["creationTimestamp"] = json!("2024-05-01T10:00:00Z");
        body["metadata"]["labels"] = json!({});
        let d = decode(k("Deployment"), &body, FieldValidation::Strict).unwrap();
        assert!(d.warnings.is_empty());
        let s = service(
            json!({"ports": [{"port": 80, "targetPort": "http"}, {"name": "b", "port": 81, "targetPort": 8081}]}),
        );
        let d = decode(k("Service"), &s, FieldValidation::Strict).unwrap();
        assert_eq!(d.object["spec"]["ports"][0]["targetPort"], "http");
        assert_eq!(d.object["spec"]["ports"][1]["targetPort"], 8081);
    }

    #[test]
    fn type_errors_name_the_field() {
        let mut body = kubectl_deployment();
        body["spec"]["replicas"] = json!("three");
        let err = decode(k("Deployment"), &body, FieldValidation::Ignore).unwrap_err();
        assert_eq!(err[0].reason, "FieldValueTypeInvalid");
        assert_eq!(err[0].field, "spec.replicas");

        let mut p = simple_pod();
        p["spec"]["containers"][0]["ports"] = json!([{"containerPort": "80"}]);
        let err = decode(k("Pod"), &p, FieldValidation::Strict).unwrap_err();
        assert_eq!(
            fields(&err),
            vec!["spec.containers[0].ports[0].containerPort"]
        );

        let mut p = simple_pod();
        p["metadata"]["creationTimestamp"] = json!("yesterday");
        let err = decode(k("Pod"), &p, FieldValidation::Strict).unwrap_err();
        assert_eq!(fields(&err), vec!["metadata.creationTimestamp"]);

        let mut p = simple_pod();
        p["kind"] = json!("Service");
        let err = decode(k("Pod"), &p, FieldValidation::Strict).unwrap_err();
        assert_eq!(fields(&err), vec!["kind"]);

        assert!(decode(k("Pod"), &json!([1]), FieldValidation::Strict).is_err());
    }

    #[test]
    fn deployment_defaults() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "reg:5000/x/nginx:1.2"},
            {"name": "c", "image": "nginx:latest"},
            {"name": "e", "image": "nginx@sha256:abc"}]}}}});
        default(k("Deployment"), &mut d);
        let s = &d["spec"];
        assert_eq!(s["replicas"], 1);
        assert_eq!(
            s["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(s["revisionHistoryLimit"], 10);
        assert_eq!(s["progressDeadlineSeconds"], 600);
        let ps = &s["template"]["spec"];
        assert_eq!(ps["restartPolicy"], "Always");
        assert_eq!(ps["terminationGracePeriodSeconds"], 30);
        assert_eq!(ps["dnsPolicy"], "ClusterFirst");
        assert_eq!(ps["schedulerName"], "default-scheduler");
        assert_eq!(ps["securityContext"], json!({}));
        let c = &ps["containers"];
        assert_eq!(c[0]["imagePullPolicy"], "Always");
        assert_eq!(c[1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c[2]["imagePullPolicy"], "Always");
        assert_eq!(c[3]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c[0]["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c[0]["terminationMessagePolicy"], "File");
        assert_eq!(c[0]["ports"][0]["protocol"], "TCP");

        let mut r = json!({"spec": {"strategy": {"type": "Recreate"}, "replicas": 0}});
        default(k("Deployment"), &mut r);
        assert_eq!(r["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(r["spec"]["replicas"], 0);
        let mut r = json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 2}}}});
        default(k("Deployment"), &mut r);
        assert_eq!(
            r["spec"]["strategy"]["rollingUpdate"],
            json!({"maxSurge": 2, "maxUnavailable": "25%"})
        );
    }

    #[test]
    fn other_defaults() {
        let mut rs = json!({"spec": {}});
        default(k("ReplicaSet"), &mut rs);
        assert_eq!(rs["spec"]["replicas"], 1);
        assert_eq!(rs["spec"]["template"]["spec"]["restartPolicy"], "Always");

        let mut s = json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}});
        default(k("Service"), &mut s);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(
            s["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(s["spec"]["ports"][1]["protocol"], "UDP");
        assert_eq!(s["spec"]["ports"][1]["targetPort"], "dns");

        let mut ns = json!({"metadata": {"name": "x"}});
        default(k("Namespace"), &mut ns);
        assert!(ns["spec"]["finalizers"].is_null(), "{ns}");
        assert_eq!(ns["status"]["phase"], "Active");

        let mut p = simple_pod();
        p["status"] = json!({});
        default(k("Pod"), &mut p);
        assert_eq!(p["status"]["phase"], "Pending");
        let mut p = simple_pod();
        p["status"] = json!({"phase": "Running"});
        default(k("Pod"), &mut p);
        assert_eq!(p["status"]["phase"], "Running");
        assert!(p["metadata"].get("namespace").is_some());
    }

    #[test]
    fn metadata_rules() {
        let mut p = simple_pod();
        p["metadata"]["name"] = json!("");
        assert!(has(
            &create("Pod", p),
            "FieldValueRequired",
            "metadata.name"
        ));
        let mut p = simple_pod();
        p["metadata"]["name"] = json!("Bad_Name");
        assert!(has(&create("Pod", p), "FieldValueInvalid", "metadata.name"));
        let mut p = simple_pod();
        p["metadata"]["name"] = json!("a.b.c");
        assert_eq!(create("Pod", p), vec![]);
        let s = service(json!({"ports": [{"port": 80}]}));
        let mut s2 = s.clone();
        s2["metadata"]["name"] = json!("a.b");
        assert!(has(
            &create("Service", s2),
            "FieldValueInvalid",
            "metadata.name"
        ));
        assert_eq!(create("Service", s), vec![]);
        let ns = json!({"metadata": {"name": "x".repeat(64)}});
        let c = create("Namespace", ns);
        assert!(c[0].message.contains("63 characters"), "{c:?}");
        let node = json!({"metadata": {"name": "x".repeat(254)}});
        assert!(has(
            &create("Node", node),
            "FieldValueInvalid",
            "metadata.name"
        ));

        let mut p = simple_pod();
        p["metadata"]["labels"] = json!({"app": "ok", "example.com/x": "y-z.1_2", "bad key": "v"});
        assert_eq!(fields(&create("Pod", p)), vec!["metadata.labels"]);
        let mut p = simple_pod();
        p["metadata"]["labels"] = json!({"a": "-bad"});
        assert_eq!(fields(&create("Pod", p)), vec!["metadata.labels"]);
        let mut p = simple_pod();
        p["metadata"]["labels"] = json!({"a": "v".repeat(64)});
        assert_eq!(fields(&create("Pod", p)), vec!["metadata.labels"]);
        let mut p = simple_pod();
        p["metadata"]["labels"] = json!({"Example.com/a": ""});
        assert_eq!(fields(&create("Pod", p)), vec!["metadata.labels"]);

        let mut p = simple_pod();
        p["metadata"]["annotations"] = json!({"a": "x".repeat(256 * 1024)});
        assert!(has(
            &create("Pod", p),
            "FieldValueTooLong",
            "metadata.annotations"
        ));
        let mut p = simple_pod();
        p["metadata"]["annotations"] = json!({"a": "x".repeat(1000)});
        assert_eq!(create("Pod", p), vec![]);
    }

    #[test]
    fn pod_rules() {
        let c = create("Pod", pod(json!({"containers": []})));
        assert!(has(&c, "FieldValueRequired", "spec.containers"));
        let c = create("Pod", pod(json!({})));
        assert!(has(&c, "FieldValueRequired", "spec.containers"));
        let c = create(
            "Pod",
            pod(
                json!({"containers": [{"name": "a", "image": "x"}, {"name": "a"}, {"name": "B", "image": "y"}]}),
            ),
        );
        assert!(has(&c, "FieldValueDuplicate", "spec.containers[1].name"));
        assert!(has(&c, "FieldValueRequired", "spec.containers[1].image"));
        assert!(has(&c, "FieldValueInvalid", "spec.containers[2].name"));
        let c = create(
            "Pod",
            pod(json!({"containers": [{"name": "a", "image": "x", "ports": [
                {"containerPort": 0}, {"containerPort": 70000}, {"containerPort": 80, "protocol": "HTTP"},
                {"containerPort": 81, "name": "a-very-long-port-name"}, {"containerPort": 82, "name": "http"},
                {"containerPort": 83, "name": "http"}, {"containerPort": 84, "name": "123"}]}]})),
        );
        assert!(has(
            &c,
            "FieldValueInvalid",
            "spec.containers[0].ports[0].containerPort"
        ));
        assert!(has(
            &c,
            "FieldValueInvalid",
            "spec.containers[0].ports[1].containerPort"
        ));
        assert!(has(
            &c,
            "FieldValueNotSupported",
            "spec.containers[0].ports[2].protocol"
        ));
        assert!(has(
            &c,
            "FieldValueInvalid",
            "spec.containers[0].ports[3].name"
        ));
        assert!(has(
            &c,
            "FieldValueDuplicate",
            "spec.containers[0].ports[5].name"
        ));
        assert!(has(
            &c,
            "FieldValueInvalid",
            "spec.containers[0].ports[6].name"
        ));
        assert_eq!(c.len(), 6, "{c:?}");

        let c = create(
            "Pod",
            pod(
                json!({"containers": [{"name": "a", "image": "x", "resources": {
                "limits": {"cpu": "500m", "memory": "1Gi"},
                "requests": {"cpu": "1", "memory": "1024Mi"}}}]}),
            ),
        );
        assert_eq!(fields(&c), vec!["spec.containers[0].resources.requests"]);
        assert!(c[0].message.contains("cpu limit of 500m"), "{c:?}");
        let c = create(
            "Pod",
            pod(
                json!({"containers": [{"name": "a", "image": "x", "resources": {
                "limits": {"cpu": "abc"}, "requests": {"memory": "-1"}}}]}),
            ),
        );
        assert!(has(
            &c,
            "FieldValueInvalid",
            "spec.containers[0].resources.limits[cpu]"
        ));
        assert!(has(
            &c,
            "FieldValueInvalid",
            "spec.containers[0].resources.requests[memory]"
        ));

        let c = create(
            "Pod",
            pod(
                json!({"restartPolicy": "Sometimes", "containers": [{"name": "a", "image": "x",
                "env": [{"name": "A", "value": "1"}, {"name": "B=C"}, {"name": ""}, {"name": "my.var-1"}]}]}),
            ),
        );
        assert!(has(&c, "FieldValueNotSupported", "spec.restartPolicy"));
        assert!(has(
            &c,
            "FieldValueInvalid",
            "spec.containers[0].env[1].name"
        ));
        assert!(has(
            &c,
            "FieldValueRequired",
            "spec.containers[0].env[2].name"
        ));
        assert_eq!(c.len(), 3, "{c:?}");

        let c = create(
            "Pod",
            pod(
                json!({"restartPolicy": "OnFailure", "activeDeadlineSeconds": 0,
                "nodeSelector": {"disk": "ssd"}, "nodeName": "node-1",
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"},
                                {"operator": "Equal", "value": "v"},
                                {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}],
                "containers": [{"name": "a", "image": "x"}]}),
            ),
        );
        assert!(has(&c, "FieldValueInvalid", "spec.activeDeadlineSeconds"));
        assert!(has(&c, "FieldValueInvalid", "spec.tolerations[1].operator"));
        assert!(has(&c, "FieldValueInvalid", "spec.tolerations[2].effect"));
        assert_eq!(c.len(), 3, "{c:?}");
    }

    #[test]
    fn unsupported_fields_are_refused() {
        let c = create(
            "Pod",
            pod(json!({
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}],
                "initContainers": [{"name": "i", "image": "x", "stdin": true}],
                "hostNetwork": true,
                "dnsPolicy": "None",
                "securityContext": {"runAsUser": 1000},
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "x"}]}},
                "containers": [{"name": "a", "image": "x",
                    "volumeMounts": [{"name": "v", "mountPath": "/v", "subPathExpr": "$(X)"}],
                    "livenessProbe": {"grpc": {"port": 9000}},
                    "readinessProbe": {"httpGet": {"port": 443, "scheme": "HTTPS"}},
                    "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "ports": [{"containerPort": 80, "hostPort": 8080}],
                    "stdin": true}]})),
        );
        let mut f: Vec<&str> = c
            .iter()
            .filter(|c| c.reason == "FieldValueNotSupported")
            .map(|c| c.field.as_str())
            .collect();
        f.sort();
        assert_eq!(
            f,
            vec![
                "spec.affinity.podAntiAffinity",
                "spec.containers[0].livenessProbe.grpc",
                "spec.containers[0].readinessProbe.httpGet.scheme",
                "spec.containers[0].stdin",
                "spec.containers[0].volumeMounts[0].subPathExpr",
                "spec.hostNetwork",
                "spec.initContainers[0].stdin",
                "spec.securityContext",
                "spec.volumes[0].persistentVolumeClaim",
            ]
        );
        assert!(c.iter().all(|c| c.reason != "FieldValueNotSupported"
            || c.message.starts_with("not supported by navarch")));
        // Empty or false values are not "set".
        let ok = pod(
            json!({"serviceAccountName": "default", "hostNetwork": false, "volumes": [],
            "securityContext": {}, "dnsPolicy": "Default", "enableServiceLinks": true,
            "containers": [{"name": "a", "image": "x", "volumeMounts": null, "stdin": false}]}),
        );
        assert_eq!(create("Pod", ok), vec![]);

        let mut d = kubectl_deployment();
        d["spec"]["template"]["spec"]["volumes"] = json!([{"name": "v", "nfs": {"server": "x"}}]);
        d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] =
            json!({"grpc": {"port": 80}});
        let c = create("Deployment", d);
        let mut f = fields(&c);
        f.sort();
        assert_eq!(
            f,
            vec![
                "spec.template.spec.containers[0].readinessProbe.grpc",
                "spec.template.spec.volumes[0].nfs"
            ]
        );

        let c = create(
            "Service",
            service(
                json!({"type": "LoadBalancer", "ports": [{"port": 80, "appProtocol": "http", "protocol": "SCTP"}]}),
            ),
        );
        let mut f = fields(&c);
        f.sort();
        assert_eq!(
            f,
            vec![
                "spec.ports[0].appProtocol",
                "spec.ports[0].protocol",
                "spec.type"
            ]
        );
        assert!(c.iter().all(|c| c.reason == "FieldValueNotSupported"));
        let c = create(
            "Service",
            service(json!({"type": "ExternalName", "externalName": "example.com"})),
        );
        assert!(has(&c, "FieldValueNotSupported", "spec.type"));
        assert!(has(&c, "FieldValueNotSupported", "spec.externalName"));

        let rs = json!({"metadata": {"name": "r"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        assert_eq!(create("ReplicaSet", rs.clone()), vec![]);
        let mut rs2 = rs;
        rs2["spec"]["template"]["spec"]["containers"][0]["tty"] = json!(true);
        assert_eq!(
            fields(&create("ReplicaSet", rs2)),
            vec!["spec.template.spec.containers[0].tty"]
        );

        let node = json!({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.0.0.0/24", "unschedulable": true,
            "taints": [{"key": "k", "effect": "NoSchedule"}], "configSource": {"configMap": {"name": "x"}}},
            "status": {"capacity": {"cpu": "4"}, "conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(fields(&create("Node", node)), vec!["spec.configSource"]);
    }

    #[test]
    fn the_table_expands_pod_specs() {
        let paths = supported_paths("Deployment").unwrap();
        assert!(paths
            .iter()
            .any(|(p, _)| p == "spec.template.spec.containers[].image"));
        assert!(supported_paths("Event").is_none());
        assert!(is_under("spec.a.b", "spec.a"));
        assert!(is_under("spec.a[]", "spec.a"));
        assert!(!is_under("spec.ab", "spec.a"));
    }

    fn deployment(spec: Value) -> Value {
        let mut d = kubectl_deployment();
        for (k, v) in spec.as_object().unwrap() {
            d["spec"][k] = v.clone();
        }
        d
    }

    /// The template-labels check uses `selector::LabelSelector`, the crate's one matcher; these
    /// are the cases the former JSON matcher of this module decided, with its answers.
    #[test]
    fn template_labels_are_matched_by_the_one_selector_matcher() {
        let labels = json!({"app": "nginx", "tier": "fe"});
        let cases = [
            (json!({"matchLabels": {"app": "nginx"}}), true),
            (json!({"matchLabels": {"app": "nginx", "tier": "fe"}}), true),
            (json!({"matchLabels": {"app": "web"}}), false),
            (json!({"matchLabels": {"env": "prod"}}), false),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "nginx"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["nginx"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "env", "operator": "Exists"}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}),
                false,
            ),
            (
                json!({"matchLabels": {"app": "nginx"}, "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["fe"]},
                {"key": "env", "operator": "DoesNotExist"}]}),
                true,
            ),
            (
                json!({"matchLabels": {"app": "nginx"}, "matchExpressions": [
                {"key": "tier", "operator": "NotIn", "values": ["fe"]}]}),
                false,
            ),
        ];
        for (selector, selects) in cases {
            let mut d = deployment(json!({"selector": selector}));
            d["spec"]["template"]["metadata"]["labels"] = labels.clone();
            let causes = create("Deployment", d);
            let mismatch = has(
                &causes,
                "FieldValueInvalid",
                "spec.template.metadata.labels",
            );
            assert_eq!(!mismatch, selects, "{selector}: {causes:?}");
            if selects {
                assert_eq!(causes, vec![], "{selector}");
            }
        }
        // A selector that does not parse selects nothing, as before (and its error is reported).
        let d = deployment(
            json!({"selector": {"matchExpressions": [{"key": "app", "operator": "Near"}]}}),
        );
        let causes = create("Deployment", d);
        assert!(has(
            &causes,
            "FieldValueInvalid",
            "spec.selector.matchExpressions[0].operator"
        ));
        assert!(has(
            &causes,
            "FieldValueInvalid",
            "spec.template.metadata.labels"
        ));
    }

    #[test]
    fn workload_rules() {
        let mut d = kubectl_deployment();
        d["spec"].as_object_mut().unwrap().remove("selector");
        assert!(has(
            &create("Deployment", d),
            "FieldValueRequired",
            "spec.selector"
        ));
        let c = create("Deployment", deployment(json!({"selector": {}})));
        assert!(has(&c, "FieldValueRequired", "spec.selector"));
        let c = create(
            "Deployment",
            deployment(json!({"selector": {"matchLabels": {"app": "other"}}})),
        );
        assert_eq!(fields(&c), vec!["spec.template.metadata.labels"]);
        let c = create(
            "Deployment",
            deployment(
                json!({"selector": {"matchLabels": {"app": "nginx"}, "matchExpressions": [
                {"key": "app", "operator": "In", "values": ["nginx", "web"]},
                {"key": "tier", "operator": "DoesNotExist"},
                {"key": "app", "operator": "Exists"},
                {"key": "env", "operator": "NotIn", "values": ["prod"]}]}}),
            ),
        );
        assert_eq!(c, vec![]);
        let c = create(
            "Deployment",
            deployment(
                json!({"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}}),
            ),
        );
        assert_eq!(fields(&c), vec!["spec.template.metadata.labels"]);
        let c = create(
            "Deployment",
            deployment(json!({"selector": {"matchExpressions": [
                {"key": "app", "operator": "In"}, {"key": "a", "operator": "Exists", "values": ["x"]},
                {"key": "b", "operator": "Near"}]}})),
        );
        assert!(has(
            &c,
            "FieldValueRequired",
            "spec.selector.matchExpressions[0].values"
        ));
        assert!(has(
            &c,
            "FieldValueForbidden",
            "spec.selector.matchExpressions[1].values"
        ));
        assert!(has(
            &c,
            "FieldValueInvalid",
            "spec.selector.matchExpressions[2].operator"
        ));

        let c = create(
            "Deployment",
            deployment(json!({"replicas": -1, "minReadySeconds": -2})),
        );
        assert!(has(&c, "FieldValueInvalid", "spec.replicas"));
        assert!(has(&c, "FieldValueInvalid", "spec.minReadySeconds"));
        let mut d = kubectl_deployment();
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        let c = create("Deployment", d);
        assert_eq!(fields(&c), vec!["spec.template.spec.restartPolicy"]);
        assert_eq!(c[0].reason, "FieldValueNotSupported");

        let c = create(
            "Deployment",
            deployment(json!({"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}})),
        );
        assert!(has(
            &c,
            "FieldValueForbidden",
            "spec.strategy.rollingUpdate"
        ));
        let c = create(
            "Deployment",
            deployment(json!({"strategy": {"type": "Canary"}})),
        );
        assert!(has(&c, "FieldValueNotSupported", "spec.strategy.type"));
        let c = create(
            "Deployment",
            deployment(
                json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}}),
            ),
        );
        assert_eq!(
            fields(&c),
            vec!["spec.strategy.rollingUpdate.maxUnavailable"]
        );
        let c = create(
            "Deployment",
            deployment(
                json!({"strategy": {"rollingUpdate": {"maxSurge": "x%", "maxUnavailable": "150%"}}}),
            ),
        );
        assert!(has(
            &c,
            "FieldValueInvalid",
            "spec.strategy.rollingUpdate.maxSurge"
        ));
        assert!(has(
            &c,
            "FieldValueInvalid",
            "spec.strategy.rollingUpdate.maxUnavailable"
        ));
        let c = create(
            "Deployment",
            deployment(
                json!({"strategy": {"type": "Recreate"}, "paused": true, "minReadySeconds": 5}),
            ),
        );
        assert_eq!(c, vec![]);
        let c = create("Deployment", deployment(json!({"minReadySeconds": 700})));
        assert_eq!(fields(&c), vec!["spec.progressDeadlineSeconds"]);
    }

    #[test]
    fn service_rules() {
        let c = create("Service", service(json!({})));
        assert_eq!(fields(&c), vec!["spec.ports"]);
        assert_eq!(
            create("Service", service(json!({"clusterIP": "None"}))),
            vec![]
        );
        let c = create(
            "Service",
            service(
                json!({"type": "NodePort", "clusterIP": "10.96.0.10", "ports": [
                {"name": "a", "port": 80, "nodePort": 30080},
                {"port": 80, "targetPort": "http"},
                {"name": "a", "port": 0, "nodePort": 80, "targetPort": 70000},
                {"name": "d", "port": 53, "protocol": "UDP", "targetPort": "Bad_Name"},
                {"name": "e", "port": 53, "protocol": "UDP"}]}),
            ),
        );
        assert!(has(&c, "FieldValueRequired", "spec.ports[1].name"));
        assert!(has(&c, "FieldValueDuplicate", "spec.ports[1]"));
        assert!(has(&c, "FieldValueDuplicate", "spec.ports[2].name"));
        assert!(has(&c, "FieldValueInvalid", "spec.ports[2].port"));
        assert!(has(&c, "FieldValueInvalid", "spec.ports[2].nodePort"));
        assert!(has(&c, "FieldValueInvalid", "spec.ports[2].targetPort"));
        assert!(has(&c, "FieldValueInvalid", "spec.ports[3].targetPort"));
        assert!(has(&c, "FieldValueDuplicate", "spec.ports[4]"));
        assert!(!fields(&c).contains(&"spec.ports[0].nodePort"));
        let c = create(
            "Service",
            service(json!({"clusterIP": "300.1.1.1", "ports": [{"port": 80, "nodePort": 30001}]})),
        );
        assert!(has(&c, "FieldValueInvalid", "spec.clusterIP"));
        assert!(has(&c, "FieldValueForbidden", "spec.ports[0].nodePort"));
        let c = create(
            "Service",
            service(json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]})),
        );
        assert_eq!(fields(&c), vec!["spec.clusterIP"]);
        let ok = service(
            json!({"type": "NodePort", "externalTrafficPolicy": "Cluster",
            "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "clusterIPs": ["10.96.0.1"], "clusterIP": "10.96.0.1", "selector": {"app": "web"},
            "ports": [{"port": 443, "nodePort": 32767, "targetPort": "https", "name": "https"}]}),
        );
        assert_eq!(create("Service", ok), vec![]);
        let c = create(
            "Service",
            service(json!({"externalTrafficPolicy": "Local", "ports": [{"port": 80}]})),
        );
        assert_eq!(fields(&c), vec!["spec.externalTrafficPolicy"]);
        let affinity = |cfg: Value| {
            let mut s = service(json!({"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}));
            s["spec"]["sessionAffinityConfig"] = cfg;
            fields(&create("Service", s))
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert!(affinity(json!({"clientIP": {"timeoutSeconds": 30}})).is_empty());
        assert_eq!(
            affinity(json!({"clientIP": {"timeoutSeconds": 0}})),
            vec!["spec.sessionAffinityConfig.clientIP.timeoutSeconds"]
        );
        let mut none = service(json!({"ports": [{"port": 80}]}));
        none["spec"]["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 30}});
        assert_eq!(
            fields(&create("Service", none)),
            vec!["spec.sessionAffinityConfig"]
        );
    }

    #[test]
    fn secret_defaults_types_and_immutability() {
        let sec = |extra: Value| {
            let mut o = json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "namespace": "default"}});
            for (k, v) in extra.as_object().unwrap() {
                o[k] = v.clone();
            }
            o
        };
        // stringData merged into data, winning; type defaulted.
        let mut d = decode(
            k("Secret"),
            &sec(json!({"data": {"a": "b2xk"}, "stringData": {"a": "new", "b": "x"}})),
            FieldValidation::Strict,
        )
        .unwrap();
        default(k("Secret"), &mut d.object);
        assert_eq!(d.object["type"], "Opaque");
        assert_eq!(d.object["data"], json!({"a": "bmV3", "b": "eA=="}));
        assert!(d.object.get("stringData").is_none());
        assert_eq!(validate_create(k("Secret"), &d.object), vec![]);

        let tls = |data: Value| sec(json!({"type": "kubernetes.io/tls", "data": data}));
        assert_eq!(
            create("Secret", tls(json!({"tls.crt": "Yw==", "tls.key": "aw=="}))),
            vec![]
        );
        assert_eq!(
            fields(&create("Secret", tls(json!({"tls.crt": "Yw=="})))),
            vec!["data[tls.key]"]
        );
        let basic = |data: Value| sec(json!({"type": "kubernetes.io/basic-auth", "data": data}));
        assert_eq!(create("Secret", basic(json!({"password": "cA=="}))), vec![]);
        assert_eq!(
            fields(&create("Secret", basic(json!({})))),
            vec!["data[username]"]
        );
        let pull = |v: &str| {
            sec(json!({"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": v}}))
        };
        // {"auths":{}} and {not json
        assert_eq!(create("Secret", pull("eyJhdXRocyI6e319")), vec![]);
        assert_eq!(
            fields(&create("Secret", pull("e25vdCBqc29u"))),
            vec!["data[.dockerconfigjson]"]
        );
        let sa = sec(json!({"type": "kubernetes.io/service-account-token"}));
        assert_eq!(
            fields(&create("Secret", sa)),
            vec!["metadata.annotations[kubernetes.io/service-account.name]"]
        );
        assert!(has(
            &create("Secret", sec(json!({"data": {"bad key": "eA=="}}))),
            "FieldValueInvalid",
            "data"
        ));

        let old = sec(json!({"type": "Opaque", "data": {"a": "eA=="}}));
        let retyped =
            sec(json!({"type": "kubernetes.io/basic-auth", "data": {"username": "eA=="}}));
        assert!(fields(&validate_update(k("Secret"), &old, &retyped)).contains(&"type"));
        let frozen = sec(json!({"type": "Opaque", "data": {"a": "eA=="}, "immutable": true}));
        let changed = sec(json!({"type": "Opaque", "data": {"a": "eQ=="}, "immutable": true}));
        assert_eq!(
            fields(&validate_update(k("Secret"), &frozen, &changed)),
            vec!["data"]
        );
    }

    #[test]
    fn runtime_class_handler_and_refused_fields() {
        let rc = |handler: Value| {
            json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                "metadata": {"name": "gvisor"}, "handler": handler})
        };
        assert_eq!(create("RuntimeClass", rc(json!("runsc"))), vec![]);
        for bad in ["", "Runsc", "run.sc", "-runsc", &"a".repeat(64)] {
            let c = create("RuntimeClass", rc(json!(bad)));
            assert!(has(&c, "FieldValueInvalid", "handler"), "{bad:?}: {c:?}");
        }
        // Missing, it is the empty string: invalid, as in Kubernetes.
        let mut missing = rc(json!("x"));
        missing.as_object_mut().unwrap().remove("handler");
        let c = create("RuntimeClass", missing);
        assert_eq!(fields(&c), vec!["handler"]);
        assert!(c[0]
            .message
            .starts_with("Invalid value: \"\": a lowercase RFC 1123 label"));
        // The name is a DNS subdomain; there is no namespace.
        let mut dotted = rc(json!("runsc"));
        dotted["metadata"]["name"] = json!("gvisor.example.com");
        assert_eq!(create("RuntimeClass", dotted), vec![]);

        for (field, value) in [
            ("overhead", json!({"podFixed": {"cpu": "250m"}})),
            ("scheduling", json!({"nodeSelector": {"sandbox": "true"}})),
        ] {
            let mut o = rc(json!("runsc"));
            o[field] = value;
            let c = create("RuntimeClass", o);
            assert!(
                c.iter().any(|c| c.reason == "FieldValueNotSupported"
                    && c.field.starts_with(field)
                    && c.message.starts_with("not supported by navarch")),
                "{field}: {c:?}"
            );
        }

        let old = rc(json!("runsc"));
        let mut relabeled = old.clone();
        relabeled["metadata"]["labels"] = json!({"tier": "sandbox"});
        assert_eq!(validate_update(k("RuntimeClass"), &old, &relabeled), vec![]);
        let changed = validate_update(k("RuntimeClass"), &old, &rc(json!("kata")));
        assert_eq!(fields(&changed), vec!["handler"]);
        assert_eq!(changed[0].reason, "FieldValueInvalid");
        assert_eq!(
            changed[0].message,
            "Invalid value: \"kata\": field is immutable"
        );
    }

    #[test]
    fn pod_runtime_class_name_is_a_subdomain() {
        let pod = |class: Value| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                "spec": {"runtimeClassName": class, "containers": [{"name": "c", "image": "busybox"}]}})
        };
        assert_eq!(create("Pod", pod(json!("oci"))), vec![]);
        assert_eq!(create("Pod", pod(json!("gvisor.example.com"))), vec![]);
        assert_eq!(create("Pod", pod(Value::Null)), vec![]);
        for bad in ["", "OCI", "oci_1"] {
            let c = create("Pod", pod(json!(bad)));
            assert_eq!(fields(&c), vec!["spec.runtimeClassName"], "{bad:?}");
        }
    }

    #[test]
    fn config_map_keys_size_and_immutability() {
        let cm = |extra: Value| {
            let mut o = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "default"}});
            for (k, v) in extra.as_object().unwrap() {
                o[k] = v.clone();
            }
            o
        };
        let ok = cm(json!({"data": {"a.conf": "x", "KEY_2": "y"},
            "binaryData": {"blob-1": "AAEC"}, "immutable": false}));
        assert_eq!(create("ConfigMap", ok.clone()), vec![]);
        let cases = [
            (
                json!({"data": {"bad key": "x"}}),
                "FieldValueInvalid",
                "data",
            ),
            (json!({"data": {"..x": "x"}}), "FieldValueInvalid", "data"),
            (json!({"data": {".": "x"}}), "FieldValueInvalid", "data"),
            (
                json!({"data": {"k": "x"}, "binaryData": {"k": "AAEC"}}),
                "FieldValueInvalid",
                "binaryData",
            ),
            (
                json!({"data": {"big": "x".repeat(MAX_CONFIG_MAP_SIZE + 1)}}),
                "FieldValueTooLong",
                "[]",
            ),
        ];
        for (extra, reason, field) in cases {
            let c = create("ConfigMap", cm(extra.clone()));
            assert!(has(&c, reason, field), "{extra}: {c:?}");
        }
        // Not base64: the typed decode refuses it.
        let bad = cm(json!({"binaryData": {"k": "not base64!"}}));
        assert!(decode(k("ConfigMap"), &bad, FieldValidation::Strict).is_err());

        let frozen = cm(json!({"data": {"a": "1"}, "immutable": true}));
        assert_eq!(
            validate_update(k("ConfigMap"), &ok, &frozen),
            vec![],
            "a mutable one may freeze"
        );
        let changed = cm(json!({"data": {"a": "2"}, "immutable": true}));
        assert_eq!(
            fields(&validate_update(k("ConfigMap"), &frozen, &changed)),
            vec!["data"]
        );
        let thawed = cm(json!({"data": {"a": "1"}, "immutable": false}));
        assert_eq!(
            fields(&validate_update(k("ConfigMap"), &frozen, &thawed)),
            vec!["immutable"]
        );
        let relabeled = {
            let mut f = frozen.clone();
            f["metadata"]["labels"] = json!({"x": "y"});
            f
        };
        assert_eq!(
            validate_update(k("ConfigMap"), &frozen, &relabeled),
            vec![],
            "metadata may change"
        );
    }

    #[test]
    fn lease_event_endpoints_rules() {
        let lease = |spec: Value| json!({"metadata": {"name": "l", "namespace": "kube-system"}, "spec": spec});
        assert_eq!(
            create(
                "Lease",
                lease(json!({"holderIdentity": "n1", "leaseDurationSeconds": 15,
                "renewTime": "2024-05-01T10:00:00.123456Z", "acquireTime": "2024-05-01T10:00:00Z"}))
            ),
            vec![]
        );
        let c = create("Lease", lease(json!({"leaseDurationSeconds": 0})));
        assert_eq!(fields(&c), vec!["spec.leaseDurationSeconds"]);

        let ev = |involved: Value| {
            json!({"metadata": {"name": "p.1", "namespace": "default"},
            "involvedObject": involved, "reason": "Started", "message": "m", "type": "Normal",
            "firstTimestamp": "2024-05-01T10:00:00Z", "count": 1, "source": {"component": "kubelet"}})
        };
        assert_eq!(
            create(
                "Event",
                ev(json!({"kind": "Pod", "name": "p", "namespace": "default"}))
            ),
            vec![]
        );
        let c = create(
            "Event",
            ev(json!({"kind": "Pod", "name": "p", "namespace": "other"})),
        );
        assert_eq!(fields(&c), vec!["involvedObject.namespace"]);
        let c = create("Event", ev(json!(null)));
        assert!(has(&c, "FieldValueRequired", "involvedObject"));

        let ep = json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "nope"}],
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 0}]}]});
        let c = create("Endpoints", ep);
        let mut f = fields(&c);
        f.sort();
        assert_eq!(
            f,
            vec!["subsets[0].addresses[1].ip", "subsets[0].ports[1].port"]
        );
    }

    fn defaulted(kind: &str, body: Value) -> Value {
        let mut d = decode(k(kind), &body, FieldValidation::Strict).unwrap();
        default(k(kind), &mut d.object);
        d.object
    }

    #[test]
    fn updates() {
        let old = defaulted("Deployment", kubectl_deployment());
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        assert_eq!(validate_update(k("Deployment"), &old, &new), vec![]);
        new["spec"]["selector"] = json!({"matchLabels": {"app": "nginx", "x": "y"}});
        new["spec"]["template"]["metadata"]["labels"]["x"] = json!("y");
        let c = validate_update(k("Deployment"), &old, &new);
        assert_eq!(fields(&c), vec!["spec.selector"]);
        assert!(c[0].message.ends_with("field is immutable"));
        let mut renamed = old.clone();
        renamed["metadata"]["name"] = json!("other");
        assert_eq!(
            fields(&validate_update(k("Deployment"), &old, &renamed)),
            vec!["metadata.name"]
        );

        let mut base = simple_pod();
        base["spec"]["tolerations"] = json!([{"key": "a", "operator": "Exists"}]);
        base["spec"]["activeDeadlineSeconds"] = json!(100);
        let old = defaulted("Pod", base);
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:1.28");
        new["spec"]["activeDeadlineSeconds"] = json!(50);
        new["spec"]["terminationGracePeriodSeconds"] = json!(5);
        new["spec"]["tolerations"] =
            json!([{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]);
        new["metadata"]["labels"] = json!({"x": "y"});
        new["status"] = json!({"phase": "Running"});
        assert_eq!(validate_update(k("Pod"), &old, &new), vec![]);
        let mut bad = new.clone();
        bad["spec"]["restartPolicy"] = json!("Never");
        let c = validate_update(k("Pod"), &old, &bad);
        assert_eq!(fields(&c), vec!["spec"]);
        assert!(c[0]
            .message
            .contains("pod updates may not change fields other than"));
        let mut bad = new.clone();
        bad["spec"]["tolerations"] = json!([{"key": "b", "operator": "Exists"}]);
        assert_eq!(
            fields(&validate_update(k("Pod"), &old, &bad)),
            vec!["spec.tolerations"]
        );
        let mut bad = new.clone();
        bad["spec"]["activeDeadlineSeconds"] = json!(200);
        assert_eq!(
            fields(&validate_update(k("Pod"), &old, &bad)),
            vec!["spec.activeDeadlineSeconds"]
        );
        let mut bad = new;
        bad["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
        assert_eq!(fields(&validate_update(k("Pod"), &old, &bad)), vec!["spec"]);

        let mut old = defaulted("Service", service(json!({"ports": [{"port": 80}]})));
        let new = old.clone();
        assert_eq!(validate_update(k("Service"), &old, &new), vec![]);
        old["spec"]["clusterIP"] = json!("10.96.0.5");
        let c = validate_update(k("Service"), &old, &new);
        assert_eq!(fields(&c), vec!["spec.clusterIP"]);
        assert_eq!(validate_update(k("Service"), &old, &old), vec![]);

        let ns = defaulted("Namespace", json!({"metadata": {"name": "a"}}));
        let mut ns2 = ns.clone();
        ns2["metadata"]["labels"] = json!({"team": "x"});
        assert_eq!(validate_update(k("Namespace"), &ns, &ns2), vec![]);
        // Finalizers are standard names or qualified by a domain.
        let mut odd = ns.clone();
        odd["spec"]["finalizers"] = json!(["kubernetes", "example.com/x", "mine", "a b/c"]);
        let c = validate_update(k("Namespace"), &ns, &odd);
        assert_eq!(
            fields(&c),
            vec!["spec.finalizers[2]", "spec.finalizers[3]"],
            "{c:?}"
        );
        // The phase follows the deletion.
        let mut terminating = ns.clone();
        terminating["status"]["phase"] = json!("Terminating");
        let c = validate_update(k("Namespace"), &ns, &terminating);
        assert_eq!(fields(&c), vec!["status.Phase"]);
        assert!(c[0].message.contains("may only be 'Active'"), "{c:?}");
        terminating["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(validate_update(k("Namespace"), &ns, &terminating), vec![]);
        let mut back = terminating.clone();
        back["status"]["phase"] = json!("Active");
        let c = validate_update(k("Namespace"), &terminating, &back);
        assert!(c[0].message.contains("may only be 'Terminating'"), "{c:?}");
    }

    #[test]
    fn node_affinity_and_host_ports() {
        let term = json!({"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]},
                                               {"key": "gpu", "operator": "Exists"},
                                               {"key": "cores", "operator": "Gt", "values": ["4"]}],
                          "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]});
        let ok = pod(json!({"containers": [{"name": "a", "image": "x",
                "ports": [{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"},
                          {"containerPort": 81, "hostPort": 8080, "protocol": "UDP"}]},
                {"name": "b", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]}],
            "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term.clone()]},
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": term}]}}}));
        assert_eq!(create("Pod", ok), vec![]);

        let bad = pod(json!({"containers": [{"name": "a", "image": "x",
                "ports": [{"containerPort": 80, "hostPort": 70000}, {"containerPort": 81, "hostPort": 9000, "hostIP": "nope"},
                          {"containerPort": 82, "hostPort": 9001}]},
                {"name": "b", "image": "x", "ports": [{"containerPort": 82, "hostPort": 9001, "protocol": "TCP"}]}],
            "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "disk", "operator": "In"},
                                          {"key": "gpu", "operator": "Exists", "values": ["x"]},
                                          {"key": "cores", "operator": "Lt", "values": ["1", "2"]},
                                          {"key": "bad key", "operator": "Near", "values": ["-v"]}],
                     "matchFields": [{"key": "metadata.labels", "operator": "In", "values": ["a", "b"]},
                                     {"key": "metadata.name", "operator": "Exists"}]}]},
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "preference": {}}]}}}));
        let c = create("Pod", bad);
        let r = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]";
        let mut want = vec![
            format!("{r}.matchExpressions[0].values"),
            format!("{r}.matchExpressions[1].values"),
            format!("{r}.matchExpressions[2].values"),
            format!("{r}.matchExpressions[3].operator"),
            format!("{r}.matchExpressions[3].key"),
            format!("{r}.matchExpressions[3].values[0]"),
            format!("{r}.matchFields[0].values"),
            format!("{r}.matchFields[0].key"),
            format!("{r}.matchFields[1].operator"),
            "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight"
                .to_string(),
            "spec.containers[0].ports[0].hostPort".to_string(),
            "spec.containers[0].ports[1].hostIP".to_string(),
            "spec.containers[1].ports[0].hostPort".to_string(),
        ];
        let mut got: Vec<String> = c.iter().map(|c| c.field.clone()).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{c:?}");
        assert!(has(
            &c,
            "FieldValueDuplicate",
            "spec.containers[1].ports[0].hostPort"
        ));
        assert!(has(
            &c,
            "FieldValueForbidden",
            &format!("{r}.matchExpressions[1].values")
        ));

        let empty_terms = pod(json!({"containers": [{"name": "a", "image": "x"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}}));
        let c = create("Pod", empty_terms);
        assert_eq!(
            fields(&c),
            vec!["spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"]
        );
        // Pod affinity stays refused, inside a Deployment's template too.
        let mut d = kubectl_deployment();
        d["spec"]["template"]["spec"]["affinity"] = json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}]}});
        let c = create("Deployment", d);
        assert_eq!(fields(&c), vec!["spec.template.spec.affinity.podAffinity"]);
        assert!(c[0].message.starts_with("not supported by navarch"));
    }

    #[test]
    fn toleration_seconds() {
        let p = pod(
            json!({"containers": [{"name": "a", "image": "x"}], "tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "k", "operator": "Exists", "tolerationSeconds": -1},
            {"key": "j", "operator": "Equal", "value": "v", "effect": "NoSchedule", "tolerationSeconds": 1}]}),
        );
        let c = create("Pod", p);
        assert_eq!(
            fields(&c),
            vec!["spec.tolerations[1].effect", "spec.tolerations[2].effect"]
        );
        assert!(c[0]
            .message
            .contains("effect must be 'NoExecute' when `tolerationSeconds` is set"));
        // Negative seconds with NoExecute are Kubernetes' "evict at once": accepted.
        let p = pod(
            json!({"containers": [{"name": "a", "image": "x"}], "tolerations": [
            {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": -5}]}),
        );
        assert_eq!(create("Pod", p), vec![]);

        // An update may change an existing toleration's seconds, nothing else of it.
        let mut base = simple_pod();
        base["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}]);
        let old = defaulted("Pod", base);
        let mut new = old.clone();
        new["spec"]["tolerations"][0]["tolerationSeconds"] = json!(10);
        assert_eq!(validate_update(k("Pod"), &old, &new), vec![]);
        new["spec"]["tolerations"][0]["effect"] = json!("NoSchedule");
        new["spec"]["tolerations"][0]
            .as_object_mut()
            .unwrap()
            .remove("tolerationSeconds");
        assert!(fields(&validate_update(k("Pod"), &old, &new)).contains(&"spec.tolerations"));
    }

    #[test]
    fn workload_templates_take_no_active_deadline() {
        let mut d = kubectl_deployment();
        d["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(30);
        let c = create("Deployment", d);
        assert_eq!(fields(&c), vec!["spec.template.spec.activeDeadlineSeconds"]);
        assert!(c[0]
            .message
            .ends_with("activeDeadlineSeconds in ReplicaSet is not Supported"));
    }

    fn slice(body: Value) -> Value {
        let mut s = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc", "namespace": "default"}});
        for (k, v) in body.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    }

    #[test]
    fn endpoint_slices() {
        let ok = slice(json!({"addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true, "serving": true, "terminating": false},
                           "nodeName": "n1", "hostname": "web-0", "zone": "a",
                           "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "default"},
                           "hints": {"forZones": [{"name": "a"}], "forNodes": [{"name": "n1"}]}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}, {"port": 9090, "name": "m"}]}));
        assert_eq!(create("EndpointSlice", ok.clone()), vec![]);
        let d = defaulted("EndpointSlice", ok);
        assert_eq!(d["ports"][1]["protocol"], "TCP");
        let d = defaulted(
            "EndpointSlice",
            slice(json!({"addressType": "IPv4", "ports": [{"port": 1}]})),
        );
        assert_eq!(
            d["ports"][0],
            json!({"name": "", "port": 1, "protocol": "TCP"})
        );
        assert_eq!(
            create(
                "EndpointSlice",
                slice(json!({"addressType": "IPv6", "endpoints": []}))
            ),
            vec![]
        );

        let c = create("EndpointSlice", slice(json!({})));
        assert!(has(&c, "FieldValueRequired", "addressType"), "{c:?}");
        let c = create("EndpointSlice", slice(json!({"addressType": "IP"})));
        assert!(has(&c, "FieldValueNotSupported", "addressType"), "{c:?}");

        let bad = slice(json!({"addressType": "IPv4",
            "endpoints": [{"addresses": []},
                          {"addresses": ["10.0.0.300", "fd00::1", "127.0.0.1", "0.0.0.0", "169.254.1.1", "224.0.0.5", "10.1.2.3"],
                           "nodeName": "Bad_Node", "hostname": "a.b",
                           "hints": {"forZones": [{"name": "a"}, {"name": "a"}]}}],
            "ports": [{"name": "Bad_Name", "port": 80}, {"name": "x", "port": 81, "protocol": "HTTP"},
                      {"name": "x", "port": 82}, {"port": 83, "appProtocol": "bad proto"}]}));
        let c = create("EndpointSlice", bad);
        let mut got: Vec<&str> = fields(&c);
        got.sort();
        let mut want = vec![
            "endpoints[0].addresses",
            "endpoints[1].addresses[0]",
            "endpoints[1].addresses[1]",
            "endpoints[1].addresses[2]",
            "endpoints[1].addresses[3]",
            "endpoints[1].addresses[4]",
            "endpoints[1].addresses[5]",
            "endpoints[1].nodeName",
            "endpoints[1].hostname",
            "endpoints[1].hints.forZones[1].name",
            "ports[0].name",
            "ports[1].protocol",
            "ports[2].name",
            "ports[3].appProtocol",
        ];
        want.sort();
        assert_eq!(got, want, "{c:?}");
        let loopback = c
            .iter()
            .find(|c| c.field == "endpoints[1].addresses[2]")
            .unwrap();
        assert!(loopback
            .message
            .contains("may not be in the loopback range"));

        let v6 = slice(json!({"addressType": "IPv6",
            "endpoints": [{"addresses": ["10.0.0.1", "fe80::1", "::1", "fd00::1"]}]}));
        let c = create("EndpointSlice", v6);
        let mut got = fields(&c);
        got.sort();
        assert_eq!(
            got,
            vec![
                "endpoints[0].addresses[0]",
                "endpoints[0].addresses[1]",
                "endpoints[0].addresses[2]"
            ]
        );
        let fqdn = slice(json!({"addressType": "FQDN",
            "endpoints": [{"addresses": ["example.com", "example.com.", "localhost", "Bad.example"]}]}));
        let c = create("EndpointSlice", fqdn);
        let mut got = fields(&c);
        got.sort();
        assert_eq!(
            got,
            vec!["endpoints[0].addresses[2]", "endpoints[0].addresses[3]"]
        );

        let old = defaulted(
            "EndpointSlice",
            slice(json!({"addressType": "IPv4", "endpoints": []})),
        );
        let mut new = old.clone();
        new["endpoints"] = json!([{"addresses": ["10.0.0.9"]}]);
        assert_eq!(validate_update(k("EndpointSlice"), &old, &new), vec![]);
        new["addressType"] = json!("IPv6");
        new["endpoints"] = json!([]);
        let c = validate_update(k("EndpointSlice"), &old, &new);
        assert_eq!(fields(&c), vec!["addressType"]);
        assert!(c[0].message.ends_with("field is immutable"));
    }

    fn pdb(spec: Value) -> Value {
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn disruption_budgets() {
        for spec in [
            json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}),
            json!({"minAvailable": "50%", "selector": {}}),
            json!({"maxUnavailable": 0}),
            json!({"maxUnavailable": "100%", "unhealthyPodEvictionPolicy": "AlwaysAllow",
                   "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}}),
        ] {
            assert_eq!(
                create("PodDisruptionBudget", pdb(spec.clone())),
                vec![],
                "{spec}"
            );
        }
        let d = defaulted("PodDisruptionBudget", pdb(json!({"minAvailable": 1})));
        assert_eq!(
            d["status"],
            json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})
        );

        let c = create(
            "PodDisruptionBudget",
            pdb(json!({"minAvailable": 1, "maxUnavailable": 1})),
        );
        assert_eq!(fields(&c), vec!["spec"]);
        assert!(c[0]
            .message
            .ends_with("minAvailable and maxUnavailable cannot be both set"));
        let c = create(
            "PodDisruptionBudget",
            pdb(
                json!({"minAvailable": -1, "unhealthyPodEvictionPolicy": "Sometimes",
                "selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}),
            ),
        );
        let mut got = fields(&c);
        got.sort();
        assert_eq!(
            got,
            vec![
                "spec.minAvailable",
                "spec.selector.matchExpressions[0].operator",
                "spec.unhealthyPodEvictionPolicy"
            ]
        );
        for bad in [json!("150%"), json!("half"), json!("5")] {
            let c = create("PodDisruptionBudget", pdb(json!({"maxUnavailable": bad})));
            assert_eq!(fields(&c), vec!["spec.maxUnavailable"], "{bad}");
        }
        let unknown = pdb(json!({"minAvailable": 1, "podSelector": {}}));
        let err = decode(k("PodDisruptionBudget"), &unknown, FieldValidation::Strict).unwrap_err();
        assert_eq!(fields(&err), vec!["spec.podSelector"]);

        let old = defaulted("PodDisruptionBudget", pdb(json!({"minAvailable": 1})));
        let mut new = old.clone();
        new["spec"]["minAvailable"] = json!("60%");
        assert_eq!(
            validate_update(k("PodDisruptionBudget"), &old, &new),
            vec![]
        );
        new["status"] = json!({"disruptionsAllowed": -1, "currentHealthy": 1, "desiredHealthy": 0, "expectedPods": 1,
            "conditions": [{"type": "DisruptionAllowed", "status": "Maybe", "reason": ""},
                           {"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods",
                            "lastTransitionTime": "2024-05-01T10:00:00Z", "message": ""}]});
        let c = validate_update(k("PodDisruptionBudget"), &old, &new);
        let mut got = fields(&c);
        got.sort();
        assert_eq!(
            got,
            vec![
                "status.conditions[0].lastTransitionTime",
                "status.conditions[0].reason",
                "status.conditions[0].status",
                "status.conditions[1].type",
                "status.disruptionsAllowed"
            ]
        );
    }

    #[test]
    fn quantities() {
        let q = |s: &str| parse_quantity(s);
        assert_eq!(q("500m"), Some(500_000_000));
        assert_eq!(q("1"), Some(1_000_000_000));
        assert_eq!(q("0.5"), q("500m"));
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1k"), q("1e3"));
        assert_eq!(q("1E"), Some(10i128.pow(27)));
        assert_eq!(q("1.5Gi"), q("1536Mi"));
        assert_eq!(q("-1"), Some(-1_000_000_000));
        assert_eq!(q("1n"), Some(1));
        assert_eq!(q("0.1n"), Some(1));
        assert_eq!(q(".5"), q("500m"));
        assert_eq!(q("0"), Some(0));
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q(""), None);
        assert_eq!(q("abc"), None);
        assert_eq!(q("1GiB"), None);
        assert_eq!(q("1.2.3"), None);
        assert_eq!(q("."), None);
        assert_eq!(q("1e"), None);
        assert_eq!(
            q("99999999999999999999999999999999999999999999Ei"),
            Some(i128::MAX)
        );
    }

    #[test]
    fn field_validation_parses() {
        assert_eq!(
            FieldValidation::parse("Strict"),
            Some(FieldValidation::Strict)
        );
        assert_eq!(FieldValidation::parse("strict"), None);
        assert_eq!(FieldValidation::default(), FieldValidation::Warn);
    }
}
