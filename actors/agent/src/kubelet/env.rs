//! A container's environment, as the kubelet builds it (`makeEnvironmentVariables`).
//!
//! The order Kubernetes follows, and so do we:
//! 1. `envFrom[]`, in order: every key of the ConfigMap's `data` (`configMapRef`) or the
//!    Secret's `data`, base64-decoded (`secretRef`), with the source's `prefix` prepended.
//!    A key that is not a valid environment variable name (`[-._a-zA-Z][-._a-zA-Z0-9]*`)
//!    is skipped (the kubelet only reports it in an event; [`container_env`] logs it).
//!    A missing object fails the container unless the source is `optional`.
//! 2. `env[]`, in order, each overriding what came before under its name:
//!    - `value`, with `$(VAR)` references expanded against the variables defined so far
//!      (`$$` is a literal `$`, an undefined reference and an unclosed `$(` stay as
//!      written: Kubernetes' `expansion` package);
//!    - `valueFrom.fieldRef`: the downward API's pod fields (see [`field_ref`]);
//!    - `valueFrom.resourceFieldRef`: a container's `limits`/`requests` of `cpu`, `memory`
//!      or `ephemeral-storage`, divided by `divisor` and rounded up. An unset limit is the
//!      node's allocatable in Kubernetes: here it comes from [`EnvContext::allocatable`],
//!      and when that does not name the resource either the container fails with
//!      [`EnvError::NoLimit`]. An unset request is `0`;
//!    - `valueFrom.configMapKeyRef` / `secretKeyRef`: one key; a missing object or key fails
//!      the container unless `optional`, in which case the variable is not set at all.
//!
//! The result keeps the order in which names were first defined (an override takes its
//! name's first place). Service environment variables ([`service_env`]:
//! `KUBERNETES_SERVICE_HOST`, `<NAME>_PORT_<port>_TCP_ADDR`, ...) come last, those the
//! container does not define itself, and `$(VAR)` references may name them. Every [`EnvError`] is what the kubelet reports as the waiting reason
//! `CreateContainerConfigError`, its message worded as the kubelet's.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use navarch_runtime::EnvVar;
use serde_json::Value;

/// The waiting reason a container gets when its environment cannot be built.
pub const CONFIG_ERROR_REASON: &str = "CreateContainerConfigError";

/// What the environment is built from besides the pod itself.
#[derive(Clone, Copy, Debug)]
pub struct EnvContext<'a> {
    /// The pod's IP (`status.podIP`, `status.podIPs`); `None` falls back to the pod's own
    /// status, then to the empty string.
    pub pod_ip: Option<&'a str>,
    /// The node's IP (`status.hostIP`, `status.hostIPs`), with the same fallback.
    pub host_ip: Option<&'a str>,
    /// The ConfigMaps of the pod's namespace, by name.
    pub config_maps: &'a BTreeMap<String, Value>,
    /// The Secrets of the pod's namespace, by name (`data` values base64).
    pub secrets: &'a BTreeMap<String, Value>,
    /// The node's allocatable resources (`cpu`, `memory`, `ephemeral-storage` as quantity
    /// strings), what a `resourceFieldRef` to an unset limit reads. Empty: such a reference
    /// is an error.
    pub allocatable: &'a BTreeMap<String, String>,
    /// The pod's service environment variables ([`service_env`]).
    pub services: &'a [EnvVar],
}

/// Why a container's environment cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("configmap {name:?} not found")]
    ConfigMapNotFound { name: String },
    #[error("secret {name:?} not found")]
    SecretNotFound { name: String },
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    /// A Secret's value is not base64.
    #[error("secret {namespace}/{name} key {key}: value is not base64")]
    SecretNotBase64 {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("unsupported fieldPath: {path}")]
    UnsupportedFieldPath { path: String },
    #[error("unsupported container resource: {resource}")]
    UnsupportedResource { resource: String },
    #[error("container {container:?} not found in the pod")]
    ContainerNotFound { container: String },
    /// A `resourceFieldRef` to a limit the container does not set, and the node's
    /// allocatable for it is not known.
    #[error("container {container:?} sets no {resource} and the node's allocatable {resource} is not known")]
    NoLimit { container: String, resource: String },
    #[error("invalid quantity {value:?} for {what}")]
    BadQuantity { what: String, value: String },
    /// An `env[]` entry that is not an object with a name (admission rejects these).
    #[error("invalid env entry: {reason}")]
    Invalid { reason: String },
}

impl EnvError {
    /// The container's waiting reason for this error.
    pub fn reason(&self) -> &'static str {
        CONFIG_ERROR_REASON
    }
}

/// Builds `container`'s environment (a member of `pod`'s `containers`, `initContainers` or
/// `ephemeralContainers`), following the kubelet (module docs).
pub fn container_env(
    pod: &Value,
    container: &Value,
    ctx: &EnvContext<'_>,
) -> Result<Vec<EnvVar>, EnvError> {
    let namespace = pod_namespace(pod);
    let mut env = OrderedEnv::default();

    for source in array(container, "envFrom") {
        let prefix = str_at(source, "prefix").unwrap_or("");
        let entries: Vec<(String, String)> = if let Some(r) = source.get("configMapRef") {
            let name = str_at(r, "name").unwrap_or("");
            match ctx.config_maps.get(name) {
                Some(cm) => string_map(cm, "data"),
                None if is_optional(r) => continue,
                None => return Err(EnvError::ConfigMapNotFound { name: name.into() }),
            }
        } else if let Some(r) = source.get("secretRef") {
            let name = str_at(r, "name").unwrap_or("");
            match ctx.secrets.get(name) {
                Some(secret) => secret_data(secret, &namespace, name)?,
                None if is_optional(r) => continue,
                None => return Err(EnvError::SecretNotFound { name: name.into() }),
            }
        } else {
            continue;
        };
        let mut invalid = Vec::new();
        for (key, value) in entries {
            let name = format!("{prefix}{key}");
            if is_env_var_name(&name) {
                env.set(name, value);
            } else {
                invalid.push(name);
            }
        }
        if !invalid.is_empty() {
            tracing::warn!(
                container = str_at(container, "name").unwrap_or(""),
                keys = ?invalid,
                "envfrom keys skipped: not valid environment variable names"
            );
        }
    }

    for var in array(container, "env") {
        let name = str_at(var, "name").ok_or_else(|| EnvError::Invalid {
            reason: "an env entry has no name".into(),
        })?;
        let value = if let Some(from) = var.get("valueFrom").filter(|v| v.is_object()) {
            match value_from(pod, container, from, &namespace, ctx)? {
                Some(v) => v,
                None => continue,
            }
        } else {
            let raw = str_at(var, "value").unwrap_or("");
            expand(raw, |reference| {
                env.get(reference)
                    .or_else(|| {
                        ctx.services
                            .iter()
                            .find(|e| e.name == reference)
                            .map(|e| e.value.as_str())
                    })
                    .map(str::to_string)
            })
        };
        env.set(name.to_string(), value);
    }
    for service in ctx.services {
        if env.get(&service.name).is_none() {
            env.set(service.name.clone(), service.value.clone());
        }
    }
    Ok(env.into_vars())
}

/// The service environment variables of a pod in `namespace` (the kubelet's
/// `getServiceEnvVarMap`, in Docker links' format): for the `kubernetes` Service in
/// `default` always, and with `enable_links` (the pod's `enableServiceLinks`, true unless
/// false) for every Service of the pod's namespace, each with a cluster IP:
/// `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT` (its first port),
/// `<NAME>_SERVICE_PORT_<PORT NAME>`, `<NAME>_PORT` and, per port,
/// `<NAME>_PORT_<port>_<PROTO>` with `_PROTO`, `_PORT` and `_ADDR`. `<NAME>` is the
/// Service's name upper-cased with `-` as `_`. A Service of the pod's namespace wins over the
/// `kubernetes` one of `default` on the same name. Sorted by variable name.
pub fn service_env(services: &[&Value], namespace: &str, enable_links: bool) -> Vec<EnvVar> {
    let mut chosen: BTreeMap<String, &Value> = BTreeMap::new();
    for svc in services {
        let meta = &svc["metadata"];
        let (ns, name) = (
            str_at(meta, "namespace").unwrap_or(""),
            str_at(meta, "name").unwrap_or(""),
        );
        let ip = str_at(&svc["spec"], "clusterIP").unwrap_or("");
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let master = ns == "default" && name == "kubernetes";
        // The pod's own namespace's Service of a name wins over the master one.
        let own = enable_links && ns == namespace;
        if own || (master && !chosen.contains_key(name)) {
            chosen.insert(name.to_string(), svc);
        }
    }
    let mut out = BTreeMap::new();
    for (name, svc) in chosen {
        let prefix = name.to_ascii_uppercase().replace('-', "_");
        let ip = str_at(&svc["spec"], "clusterIP").unwrap_or("");
        let ports = array(&svc["spec"], "ports");
        let Some(first) = ports.first() else {
            continue;
        };
        let port_of = |p: &Value| p["port"].as_i64().unwrap_or(0);
        let proto_of = |p: &Value| str_at(p, "protocol").unwrap_or("TCP").to_ascii_lowercase();
        out.insert(format!("{prefix}_SERVICE_HOST"), ip.to_string());
        out.insert(format!("{prefix}_SERVICE_PORT"), port_of(first).to_string());
        out.insert(
            format!("{prefix}_PORT"),
            format!("{}://{ip}:{}", proto_of(first), port_of(first)),
        );
        for p in ports {
            let (port, proto) = (port_of(p), proto_of(p));
            if let Some(n) = str_at(p, "name").filter(|n| !n.is_empty()) {
                let n = n.to_ascii_uppercase().replace('-', "_");
                out.insert(format!("{prefix}_SERVICE_PORT_{n}"), port.to_string());
            }
            let base = format!("{prefix}_PORT_{port}_{}", proto.to_ascii_uppercase());
            out.insert(base.clone(), format!("{proto}://{ip}:{port}"));
            out.insert(format!("{base}_PROTO"), proto.clone());
            out.insert(format!("{base}_PORT"), port.to_string());
            out.insert(format!("{base}_ADDR"), ip.to_string());
        }
    }
    out.into_iter()
        .map(|(name, value)| EnvVar { name, value })
        .collect()
}

/// `container`'s `command` and `args` with `$(VAR)` references expanded against its
/// resolved environment `env` (the kubelet's `ExpandContainerCommandAndArgs`; same rules
/// as [`expand`]).
pub fn expand_command_args(container: &Value, env: &[EnvVar]) -> (Vec<String>, Vec<String>) {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|e| e.name == name)
            .map(|e| e.value.clone())
    };
    let expand_all = |key: &str| -> Vec<String> {
        array(container, key)
            .iter()
            .filter_map(Value::as_str)
            .map(|s| expand(s, lookup))
            .collect()
    };
    (expand_all("command"), expand_all("args"))
}

/// The ConfigMaps and Secrets `pod` refers to (env, envFrom of every container, init and
/// ephemeral ones included, and its configMap, secret and projected volumes), so the agent
/// knows what to fetch before it builds environments and volumes.
pub fn referenced_objects(pod: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    navarch_model::authz::node::referenced_objects(pod)
}

/// Expands `$(VAR)` references in `input` as Kubernetes' `expansion.Expand` does: `$$`
/// is a literal `$`, `$(NAME)` is `mapping(NAME)` or stays `$(NAME)` when that is `None`,
/// an unclosed `$(` and a `$` before anything else stay as written.
pub fn expand(input: &str, mapping: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(close) => {
                    let name = &inner[..close];
                    match mapping(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Whether `name` is a valid environment variable name: `[-._a-zA-Z][-._a-zA-Z0-9]*`
/// (Kubernetes' `IsEnvVarName`).
pub fn is_env_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let ok_first = |b: u8| b.is_ascii_alphabetic() || b"-._".contains(&b);
    match bytes.next() {
        Some(b) if ok_first(b) => bytes.all(|b| ok_first(b) || b.is_ascii_digit()),
        _ => false,
    }
}

/// A downward API pod field, as `valueFrom.fieldRef.fieldPath` names it: `metadata.name`,
/// `metadata.namespace`, `metadata.uid`, `metadata.labels`, `metadata.annotations` (the
/// whole map as `k="v"` lines, sorted), `metadata.labels['k']`,
/// `metadata.annotations['k']` (empty when absent), `spec.nodeName`,
/// `spec.serviceAccountName`, `status.podIP`, `status.podIPs`, `status.hostIP`,
/// `status.hostIPs` (the IPs comma-separated).
pub fn field_ref(pod: &Value, path: &str, ctx: &EnvContext<'_>) -> Result<String, EnvError> {
    let meta = pod.get("metadata").unwrap_or(&Value::Null);
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let status = pod.get("status").unwrap_or(&Value::Null);
    let string = |v: &Value, k: &str| str_at(v, k).unwrap_or("").to_string();
    let ips = |given: Option<&str>, list: &str, single: &str| -> String {
        if let Some(ip) = given {
            return ip.to_string();
        }
        let listed: Vec<&str> = array(status, list)
            .iter()
            .filter_map(|e| str_at(e, "ip"))
            .collect();
        if listed.is_empty() {
            string(status, single)
        } else {
            listed.join(",")
        }
    };
    let value = match path {
        "metadata.name" => string(meta, "name"),
        "metadata.namespace" => pod_namespace(pod),
        "metadata.uid" => string(meta, "uid"),
        "metadata.labels" => format_map(meta.get("labels")),
        "metadata.annotations" => format_map(meta.get("annotations")),
        "spec.nodeName" => string(spec, "nodeName"),
        "spec.serviceAccountName" => string(spec, "serviceAccountName"),
        "status.podIP" => ctx
            .pod_ip
            .map(str::to_string)
            .unwrap_or_else(|| string(status, "podIP")),
        "status.podIPs" => ips(ctx.pod_ip, "podIPs", "podIP"),
        "status.hostIP" => ctx
            .host_ip
            .map(str::to_string)
            .unwrap_or_else(|| string(status, "hostIP")),
        "status.hostIPs" => ips(ctx.host_ip, "hostIPs", "hostIP"),
        _ => {
            let subscript = |field: &str| -> Option<String> {
                let key = path
                    .strip_prefix(field)?
                    .strip_prefix("['")?
                    .strip_suffix("']")?;
                Some(
                    meta.get(field.trim_start_matches("metadata."))
                        .and_then(|m| str_at(m, key))
                        .unwrap_or("")
                        .to_string(),
                )
            };
            match subscript("metadata.labels").or_else(|| subscript("metadata.annotations")) {
                Some(v) => v,
                None => return Err(EnvError::UnsupportedFieldPath { path: path.into() }),
            }
        }
    };
    Ok(value)
}

/// A `resourceFieldRef`'s value for `container`: `limits.cpu` / `requests.cpu` in units
/// of `divisor` (default `1`), from millicores, rounded up; `limits.memory`,
/// `requests.memory`, `limits.ephemeral-storage`, `requests.ephemeral-storage` in units
/// of `divisor`, from bytes, rounded up. An unset limit reads `allocatable` (or fails);
/// an unset request is `0`.
pub fn resource_field_ref(
    container: &Value,
    resource: &str,
    divisor: Option<&str>,
    allocatable: &BTreeMap<String, String>,
) -> Result<String, EnvError> {
    let (section, name) = resource
        .split_once('.')
        .filter(|(s, n)| {
            (*s == "limits" || *s == "requests")
                && ["cpu", "memory", "ephemeral-storage"].contains(n)
        })
        .ok_or_else(|| EnvError::UnsupportedResource {
            resource: resource.into(),
        })?;
    let container_name = str_at(container, "name").unwrap_or("");
    let set = container
        .get("resources")
        .and_then(|r| r.get(section))
        .and_then(|m| m.get(name))
        .and_then(quantity_string);
    let quantity = match (set, section) {
        (Some(q), _) => q,
        (None, "limits") => match allocatable.get(name) {
            Some(q) => q.clone(),
            None => {
                return Err(EnvError::NoLimit {
                    container: container_name.into(),
                    resource: name.into(),
                })
            }
        },
        (None, _) => "0".into(),
    };
    let nanos = parse(&quantity, resource)?;
    let divisor_text = divisor.unwrap_or("1");
    let divisor_nanos = parse(divisor_text, &format!("{resource} divisor"))?;
    // CPU counts in millicores (Quantity.MilliValue), the rest in units (Quantity.Value),
    // each rounded up before the division, as the kubelet's conversion does.
    let unit: i128 = if name == "cpu" {
        1_000_000
    } else {
        1_000_000_000
    };
    let value = ceil_div(nanos, unit);
    let per = ceil_div(divisor_nanos, unit);
    if per <= 0 {
        return Err(EnvError::BadQuantity {
            what: format!("{resource} divisor"),
            value: divisor_text.into(),
        });
    }
    Ok(ceil_div(value, per).to_string())
}

fn value_from(
    pod: &Value,
    container: &Value,
    from: &Value,
    namespace: &str,
    ctx: &EnvContext<'_>,
) -> Result<Option<String>, EnvError> {
    if let Some(f) = from.get("fieldRef") {
        let path = str_at(f, "fieldPath").unwrap_or("");
        return field_ref(pod, path, ctx).map(Some);
    }
    if let Some(r) = from.get("resourceFieldRef") {
        let target = match str_at(r, "containerName").filter(|n| !n.is_empty()) {
            Some(name) => find_container(pod, name).ok_or_else(|| EnvError::ContainerNotFound {
                container: name.into(),
            })?,
            None => container,
        };
        let divisor = r.get("divisor").and_then(quantity_string);
        let resource = str_at(r, "resource").unwrap_or("");
        return resource_field_ref(target, resource, divisor.as_deref(), ctx.allocatable).map(Some);
    }
    if let Some(r) = from.get("configMapKeyRef") {
        let name = str_at(r, "name").unwrap_or("");
        let key = str_at(r, "key").unwrap_or("");
        let Some(cm) = ctx.config_maps.get(name) else {
            return if is_optional(r) {
                Ok(None)
            } else {
                Err(EnvError::ConfigMapNotFound { name: name.into() })
            };
        };
        return match cm.get("data").and_then(|d| str_at(d, key)) {
            Some(v) => Ok(Some(v.to_string())),
            None if is_optional(r) => Ok(None),
            None => Err(EnvError::ConfigMapKeyNotFound {
                namespace: namespace.into(),
                name: name.into(),
                key: key.into(),
            }),
        };
    }
    if let Some(r) = from.get("secretKeyRef") {
        let name = str_at(r, "name").unwrap_or("");
        let key = str_at(r, "key").unwrap_or("");
        let Some(secret) = ctx.secrets.get(name) else {
            return if is_optional(r) {
                Ok(None)
            } else {
                Err(EnvError::SecretNotFound { name: name.into() })
            };
        };
        return match secret.get("data").and_then(|d| str_at(d, key)) {
            Some(v) => decode(v, namespace, name, key)
                .map(|bytes| Some(String::from_utf8_lossy(&bytes).into_owned())),
            None if is_optional(r) => Ok(None),
            None => Err(EnvError::SecretKeyNotFound {
                namespace: namespace.into(),
                name: name.into(),
                key: key.into(),
            }),
        };
    }
    Err(EnvError::Invalid {
        reason: "valueFrom names no source".into(),
    })
}

/// The environment being built: names in first-definition order, later values winning.
#[derive(Default)]
struct OrderedEnv {
    order: Vec<String>,
    values: BTreeMap<String, String>,
}

impl OrderedEnv {
    fn set(&mut self, name: String, value: String) {
        if !self.values.contains_key(&name) {
            self.order.push(name.clone());
        }
        self.values.insert(name, value);
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    fn into_vars(mut self) -> Vec<EnvVar> {
        self.order
            .into_iter()
            .map(|name| {
                let value = self.values.remove(&name).unwrap_or_default();
                EnvVar { name, value }
            })
            .collect()
    }
}

/// The pod's namespace (`default` when unset, as the API server defaults it).
pub(crate) fn pod_namespace(pod: &Value) -> String {
    pod.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string()
}

pub(crate) fn array<'v>(v: &'v Value, key: &str) -> &'v [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(crate) fn str_at<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

pub(crate) fn is_optional(v: &Value) -> bool {
    v.get("optional").and_then(Value::as_bool).unwrap_or(false)
}

/// A quantity as JSON carries it: a string, or a bare number.
pub(crate) fn quantity_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn string_map(object: &Value, key: &str) -> Vec<(String, String)> {
    object
        .get(key)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn secret_data(
    secret: &Value,
    namespace: &str,
    name: &str,
) -> Result<Vec<(String, String)>, EnvError> {
    string_map(secret, "data")
        .into_iter()
        .map(|(k, v)| {
            let bytes = decode(&v, namespace, name, &k)?;
            Ok((k, String::from_utf8_lossy(&bytes).into_owned()))
        })
        .collect()
}

fn decode(value: &str, namespace: &str, name: &str, key: &str) -> Result<Vec<u8>, EnvError> {
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|_| EnvError::SecretNotBase64 {
            namespace: namespace.into(),
            name: name.into(),
            key: key.into(),
        })
}

pub(crate) fn find_container<'v>(pod: &'v Value, name: &str) -> Option<&'v Value> {
    let spec = pod.get("spec")?;
    ["containers", "initContainers"]
        .iter()
        .flat_map(|list| array(spec, list))
        .find(|c| str_at(c, "name") == Some(name))
}

fn format_map(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object) else {
        return String::new();
    };
    let sorted: BTreeMap<&String, &str> = map
        .iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or("")))
        .collect();
    sorted
        .into_iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn parse(quantity: &str, what: &str) -> Result<i128, EnvError> {
    navarch_model::validate::parse_quantity(quantity).ok_or_else(|| EnvError::BadQuantity {
        what: what.into(),
        value: quantity.into(),
    })
}

fn ceil_div(a: i128, b: i128) -> i128 {
    if b == 0 {
        return 0;
    }
    let q = a / b;
    if a % b != 0 && ((a < 0) == (b < 0)) {
        q + 1
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    struct Objects {
        config_maps: BTreeMap<String, Value>,
        secrets: BTreeMap<String, Value>,
        allocatable: BTreeMap<String, String>,
        services: Vec<EnvVar>,
    }

    impl Objects {
        fn new() -> Self {
            let mut config_maps = BTreeMap::new();
            config_maps.insert(
                "cfg".to_string(),
                json!({"data": {"A": "from-cm", "B": "b", "bad key": "x", "1NUM": "y"}}),
            );
            let mut secrets = BTreeMap::new();
            secrets.insert(
                "sec".to_string(),
                json!({"data": {"PASSWORD": b64("hunter2"), "A": b64("from-secret")}}),
            );
            Objects {
                config_maps,
                secrets,
                allocatable: BTreeMap::new(),
                services: Vec::new(),
            }
        }

        fn ctx(&self) -> EnvContext<'_> {
            EnvContext {
                pod_ip: Some("10.1.0.5"),
                host_ip: Some("192.168.0.2"),
                config_maps: &self.config_maps,
                secrets: &self.secrets,
                allocatable: &self.allocatable,
                services: &self.services,
            }
        }
    }

    fn pod(container: Value) -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
                "labels": {"app": "web", "tier": "front"}, "annotations": {"note": "hi"}},
            "spec": {"nodeName": "n1", "serviceAccountName": "sa", "containers": [container]},
        })
    }

    fn env_of(container: Value, objects: &Objects) -> Result<Vec<(String, String)>, EnvError> {
        let p = pod(container);
        let c = p["spec"]["containers"][0].clone();
        container_env(&p, &c, &objects.ctx())
            .map(|v| v.into_iter().map(|e| (e.name, e.value)).collect())
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn env_from_then_env_overrides_in_first_definition_order() {
        let objects = Objects::new();
        let got = env_of(
            json!({"name": "c", "envFrom": [
                {"configMapRef": {"name": "cfg"}},
                {"secretRef": {"name": "sec"}, "prefix": "S_"},
            ], "env": [
                {"name": "B", "value": "override"},
                {"name": "C", "value": "$(A)-$(S_PASSWORD)"},
            ]}),
            &objects,
        )
        .unwrap();
        assert_eq!(
            got,
            pairs(&[
                ("A", "from-cm"),
                ("B", "override"),
                ("S_A", "from-secret"),
                ("S_PASSWORD", "hunter2"),
                ("C", "from-cm-hunter2"),
            ])
        );
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let map = |n: &str| (n == "X").then(|| "1".to_string());
        assert_eq!(expand("$(X)", map), "1");
        assert_eq!(expand("a$(X)b$(X)", map), "a1b1");
        assert_eq!(expand("$$(X)", map), "$(X)");
        assert_eq!(expand("$$$(X)", map), "$1");
        assert_eq!(expand("$(Y)", map), "$(Y)");
        assert_eq!(expand("$(X", map), "$(X");
        assert_eq!(expand("$X $", map), "$X $");
        assert_eq!(expand("", map), "");
    }

    #[test]
    fn expansion_sees_only_earlier_variables() {
        let objects = Objects::new();
        let got = env_of(
            json!({"name": "c", "env": [
                {"name": "FIRST", "value": "$(SECOND)"},
                {"name": "SECOND", "value": "2"},
                {"name": "THIRD", "value": "$(SECOND)$(FIRST)"},
            ]}),
            &objects,
        )
        .unwrap();
        assert_eq!(
            got,
            pairs(&[
                ("FIRST", "$(SECOND)"),
                ("SECOND", "2"),
                ("THIRD", "2$(SECOND)")
            ])
        );
    }

    #[test]
    fn field_refs() {
        let objects = Objects::new();
        let field = |path: &str| {
            json!({"name": path.replace(['.', '[', ']', '\''], "_"),
                "valueFrom": {"fieldRef": {"fieldPath": path}}})
        };
        let paths = [
            "metadata.name",
            "metadata.namespace",
            "metadata.uid",
            "metadata.labels['app']",
            "metadata.labels['missing']",
            "metadata.annotations['note']",
            "metadata.labels",
            "spec.nodeName",
            "spec.serviceAccountName",
            "status.podIP",
            "status.podIPs",
            "status.hostIP",
            "status.hostIPs",
        ];
        let got = env_of(
            json!({"name": "c", "env": paths.iter().map(|p| field(p)).collect::<Vec<_>>()}),
            &objects,
        )
        .unwrap();
        let values: Vec<&str> = got.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            values,
            [
                "web-1",
                "shop",
                "u-1",
                "web",
                "",
                "hi",
                "app=\"web\"\ntier=\"front\"",
                "n1",
                "sa",
                "10.1.0.5",
                "10.1.0.5",
                "192.168.0.2",
                "192.168.0.2"
            ]
        );
        let err = env_of(json!({"name": "c", "env": [field("spec.bogus")]}), &objects).unwrap_err();
        assert_eq!(err.to_string(), "unsupported fieldPath: spec.bogus");
    }

    #[test]
    fn pod_ips_fall_back_to_the_pods_status() {
        let objects = Objects::new();
        let mut ctx = objects.ctx();
        ctx.pod_ip = None;
        let mut p = pod(json!({"name": "c"}));
        p["status"] =
            json!({"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]});
        assert_eq!(field_ref(&p, "status.podIP", &ctx).unwrap(), "10.0.0.1");
        assert_eq!(
            field_ref(&p, "status.podIPs", &ctx).unwrap(),
            "10.0.0.1,fd00::1"
        );
    }

    #[test]
    fn resource_field_refs_divide_and_round_up() {
        let c = json!({"name": "c", "resources": {
            "limits": {"cpu": "1500m", "memory": "1Gi"},
            "requests": {"cpu": "250m", "memory": "100M"}}});
        let none = BTreeMap::new();
        let r = |res: &str, div: Option<&str>| resource_field_ref(&c, res, div, &none);
        assert_eq!(r("limits.cpu", None).unwrap(), "2");
        assert_eq!(r("limits.cpu", Some("1m")).unwrap(), "1500");
        assert_eq!(r("requests.cpu", Some("1m")).unwrap(), "250");
        assert_eq!(r("requests.cpu", None).unwrap(), "1");
        assert_eq!(r("limits.memory", None).unwrap(), "1073741824");
        assert_eq!(r("limits.memory", Some("1Mi")).unwrap(), "1024");
        assert_eq!(r("requests.memory", Some("1Mi")).unwrap(), "96");
        assert_eq!(r("requests.ephemeral-storage", None).unwrap(), "0");
        assert_eq!(
            r("limits.ephemeral-storage", None).unwrap_err(),
            EnvError::NoLimit {
                container: "c".into(),
                resource: "ephemeral-storage".into()
            }
        );
        assert!(matches!(
            r("limits.gpu", None),
            Err(EnvError::UnsupportedResource { .. })
        ));
        let mut alloc = BTreeMap::new();
        alloc.insert("ephemeral-storage".to_string(), "10Gi".to_string());
        assert_eq!(
            resource_field_ref(&c, "limits.ephemeral-storage", Some("1Gi"), &alloc).unwrap(),
            "10"
        );
    }

    #[test]
    fn resource_field_ref_to_another_container() {
        let objects = Objects::new();
        let mut p = pod(
            json!({"name": "c", "env": [{"name": "SIDE_MEM", "valueFrom":
            {"resourceFieldRef": {"containerName": "side", "resource": "limits.memory", "divisor": "1Mi"}}}]}),
        );
        p["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "side", "resources": {"limits": {"memory": "64Mi"}}}));
        let c = p["spec"]["containers"][0].clone();
        let env = container_env(&p, &c, &objects.ctx()).unwrap();
        assert_eq!(env[0].value, "64");
    }

    #[test]
    fn key_refs_and_their_errors() {
        let objects = Objects::new();
        let key_ref = |kind: &str, name: &str, key: &str, optional: bool| json!({"name": "V", "valueFrom": {kind: {"name": name, "key": key, "optional": optional}}});
        let one = |var: Value| env_of(json!({"name": "c", "env": [var]}), &objects);
        assert_eq!(
            one(key_ref("configMapKeyRef", "cfg", "A", false)).unwrap(),
            pairs(&[("V", "from-cm")])
        );
        assert_eq!(
            one(key_ref("secretKeyRef", "sec", "PASSWORD", false)).unwrap(),
            pairs(&[("V", "hunter2")])
        );
        for (kind, name, key) in [
            ("configMapKeyRef", "nope", "A"),
            ("configMapKeyRef", "cfg", "nope"),
            ("secretKeyRef", "nope", "A"),
            ("secretKeyRef", "sec", "nope"),
        ] {
            assert_eq!(one(key_ref(kind, name, key, true)).unwrap(), vec![]);
        }
        let message = |kind, name, key| {
            one(key_ref(kind, name, key, false))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            message("configMapKeyRef", "nope", "A"),
            "configmap \"nope\" not found"
        );
        assert_eq!(
            message("configMapKeyRef", "cfg", "nope"),
            "couldn't find key nope in ConfigMap shop/cfg"
        );
        assert_eq!(
            message("secretKeyRef", "nope", "A"),
            "secret \"nope\" not found"
        );
        assert_eq!(
            message("secretKeyRef", "sec", "nope"),
            "couldn't find key nope in Secret shop/sec"
        );
    }

    #[test]
    fn env_from_missing_objects() {
        let objects = Objects::new();
        let from = |source: Value| env_of(json!({"name": "c", "envFrom": [source]}), &objects);
        assert_eq!(
            from(json!({"configMapRef": {"name": "nope", "optional": true}})).unwrap(),
            vec![]
        );
        assert_eq!(
            from(json!({"secretRef": {"name": "nope", "optional": true}})).unwrap(),
            vec![]
        );
        assert_eq!(
            from(json!({"configMapRef": {"name": "nope"}}))
                .unwrap_err()
                .to_string(),
            "configmap \"nope\" not found"
        );
        assert_eq!(
            from(json!({"secretRef": {"name": "nope"}})).unwrap_err(),
            EnvError::SecretNotFound {
                name: "nope".into()
            }
        );
    }

    #[test]
    fn command_and_args_are_expanded_against_the_env() {
        let env = vec![
            EnvVar {
                name: "PORT".into(),
                value: "8080".into(),
            },
            EnvVar {
                name: "MODE".into(),
                value: "fast".into(),
            },
        ];
        let c = json!({"command": ["serve", "--port=$(PORT)"], "args": ["$(MODE)", "$$(MODE)", "$(NOPE)"]});
        let (command, args) = expand_command_args(&c, &env);
        assert_eq!(command, ["serve", "--port=8080"]);
        assert_eq!(args, ["fast", "$(MODE)", "$(NOPE)"]);
        assert_eq!(expand_command_args(&json!({}), &env), (vec![], vec![]));
    }

    #[test]
    fn env_var_names() {
        for ok in ["A", "_a", "a.b-c", "-x", "A1"] {
            assert!(is_env_var_name(ok), "{ok}");
        }
        for bad in ["", "1A", "a b", "a=b", "é"] {
            assert!(!is_env_var_name(bad), "{bad}");
        }
    }

    #[test]
    fn referenced_objects_cover_env_envfrom_and_volumes() {
        let p = json!({"spec": {
        "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s-init"}}]}],
        "containers": [{"name": "c",
            "envFrom": [{"configMapRef": {"name": "cm-from"}}],
            "env": [
                {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-key", "key": "k"}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s-key", "key": "k"}}},
                {"name": "C", "value": "plain"},
            ]}],
        "volumes": [
            {"name": "v1", "configMap": {"name": "cm-vol"}},
            {"name": "v2", "secret": {"secretName": "s-vol"}},
            {"name": "v3", "projected": {"sources": [{"configMap": {"name": "cm-proj"}},
                {"secret": {"name": "s-proj"}}]}},
            {"name": "v4", "emptyDir": {}},
        ]}});
        let (cms, secrets) = referenced_objects(&p);
        assert_eq!(
            cms.into_iter().collect::<Vec<_>>(),
            ["cm-from", "cm-key", "cm-proj", "cm-vol"]
        );
        assert_eq!(
            secrets.into_iter().collect::<Vec<_>>(),
            ["s-init", "s-key", "s-proj", "s-vol"]
        );
    }

    #[test]
    fn service_links_follow_enable_service_links_and_the_master_service_is_always_there() {
        let master = json!({"metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}});
        let web = json!({"metadata": {"name": "web-api", "namespace": "shop"},
            "spec": {"clusterIP": "10.43.0.20", "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}});
        let headless = json!({"metadata": {"name": "db", "namespace": "shop"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}});
        let elsewhere = json!({"metadata": {"name": "other", "namespace": "ops"}, "spec": {"clusterIP": "10.43.0.30", "ports": [{"port": 1}]}});
        let all = [&master, &web, &headless, &elsewhere];
        let get =
            |env: &[EnvVar], n: &str| env.iter().find(|e| e.name == n).map(|e| e.value.clone());
        let env = service_env(&all, "shop", true);
        assert_eq!(
            get(&env, "KUBERNETES_SERVICE_HOST").as_deref(),
            Some("10.43.0.1")
        );
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT").as_deref(), Some("443"));
        assert_eq!(
            get(&env, "KUBERNETES_SERVICE_PORT_HTTPS").as_deref(),
            Some("443")
        );
        assert_eq!(
            get(&env, "KUBERNETES_PORT").as_deref(),
            Some("tcp://10.43.0.1:443")
        );
        assert_eq!(
            get(&env, "KUBERNETES_PORT_443_TCP_ADDR").as_deref(),
            Some("10.43.0.1")
        );
        assert_eq!(
            get(&env, "WEB_API_SERVICE_HOST").as_deref(),
            Some("10.43.0.20")
        );
        assert_eq!(
            get(&env, "WEB_API_PORT_53_UDP").as_deref(),
            Some("udp://10.43.0.20:53")
        );
        assert_eq!(get(&env, "WEB_API_SERVICE_PORT_DNS").as_deref(), Some("53"));
        assert!(get(&env, "DB_SERVICE_HOST").is_none());
        assert!(get(&env, "OTHER_SERVICE_HOST").is_none());
        let off = service_env(&all, "shop", false);
        assert!(get(&off, "WEB_API_SERVICE_HOST").is_none());
        assert_eq!(
            get(&off, "KUBERNETES_SERVICE_HOST").as_deref(),
            Some("10.43.0.1")
        );

        // The container's own variables win, and may refer to service ones.
        let mut o = Objects::new();
        o.services = service_env(&all, "shop", true);
        let c = json!({"name": "app", "env": [
            {"name": "WEB_API_SERVICE_HOST", "value": "mine"},
            {"name": "URL", "value": "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"}]});
        let env = container_env(&pod(c.clone()), &c, &o.ctx()).unwrap();
        assert_eq!(get(&env, "WEB_API_SERVICE_HOST").as_deref(), Some("mine"));
        assert_eq!(get(&env, "URL").as_deref(), Some("https://10.43.0.1:443"));
        assert_eq!(
            env.iter()
                .filter(|e| e.name == "WEB_API_SERVICE_HOST")
                .count(),
            1
        );
        assert_eq!(env[0].name, "WEB_API_SERVICE_HOST");
    }
}
