//! The generator of `src/protobuf/generated.rs`, run as a test: it proves the committed file
//! is what the generator makes today, and rewrites it when asked.
//!
//! ```text
//! # check (every `cargo test -p navarch-model` does this)
//! cargo test -p navarch-model --test protobuf_codegen
//! # rewrite generated.rs after a k8s-pb or k8s-openapi upgrade
//! NAVARCH_REGENERATE=1 cargo test -p navarch-model --test protobuf_codegen
//! # also refresh go_fields.txt from Kubernetes' Go sources of the k8s-pb release
//! # (the k8s.io/api and k8s.io/apimachinery modules at the same tag, e.g. v0.35.0)
//! NAVARCH_REGENERATE=1 NAVARCH_K8S_API_SRC=<k8s.io/api dir> \
//!   NAVARCH_K8S_APIMACHINERY_SRC=<k8s.io/apimachinery dir> NAVARCH_K8S_GO_TAG=v0.35.0 \
//!   cargo test -p navarch-model --test protobuf_codegen
//! ```
//!
//! The generator runs inside the crate's test build, so the crate must compile first: if a
//! change to `protobuf/bounds.rs` or `convert.rs` breaks the old `generated.rs`, replace it
//! with the three lines `use super::KindCodec; pub(super) static KINDS: &[KindCodec] = &[];`
//! (after a `//!` line) and regenerate.
//!
//! Inputs, all read from their own definitions, none restated by hand:
//! - **k8s-pb's sources** (`src/**/mod.rs`, found through `cargo metadata`): every message,
//!   its fields, their prost kind (`string, optional`, `message, repeated`, `btree_map`...)
//!   and the message types they point to. The messages reachable from [`ROOTS`] are the
//!   ones converted.
//! - **k8s-openapi's schemas** (through schemars): the JSON name of every field. Field names
//!   are matched to k8s-pb's Rust names ignoring case and underscores (`hostIP` is
//!   `host_ip`, `podCIDRs` is `pod_cid_rs`); the match must be unique.
//! - **Kubernetes' Go structs** (`src/protobuf/go_fields.txt`, extracted from the Go sources
//!   by this program): which fields are pointers, which have `omitempty`, which embed
//!   another struct inline, which kinds embed `TypeMeta`, which messages wrap a Go slice
//!   (`ExtraValue`). Protobuf alone cannot tell `replicas: 0` (a `*int32`, always kept) from
//!   `nodePort: 0` (an `int32` with `omitempty`, omitted), nor see that `Volume`'s
//!   `volumeSource` is inlined in JSON. The JSON names found there must agree with
//!   k8s-openapi's, which is checked.
//!
//! The output destructures every k8s-pb struct without `..` and builds every one with a full
//! struct literal, so a k8s-pb upgrade that adds a field fails to compile until this is run.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::JsonSchema;
use serde_json::Value;

/// The messages converted, with everything they reach: `(k8s-pb module, message,
/// apiVersion)`; the kind is the message name. `*` as apiVersion: any served group version
/// (DeleteOptions is registered in every one).
const ROOTS: &[(&str, &str, &str)] = &[
    ("api::core::v1", "Namespace", "v1"),
    ("api::core::v1", "NamespaceList", "v1"),
    ("api::core::v1", "Node", "v1"),
    ("api::core::v1", "NodeList", "v1"),
    ("api::core::v1", "Pod", "v1"),
    ("api::core::v1", "PodList", "v1"),
    ("api::core::v1", "Service", "v1"),
    ("api::core::v1", "ServiceList", "v1"),
    ("api::core::v1", "Endpoints", "v1"),
    ("api::core::v1", "EndpointsList", "v1"),
    ("api::core::v1", "Event", "v1"),
    ("api::core::v1", "EventList", "v1"),
    ("api::core::v1", "ConfigMap", "v1"),
    ("api::core::v1", "ConfigMapList", "v1"),
    ("api::core::v1", "Secret", "v1"),
    ("api::core::v1", "SecretList", "v1"),
    ("api::core::v1", "ServiceAccount", "v1"),
    ("api::core::v1", "ServiceAccountList", "v1"),
    ("api::core::v1", "Binding", "v1"),
    ("api::apps::v1", "Deployment", "apps/v1"),
    ("api::apps::v1", "DeploymentList", "apps/v1"),
    ("api::apps::v1", "ReplicaSet", "apps/v1"),
    ("api::apps::v1", "ReplicaSetList", "apps/v1"),
    ("api::autoscaling::v1", "Scale", "autoscaling/v1"),
    ("api::coordination::v1", "Lease", "coordination.k8s.io/v1"),
    (
        "api::coordination::v1",
        "LeaseList",
        "coordination.k8s.io/v1",
    ),
    ("api::rbac::v1", "Role", "rbac.authorization.k8s.io/v1"),
    ("api::rbac::v1", "RoleList", "rbac.authorization.k8s.io/v1"),
    (
        "api::rbac::v1",
        "ClusterRole",
        "rbac.authorization.k8s.io/v1",
    ),
    (
        "api::rbac::v1",
        "ClusterRoleList",
        "rbac.authorization.k8s.io/v1",
    ),
    (
        "api::rbac::v1",
        "RoleBinding",
        "rbac.authorization.k8s.io/v1",
    ),
    (
        "api::rbac::v1",
        "RoleBindingList",
        "rbac.authorization.k8s.io/v1",
    ),
    (
        "api::rbac::v1",
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io/v1",
    ),
    (
        "api::rbac::v1",
        "ClusterRoleBindingList",
        "rbac.authorization.k8s.io/v1",
    ),
    (
        "api::authorization::v1",
        "SelfSubjectAccessReview",
        "authorization.k8s.io/v1",
    ),
    (
        "api::authorization::v1",
        "SelfSubjectRulesReview",
        "authorization.k8s.io/v1",
    ),
    (
        "api::authorization::v1",
        "SubjectAccessReview",
        "authorization.k8s.io/v1",
    ),
    (
        "api::authentication::v1",
        "SelfSubjectReview",
        "authentication.k8s.io/v1",
    ),
    (
        "api::authentication::v1",
        "TokenReview",
        "authentication.k8s.io/v1",
    ),
    (
        "api::authentication::v1",
        "TokenRequest",
        "authentication.k8s.io/v1",
    ),
    ("api::discovery::v1", "EndpointSlice", "discovery.k8s.io/v1"),
    (
        "api::discovery::v1",
        "EndpointSliceList",
        "discovery.k8s.io/v1",
    ),
    ("api::policy::v1", "Eviction", "policy/v1"),
    ("api::policy::v1", "PodDisruptionBudget", "policy/v1"),
    ("api::policy::v1", "PodDisruptionBudgetList", "policy/v1"),
    ("api::node::v1", "RuntimeClass", "node.k8s.io/v1"),
    ("api::node::v1", "RuntimeClassList", "node.k8s.io/v1"),
    ("apimachinery::pkg::apis::meta::v1", "Status", "v1"),
    ("apimachinery::pkg::apis::meta::v1", "DeleteOptions", "*"),
];

/// Messages whose JSON is not an object of their fields: converted by hand in
/// `src/protobuf/convert.rs` (the function names there are `<stem>_to_json` and
/// `<stem>_from_json`). `WatchEvent` is never reached: the watch frame is built by hand.
const SPECIAL: &[(&str, &str, &str)] = &[
    ("apimachinery::pkg::apis::meta::v1", "Time", "time"),
    (
        "apimachinery::pkg::apis::meta::v1",
        "MicroTime",
        "micro_time",
    ),
    ("apimachinery::pkg::apis::meta::v1", "Duration", "duration"),
    ("apimachinery::pkg::apis::meta::v1", "FieldsV1", "fields_v1"),
    (
        "apimachinery::pkg::runtime",
        "RawExtension",
        "raw_extension",
    ),
    (
        "apimachinery::pkg::util::intstr",
        "IntOrString",
        "int_or_string",
    ),
    ("apimachinery::pkg::api::resource", "Quantity", "quantity"),
];

/// The k8s-openapi type of every root that has one (lists have none: `List<T>` has no
/// schema; their fields, `metadata` and `items`, are named from the Go structs). Their
/// schemas, with everything they reference, name the JSON fields.
fn openapi_definitions() -> BTreeMap<String, Value> {
    use k8s_openapi::api::rbac::v1 as rbac;
    use k8s_openapi::api::{apps::v1 as apps, authentication::v1 as authn};
    use k8s_openapi::api::{authorization::v1 as authz, autoscaling::v1 as autoscaling};
    use k8s_openapi::api::{coordination::v1 as coordination, core::v1 as core};
    use k8s_openapi::api::{discovery::v1 as discovery, node::v1 as node, policy::v1 as policy};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

    let mut gen = SchemaSettings::openapi3().into_generator();
    fn add<T: JsonSchema>(gen: &mut k8s_openapi::schemars::SchemaGenerator) {
        gen.subschema_for::<T>();
    }
    add::<core::Namespace>(&mut gen);
    add::<core::Node>(&mut gen);
    add::<core::Pod>(&mut gen);
    add::<core::Service>(&mut gen);
    add::<core::Endpoints>(&mut gen);
    add::<core::Event>(&mut gen);
    add::<core::ConfigMap>(&mut gen);
    add::<core::Secret>(&mut gen);
    add::<core::ServiceAccount>(&mut gen);
    add::<core::Binding>(&mut gen);
    add::<apps::Deployment>(&mut gen);
    add::<apps::ReplicaSet>(&mut gen);
    add::<autoscaling::Scale>(&mut gen);
    add::<coordination::Lease>(&mut gen);
    add::<rbac::Role>(&mut gen);
    add::<rbac::ClusterRole>(&mut gen);
    add::<rbac::RoleBinding>(&mut gen);
    add::<rbac::ClusterRoleBinding>(&mut gen);
    add::<authz::SelfSubjectAccessReview>(&mut gen);
    add::<authz::SelfSubjectRulesReview>(&mut gen);
    add::<authz::SubjectAccessReview>(&mut gen);
    add::<authn::SelfSubjectReview>(&mut gen);
    add::<authn::TokenReview>(&mut gen);
    add::<authn::TokenRequest>(&mut gen);
    add::<discovery::EndpointSlice>(&mut gen);
    add::<policy::Eviction>(&mut gen);
    add::<policy::PodDisruptionBudget>(&mut gen);
    add::<node::RuntimeClass>(&mut gen);
    add::<meta::Status>(&mut gen);
    add::<meta::DeleteOptions>(&mut gen);
    add::<meta::ListMeta>(&mut gen);
    gen.take_definitions(true).into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// k8s-pb's sources

#[derive(Clone, Debug, PartialEq)]
enum Scalar {
    String,
    Int32,
    Int64,
    Bool,
    Double,
    Bytes,
}

#[derive(Clone, Debug)]
enum FieldType {
    Scalar(Scalar),
    /// The absolute k8s-pb path of the message, `api::core::v1::PodSpec`.
    Message(String),
    /// `btree_map = "string, <value>"`.
    MapScalar(Scalar),
    MapMessage(String),
}

#[derive(Clone, Debug)]
struct PbField {
    rust: String,
    tag: u32,
    repeated: bool,
    /// `Option<Box<T>>` (recursive messages); none is reachable from the roots.
    boxed: bool,
    ty: FieldType,
}

#[derive(Clone, Debug)]
struct PbMessage {
    module: String,
    name: String,
    fields: Vec<PbField>,
}

impl PbMessage {
    fn path(&self) -> String {
        format!("{}::{}", self.module, self.name)
    }
}

/// k8s-pb's `src` directory and version, from `cargo metadata`.
fn k8s_pb_package() -> (PathBuf, String) {
    // `--filter-platform`: offline metadata otherwise wants every platform's crates.
    let rustc = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let metadata = |offline: bool| {
        let mut cmd = std::process::Command::new(&cargo);
        cmd.args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            &host,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        if offline {
            cmd.arg("--offline");
        }
        cmd.output().expect("run cargo metadata")
    };
    // Offline first (the build has everything); online if the local index lacks something.
    let mut out = metadata(true);
    if !out.status.success() {
        out = metadata(false);
    }
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata json");
    let pkg = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "k8s-pb")
        .expect("k8s-pb in cargo metadata");
    let manifest = PathBuf::from(pkg["manifest_path"].as_str().unwrap());
    (
        manifest.parent().unwrap().join("src"),
        pkg["version"].as_str().unwrap().to_string(),
    )
}

fn read_k8s_pb() -> BTreeMap<String, PbMessage> {
    let (root, _) = k8s_pb_package();
    let mut files = Vec::new();
    collect_mod_rs(&root, &mut files);
    let mut out = BTreeMap::new();
    for file in files {
        let rel = file.parent().unwrap().strip_prefix(&root).unwrap();
        let module: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if module.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for m in parse_mod_rs(&module.join("::"), &text) {
            out.insert(m.path(), m);
        }
    }
    out
}

fn collect_mod_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_mod_rs(&p, out);
        } else if p.file_name().is_some_and(|n| n == "mod.rs") {
            out.push(p);
        }
    }
}

/// Reads prost-build's output: `pub struct X {`, `#[prost(...)]`, `pub field: Type,`, `}`.
fn parse_mod_rs(module: &str, text: &str) -> Vec<PbMessage> {
    let mut out = Vec::new();
    let mut current: Option<PbMessage> = None;
    let mut attr: Option<String> = None;
    let mut pending = String::new(); // an attribute or a field spanning lines
    let mut in_attr = false;
    let mut in_field = false;
    for line in text.lines() {
        let t = line.trim();
        if current.is_none() {
            if let Some(rest) = t.strip_prefix("pub struct ") {
                let empty = rest.ends_with("{}");
                let name = rest.trim_end_matches("{}").trim_end_matches('{').trim();
                let m = PbMessage {
                    module: module.to_string(),
                    name: name.to_string(),
                    fields: Vec::new(),
                };
                if empty {
                    out.push(m);
                } else {
                    current = Some(m);
                }
            } else {
                assert!(
                    !(t.starts_with("pub enum")
                        || (t.starts_with("pub mod") && line.starts_with(' '))),
                    "{module}: unexpected item (oneof or enum): {t}"
                );
            }
            continue;
        }
        if in_attr || t.starts_with("#[prost(") {
            pending.push_str(t);
            in_attr = !t.ends_with(")]");
            if !in_attr {
                attr = Some(std::mem::take(&mut pending));
            }
            continue;
        }
        if t.starts_with("///") || t.starts_with("//") || t.is_empty() {
            continue;
        }
        if t == "}" && !in_field {
            out.push(current.take().unwrap());
            continue;
        }
        if in_field || t.starts_with("pub ") {
            pending.push_str(t);
            let balanced = pending.matches('<').count() == pending.matches('>').count();
            in_field = !(t.ends_with(',') && balanced);
            if !in_field {
                let decl = std::mem::take(&mut pending);
                let a = attr
                    .take()
                    .unwrap_or_else(|| panic!("{module}: field without #[prost]: {decl}"));
                let m = current.as_mut().unwrap();
                m.fields.push(parse_field(module, &m.name, &a, &decl));
            }
            continue;
        }
        panic!("{module}: unexpected line in a struct: {t}");
    }
    out
}

fn parse_field(module: &str, msg: &str, attr: &str, decl: &str) -> PbField {
    let decl = decl.strip_prefix("pub ").unwrap().trim_end_matches(',');
    let (name, ty) = decl.split_once(':').unwrap();
    let rust = name.trim().to_string();
    let ty: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
    let inner = attr
        .strip_prefix("#[prost(")
        .and_then(|a| a.strip_suffix(")]"))
        .unwrap();
    let tag = inner
        .split("tag = \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{module}::{msg}.{rust}: no tag in {attr}"));
    let scalar = |s: &str| match s {
        "string" => Some(Scalar::String),
        "int32" => Some(Scalar::Int32),
        "int64" => Some(Scalar::Int64),
        "bool" => Some(Scalar::Bool),
        "double" => Some(Scalar::Double),
        "bytes" | "bytes = \"vec\"" => Some(Scalar::Bytes),
        _ => None,
    };
    let parts: Vec<&str> = inner.split(", ").collect();
    let what = |msg_ty: &str| resolve(module, msg_ty);
    if let Some(map) = inner.strip_prefix("btree_map = \"string, ") {
        let value = map.split('"').next().unwrap();
        let ty = if value == "message" {
            // ::prost::alloc::collections::BTreeMap<::prost::alloc::string::String,X>
            let args = generic_args(&ty);
            FieldType::MapMessage(what(args.rsplit_once(',').unwrap().1))
        } else {
            FieldType::MapScalar(scalar(value).unwrap_or_else(|| panic!("map value {value}")))
        };
        return PbField {
            rust,
            tag,
            repeated: false,
            boxed: false,
            ty,
        };
    }
    let repeated = match parts.get(1) {
        Some(&"optional") => false,
        Some(&"repeated") => true,
        other => panic!("{module}::{msg}.{rust}: cardinality {other:?} in {attr}"),
    };
    let boxed = parts.contains(&"boxed");
    let ty = if parts[0] == "message" {
        let inner = generic_args(&ty);
        let inner = if boxed { generic_args(inner) } else { inner };
        FieldType::Message(what(inner))
    } else {
        FieldType::Scalar(
            scalar(parts[0]).unwrap_or_else(|| panic!("{module}::{msg}.{rust}: kind {}", parts[0])),
        )
    };
    PbField {
        rust,
        tag,
        repeated,
        boxed,
        ty,
    }
}

/// `::core::option::Option<X>` → `X` (one level).
fn generic_args(ty: &str) -> &str {
    let open = ty
        .find('<')
        .unwrap_or_else(|| panic!("no generics in {ty}"));
    ty[open + 1..ty.len() - 1].trim_end_matches(',')
}

/// Resolves a Rust type path written in `module` to an absolute k8s-pb path.
fn resolve(module: &str, ty: &str) -> String {
    let mut base: Vec<&str> = module.split("::").collect();
    let mut segs: Vec<&str> = ty.split("::").collect();
    if segs[0] == "crate" {
        base.clear();
        segs.remove(0);
    }
    while segs[0] == "super" {
        base.pop();
        segs.remove(0);
    }
    base.extend(segs);
    base.join("::")
}

// ---------------------------------------------------------------------------------------------
// Go facts: go_fields.txt

#[derive(Clone, Debug, Default)]
struct GoStruct {
    /// Embeds `TypeMeta` inline (apiVersion and kind in JSON, not in protobuf).
    type_meta: bool,
    /// A named slice (`type ExtraValue []string`): JSON is the bare array.
    slice: bool,
    fields: Vec<GoField>,
}

#[derive(Clone, Debug)]
struct GoField {
    tag: u32,
    proto: String,
    /// `None`: embedded inline.
    json: Option<String>,
    pointer: bool,
    omitempty: bool,
}

const GO_FIELDS: &str = "src/protobuf/go_fields.txt";

fn go_package(module: &str) -> String {
    format!("k8s.io/{}", module.replace("::", "/"))
}

fn parse_go_fields(text: &str) -> BTreeMap<(String, String), GoStruct> {
    let mut out: BTreeMap<(String, String), GoStruct> = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let key = (cols[1].to_string(), cols[2].to_string());
        let s = out.entry(key).or_default();
        match cols[0] {
            "typemeta" => s.type_meta = true,
            "slice" => s.slice = true,
            "struct" => {}
            "field" => s.fields.push(GoField {
                tag: cols[3].parse().expect("go_fields.txt: tag number"),
                proto: cols[4].to_string(),
                json: (cols[5] != ",inline").then(|| cols[5].to_string()),
                pointer: cols[6].starts_with('*'),
                omitempty: cols[7]
                    .split(',')
                    .any(|f| f == "omitempty" || f == "omitzero"),
            }),
            other => panic!("go_fields.txt: unknown line kind {other}"),
        }
    }
    out
}

/// Extracts the facts of the reachable structs from Kubernetes' Go sources.
fn extract_go_fields(
    api: &Path,
    apimachinery: &Path,
    wanted: &BTreeSet<(String, String)>,
) -> String {
    let mut lines = BTreeSet::new();
    let packages: BTreeSet<&String> = wanted.iter().map(|(p, _)| p).collect();
    for pkg in packages {
        let dir = if let Some(rest) = pkg.strip_prefix("k8s.io/api/") {
            api.join(rest)
        } else if let Some(rest) = pkg.strip_prefix("k8s.io/apimachinery/") {
            apimachinery.join(rest)
        } else {
            panic!("no Go source root for {pkg}")
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.ends_with(".go")
                    && !n.ends_with("_test.go")
                    && !n.starts_with("zz_generated")
                    && !n.starts_with("generated.")
            })
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            go_structs(pkg, &text, wanted, &mut lines);
        }
    }
    let mut out = String::from(
        "# Facts about Kubernetes' Go structs that protobuf does not carry, for the structs\n\
         # generated.rs converts. Made by actors/model/tests/protobuf_codegen.rs from the Go\n\
         # sources of k8s.io/api and k8s.io/apimachinery at the tag k8s-pb was built from.\n\
         # Do not edit. Columns (tab-separated):\n\
         #   field <package> <struct> <tag> <protobuf name> <json name or ,inline> <Go type> <json flags or ->\n\
         #   typemeta|slice <package> <struct>\n",
    );
    let (_, version) = k8s_pb_package();
    let tag = std::env::var("NAVARCH_K8S_GO_TAG").unwrap_or_else(|_| "(not recorded)".into());
    writeln!(out, "# For k8s-pb {version}; Go sources at {tag}.").unwrap();
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

fn go_structs(
    pkg: &str,
    text: &str,
    wanted: &BTreeSet<(String, String)>,
    out: &mut BTreeSet<String>,
) {
    let wanted_name = |name: &str| {
        wanted
            .iter()
            .find(|(p, s)| p == pkg && s.eq_ignore_ascii_case(name))
            .map(|(_, s)| s.clone())
    };
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if current.is_none() {
            if let Some(rest) = line.strip_prefix("type ") {
                let mut words = rest.split_whitespace();
                let name = words.next().unwrap_or("");
                let def = words.next().unwrap_or("");
                if let Some(s) = wanted_name(name) {
                    if def == "struct" {
                        out.insert(format!("struct\t{pkg}\t{s}"));
                        current = Some(s);
                    } else if def.starts_with("[]") {
                        out.insert(format!("slice\t{pkg}\t{s}"));
                    }
                }
            }
            continue;
        }
        if line.starts_with('}') {
            current = None;
            continue;
        }
        if t.starts_with("//") || t.is_empty() {
            continue;
        }
        let Some((decl, tag)) = t.split_once('`') else {
            continue;
        };
        let tag = tag.split('`').next().unwrap();
        let words: Vec<&str> = decl.split_whitespace().collect();
        let go_type = *words.last().unwrap();
        let json = tag_value(tag, "json");
        let proto = tag_value(tag, "protobuf");
        let s = current.as_ref().unwrap();
        match proto {
            None => {
                if words.len() == 1
                    && go_type.ends_with("TypeMeta")
                    && json.as_deref() == Some(",inline")
                {
                    out.insert(format!("typemeta\t{pkg}\t{s}"));
                }
            }
            Some(p) => {
                let tag_no: u32 = p
                    .split(',')
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{pkg}.{s}: protobuf tag without number: {p}"));
                // go-to-protobuf names an unnamed field after the Go field (or embedded type).
                let go_name = words[0].trim_start_matches('*');
                let go_name = go_name.rsplit('.').next().unwrap();
                let derived = format!("{}{}", go_name[..1].to_ascii_lowercase(), &go_name[1..]);
                let pname = p
                    .split(',')
                    .find_map(|x| x.strip_prefix("name="))
                    .unwrap_or(&derived);
                let json = json.unwrap_or_else(|| panic!("{pkg}.{s}.{pname}: no json tag"));
                let (jname, flags) = match json.split_once(',') {
                    Some(("", "inline")) => (",inline".to_string(), "-".to_string()),
                    Some((n, f)) => (n.to_string(), f.to_string()),
                    None => (json.clone(), "-".to_string()),
                };
                out.insert(format!(
                    "field\t{pkg}\t{s}\t{tag_no}\t{pname}\t{jname}\t{go_type}\t{flags}"
                ));
            }
        }
    }
}

fn tag_value(tag: &str, key: &str) -> Option<String> {
    let start = tag.find(&format!("{key}:\""))? + key.len() + 2;
    let rest = &tag[start..];
    Some(rest[..rest.find('"')?].to_string())
}

// ---------------------------------------------------------------------------------------------
// The model the code is generated from

fn norm(s: &str) -> String {
    s.trim_start_matches("r#")
        .replace('_', "")
        .to_ascii_lowercase()
}

/// How one k8s-pb field appears in JSON.
#[derive(Debug)]
struct Field {
    pb: PbField,
    /// `None`: an inline embedded struct; its fields appear in the parent object.
    json: Option<String>,
    /// A zero scalar, an empty list or map is still written (a Go pointer, or no
    /// `omitempty`).
    keep_zero: bool,
}

#[derive(Debug)]
struct Message {
    pb: PbMessage,
    fields: Vec<Field>,
    type_meta: bool,
    slice: bool,
}

struct Model {
    messages: BTreeMap<String, Message>,
    order: Vec<String>,
    /// JSON fields of k8s-openapi's (newer) Kubernetes that k8s-pb's protobuf lacks.
    missing: Vec<String>,
    /// k8s-pb fields k8s-openapi no longer has (named from Go).
    removed: Vec<String>,
}

fn special_stem(path: &str) -> Option<&'static str> {
    SPECIAL
        .iter()
        .find(|(m, n, _)| format!("{m}::{n}") == path)
        .map(|(_, _, s)| *s)
}

fn reachable(pb: &BTreeMap<String, PbMessage>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    let mut queue: VecDeque<String> = ROOTS.iter().map(|(m, n, _)| format!("{m}::{n}")).collect();
    while let Some(path) = queue.pop_front() {
        if special_stem(&path).is_some() || !seen.insert(path.clone()) {
            continue;
        }
        let m = pb
            .get(&path)
            .unwrap_or_else(|| panic!("k8s-pb has no message {path}"));
        for f in &m.fields {
            assert!(
                !f.boxed,
                "{path}.{}: boxed fields are not supported",
                f.rust
            );
            match &f.ty {
                FieldType::Message(t) | FieldType::MapMessage(t) => queue.push_back(t.clone()),
                _ => {}
            }
        }
        order.push(path);
    }
    order.sort();
    order
}

fn build_model(go: &BTreeMap<(String, String), GoStruct>) -> Model {
    let pb = read_k8s_pb();
    let order = reachable(&pb);
    let defs = openapi_definitions();
    let mut messages = BTreeMap::new();
    let mut removed = Vec::new();
    let mut schemas: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in &order {
        let m = pb[path].clone();
        let pkg = go_package(&m.module);
        let gs = go
            .get(&(pkg.clone(), m.name.clone()))
            .or_else(|| {
                go.iter()
                    .find(|((p, s), _)| *p == pkg && s.eq_ignore_ascii_case(&m.name))
                    .map(|(_, g)| g)
            })
            .unwrap_or_else(|| {
                panic!(
                    "go_fields.txt has no struct {pkg}.{}; regenerate it",
                    m.name
                )
            });
        let schema_name = format!("io.k8s.{}.{}", m.module.replace("::", "."), m.name);
        let schema = defs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&schema_name))
            .map(|(_, v)| v);
        let is_root = ROOTS
            .iter()
            .any(|(md, n, _)| *md == m.module && *n == m.name);
        assert!(
            schema.is_some() || !is_root || m.name.ends_with("List"),
            "root {path} has no k8s-openapi schema: add its type to openapi_definitions"
        );
        let props: Vec<String> = schema
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let mut fields = Vec::new();
        for f in m.fields.iter().filter(|_| !gs.slice) {
            let gf = gs
                .fields
                .iter()
                .find(|g| g.tag == f.tag)
                .unwrap_or_else(|| {
                    panic!("{path}.{}: not in go_fields.txt; regenerate it", f.rust)
                });
            assert_eq!(
                norm(&gf.proto),
                norm(&f.rust),
                "{path}: Go and k8s-pb disagree on field {}",
                f.tag
            );
            let json = match &gf.json {
                None => None,
                Some(go_name) => {
                    let found: Vec<&String> =
                        props.iter().filter(|p| norm(p) == norm(&f.rust)).collect();
                    match (schema.is_some(), found.as_slice()) {
                        (true, [one]) => {
                            assert_eq!(
                                *one, go_name,
                                "{path}.{}: k8s-openapi and Go disagree on the JSON name",
                                f.rust
                            );
                            Some((*one).clone())
                        }
                        (true, []) => {
                            // A field k8s-openapi's Kubernetes version no longer has: Go's name.
                            removed.push(format!("{}.{go_name}", m.name));
                            Some(go_name.clone())
                        }
                        (true, many) => panic!("{path}.{}: ambiguous JSON names {many:?}", f.rust),
                        (false, _) => Some(go_name.clone()),
                    }
                }
            };
            let collection =
                f.repeated || matches!(f.ty, FieldType::MapScalar(_) | FieldType::MapMessage(_));
            let keep_zero = if collection {
                !gf.omitempty
            } else {
                gf.pointer || !gf.omitempty
            };
            fields.push(Field {
                pb: f.clone(),
                json,
                keep_zero,
            });
        }
        if gs.slice {
            assert!(
                m.fields.len() == 1 && m.fields[0].rust == "items" && m.fields[0].repeated,
                "{path}: a Go slice type must be a message with one repeated `items`"
            );
            fields.push(Field {
                pb: m.fields[0].clone(),
                json: Some("items".into()),
                keep_zero: true,
            });
        }
        if schema.is_some() {
            schemas.insert(path.clone(), props.clone());
        }
        messages.insert(
            path.clone(),
            Message {
                pb: m,
                fields,
                type_meta: gs.type_meta,
                slice: gs.slice,
            },
        );
    }
    let mut model = Model {
        messages,
        order,
        missing: Vec::new(),
        removed,
    };
    for (path, props) in schemas {
        let mut ks = Vec::new();
        keys(&model, &path, &mut ks);
        let name = &model.messages[&path].pb.name;
        for p in props {
            if !ks.contains(&p) && p != "apiVersion" && p != "kind" {
                model.missing.push(format!("{name}.{p}"));
            }
        }
    }
    model
}

// ---------------------------------------------------------------------------------------------
// Code generation

fn stem(path: &str) -> String {
    let (module, name) = path.rsplit_once("::").unwrap();
    let module = module
        .trim_start_matches("apimachinery::pkg::apis::")
        .trim_start_matches("apimachinery::pkg::")
        .trim_start_matches("api::");
    format!("{}_{}", module.replace("::", "_"), snake(name))
}

fn snake(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn ty(path: &str) -> String {
    format!("pb::{path}")
}

fn conv(path: &str, dir: &str) -> String {
    match special_stem(path) {
        Some(s) => format!("{s}_{dir}"),
        None => format!("{}_{dir}", stem(path)),
    }
}

/// The JSON keys an object of this message may hold: its own, and those of inline structs.
fn keys(model: &Model, path: &str, out: &mut Vec<String>) {
    let m = &model.messages[path];
    for f in &m.fields {
        match (&f.json, &f.pb.ty) {
            (Some(j), _) => out.push(j.clone()),
            (None, FieldType::Message(t)) => keys(model, t, out),
            (None, other) => panic!("{path}.{}: inline field of type {other:?}", f.pb.rust),
        }
    }
}

fn scalar_name(s: &Scalar) -> &'static str {
    match s {
        Scalar::String => "string",
        Scalar::Int32 => "i32",
        Scalar::Int64 => "i64",
        Scalar::Bool => "bool",
        Scalar::Double => "f64",
        Scalar::Bytes => "bytes",
    }
}

fn generate(model: &Model) -> String {
    let mut s = String::new();
    let (_, version) = k8s_pb_package();
    writeln!(
        s,
        "//! Generated by `actors/model/tests/protobuf_codegen.rs` from k8s-pb {version}, k8s-openapi's\n\
         //! schemas and `go_fields.txt`: the conversions between k8s-pb's messages and Kubernetes'\n\
         //! JSON for every message reachable from the roots. Do not edit; regenerate with\n\
         //! `NAVARCH_REGENERATE=1 cargo test -p navarch-model --test protobuf_codegen`.\n"
    )
    .unwrap();
    s.push_str("// Fields of k8s-openapi's Kubernetes that this k8s-pb's protobuf has no place for\n// (encoding an object that sets one fails, naming it):\n");
    for m in &model.missing {
        writeln!(s, "//   {m}").unwrap();
    }
    if model.missing.is_empty() {
        s.push_str("//   (none)\n");
    }
    s.push_str("// Fields k8s-openapi no longer has, named from the Go structs:\n");
    for m in &model.removed {
        writeln!(s, "//   {m}").unwrap();
    }
    if model.removed.is_empty() {
        s.push_str("//   (none)\n");
    }
    s.push('\n');
    s.push_str("// Unused variables: `p` in messages with no nested field; dead code: the standalone\n// converters of structs only ever inlined in another (`ProbeHandler`).\n#![allow(clippy::all, clippy::pedantic, unused_variables, dead_code)]\n\n");
    s.push_str("use k8s_pb as pb;\nuse serde_json::{Map, Value};\n\n");
    s.push_str("use super::bounds::{Shape, Sub};\nuse super::convert::*;\nuse super::{KindCodec, ProtobufError};\n\n");

    // The kinds table.
    s.push_str("/// Every root kind: its apiVersion (`*`: any), kind, and converters.\n");
    s.push_str("pub(super) static KINDS: &[KindCodec] = &[\n");
    for (module, name, api_version) in ROOTS {
        let path = format!("{module}::{name}");
        writeln!(
            s,
            "    KindCodec {{ api_version: {api_version:?}, kind: {name:?}, shape: &{shape}, decode: |raw| decode_as::<{t}>(raw, {to}), encode: |v| encode_as(v, {from}) }},",
            shape = shape_name(&path),
            t = ty(&path),
            to = conv(&path, "to_json"),
            from = conv(&path, "from_json"),
        )
        .unwrap();
    }
    s.push_str("];\n\n");

    for path in &model.order {
        gen_message(model, path, &mut s);
    }
    s
}

fn shape_name(path: &str) -> String {
    format!("SHAPE_{}", stem(path).to_ascii_uppercase())
}

fn gen_message(model: &Model, path: &str, s: &mut String) {
    let m = &model.messages[path];
    let t = ty(path);
    let st = stem(path);
    let names: Vec<String> = m.fields.iter().map(|f| f.pb.rust.clone()).collect();
    let pattern = format!("{t} {{ {} }}", names.join(", "));

    // Bounds shape.
    writeln!(s, "pub(super) static {}: Shape = Shape {{ name: {:?}, size: std::mem::size_of::<{t}>(), fields: &[", shape_name(path), m.pb.name).unwrap();
    for f in &m.fields {
        let sub = match &f.pb.ty {
            FieldType::Message(p) if special_stem(p).is_none() => {
                format!("Sub::Message(&{})", shape_name(p))
            }
            FieldType::Message(p) => format!("Sub::Special(std::mem::size_of::<{}>())", ty(p)),
            FieldType::MapMessage(p) if special_stem(p).is_none() => {
                format!("Sub::MapOf(&{})", shape_name(p))
            }
            FieldType::MapMessage(p) => {
                format!("Sub::MapOfSpecial(std::mem::size_of::<{}>())", ty(p))
            }
            FieldType::MapScalar(_) => "Sub::MapOfScalar".to_string(),
            FieldType::Scalar(_) => "Sub::Scalar".to_string(),
        };
        write!(
            s,
            "({}, {:?}, {}, {sub}), ",
            f.pb.tag,
            f.json.as_deref().unwrap_or(""),
            f.pb.repeated
        )
        .unwrap();
    }
    s.push_str("] };\n\n");

    if m.slice {
        // A Go named slice: the JSON is the bare array of the one `items` field.
        let FieldType::Scalar(sc) = &m.fields[0].pb.ty else {
            panic!("{path}: slice of messages")
        };
        let sc = scalar_name(sc);
        writeln!(s, "pub(super) fn {st}_to_json(m: &{t}, p: &Pos<'_>) -> Result<Value, ProtobufError> {{\n    let {pattern} = m;\n    Ok(Value::Array(items.iter().map(|x| {sc}_value(x, p)).collect::<Result<_, _>>()?))\n}}\n").unwrap();
        writeln!(s, "pub(super) fn {st}_from_json(v: &Value, p: &Pos<'_>) -> Result<{t}, ProtobufError> {{\n    Ok({t} {{ items: {sc}s_from(v, p)? }})\n}}\n").unwrap();
        return;
    }

    // To JSON.
    writeln!(s, "pub(super) fn {st}_to_json(m: &{t}, p: &Pos<'_>) -> Result<Value, ProtobufError> {{\n    Ok(Value::Object({st}_to_map(m, p)?))\n}}\n").unwrap();
    writeln!(
        s,
        "fn {st}_to_map(m: &{t}, p: &Pos<'_>) -> Result<Map<String, Value>, ProtobufError> {{"
    )
    .unwrap();
    writeln!(s, "    let {pattern} = m;").unwrap();
    s.push_str("    let mut o = Map::new();\n");
    for f in &m.fields {
        let r = &f.pb.rust;
        let keep = f.keep_zero;
        let Some(key) = &f.json else {
            let FieldType::Message(pth) = &f.pb.ty else {
                unreachable!()
            };
            writeln!(
                s,
                "    if let Some(x) = {r} {{ o.extend({}_to_map(x, p)?); }}",
                stem(pth)
            )
            .unwrap();
            continue;
        };
        let line = match (&f.pb.ty, f.pb.repeated) {
            (FieldType::Scalar(sc), false) => {
                let sc = scalar_name(sc);
                let arg = if sc == "string" || sc == "bytes" {
                    format!("{r}.as_deref()")
                } else {
                    format!("*{r}")
                };
                format!("put_{sc}(&mut o, {key:?}, {arg}, {keep});")
            }
            (FieldType::Scalar(sc), true) => format!(
                "put_list(&mut o, p, {key:?}, {r}, {}_value, {keep})?;",
                scalar_name(sc)
            ),
            (FieldType::Message(pth), false) => format!(
                "put_message(&mut o, p, {key:?}, {r}.as_ref(), {})?;",
                conv(pth, "to_json")
            ),
            (FieldType::Message(pth), true) => format!(
                "put_list(&mut o, p, {key:?}, {r}, {}, {keep})?;",
                conv(pth, "to_json")
            ),
            (FieldType::MapScalar(sc), _) => format!(
                "put_map(&mut o, p, {key:?}, {r}, {}_value, {keep})?;",
                scalar_name(sc)
            ),
            (FieldType::MapMessage(pth), _) => format!(
                "put_map(&mut o, p, {key:?}, {r}, {}, {keep})?;",
                conv(pth, "to_json")
            ),
        };
        writeln!(s, "    {line}").unwrap();
    }
    s.push_str("    Ok(o)\n}\n\n");

    // From JSON.
    let mut ks = Vec::new();
    keys(model, path, &mut ks);
    if m.type_meta {
        ks.push("apiVersion".into());
        ks.push("kind".into());
    }
    writeln!(
        s,
        "const {}_KEYS: &[&str] = &{ks:?};\n",
        st.to_ascii_uppercase()
    )
    .unwrap();
    writeln!(
        s,
        "pub(super) fn {st}_from_json(v: &Value, p: &Pos<'_>) -> Result<{t}, ProtobufError> {{"
    )
    .unwrap();
    writeln!(
        s,
        "    let o = object(v, p, {}_KEYS)?;",
        st.to_ascii_uppercase()
    )
    .unwrap();
    if m.type_meta {
        s.push_str("    type_meta_from(o, p)?;\n");
    }
    writeln!(s, "    {st}_from_map(o, p)\n}}\n").unwrap();
    writeln!(
        s,
        "fn {st}_from_map(o: &Map<String, Value>, p: &Pos<'_>) -> Result<{t}, ProtobufError> {{"
    )
    .unwrap();
    writeln!(s, "    Ok({t} {{").unwrap();
    for f in &m.fields {
        let r = &f.pb.rust;
        let Some(key) = &f.json else {
            let FieldType::Message(pth) = &f.pb.ty else {
                unreachable!()
            };
            writeln!(s, "        {r}: Some({}_from_map(o, p)?),", stem(pth)).unwrap();
            continue;
        };
        let expr = match (&f.pb.ty, f.pb.repeated) {
            (FieldType::Scalar(sc), false) => format!("get_{}(o, p, {key:?})?", scalar_name(sc)),
            (FieldType::Scalar(sc), true) => {
                format!("get_list(o, p, {key:?}, {}_from)?", scalar_name(sc))
            }
            (FieldType::Message(pth), false) => {
                format!("get_message(o, p, {key:?}, {})?", conv(pth, "from_json"))
            }
            (FieldType::Message(pth), true) => {
                format!("get_list(o, p, {key:?}, {})?", conv(pth, "from_json"))
            }
            (FieldType::MapScalar(sc), _) => {
                format!("get_map(o, p, {key:?}, {}_from)?", scalar_name(sc))
            }
            (FieldType::MapMessage(pth), _) => {
                format!("get_map(o, p, {key:?}, {})?", conv(pth, "from_json"))
            }
        };
        writeln!(s, "        {r}: {expr},").unwrap();
    }
    s.push_str("    })\n}\n\n");
}

// ---------------------------------------------------------------------------------------------
// The test

#[test]
fn generated_code_is_fresh() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let regenerate = std::env::var_os("NAVARCH_REGENERATE").is_some();
    let go_path = manifest.join(GO_FIELDS);
    let mut go_text = std::fs::read_to_string(&go_path).unwrap_or_default();

    if let (Ok(api), Ok(machinery)) = (
        std::env::var("NAVARCH_K8S_API_SRC"),
        std::env::var("NAVARCH_K8S_APIMACHINERY_SRC"),
    ) {
        // Reachability needs only k8s-pb; the Go facts are then read for those structs.
        let pb = read_k8s_pb();
        let wanted: BTreeSet<(String, String)> = reachable(&pb)
            .iter()
            .map(|p| {
                let m = &pb[p];
                (go_package(&m.module), m.name.clone())
            })
            .collect();
        let fresh = extract_go_fields(Path::new(&api), Path::new(&machinery), &wanted);
        if regenerate {
            std::fs::write(&go_path, &fresh).unwrap();
        } else {
            assert_eq!(
                go_text, fresh,
                "{GO_FIELDS} is stale: rerun with NAVARCH_REGENERATE=1"
            );
        }
        go_text = fresh;
    }

    let go = parse_go_fields(&go_text);
    let model = build_model(&go);
    let code = generate(&model);
    let code = rustfmt(&code);
    let out = manifest.join("src/protobuf/generated.rs");
    let committed = std::fs::read_to_string(&out).unwrap_or_default();
    if regenerate {
        std::fs::write(&out, &code).unwrap();
    } else {
        assert!(
            committed == code,
            "src/protobuf/generated.rs is stale: rerun with NAVARCH_REGENERATE=1 \
             cargo test -p navarch-model --test protobuf_codegen"
        );
    }
}

/// Formats with the toolchain's rustfmt, so the committed file is what `cargo fmt` keeps.
fn rustfmt(code: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("rustfmt")
        .args(["--edition", "2021", "--emit", "stdout"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run rustfmt");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(code.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "rustfmt failed on the generated code");
    String::from_utf8(out.stdout).unwrap()
}
