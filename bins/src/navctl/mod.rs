//! `navctl get | apply -f | delete | describe`: a small kubectl for navarch's kinds over the
//! Kubernetes API, with the same kubeconfig (kubectl stays the first-class client; this is a
//! convenience that needs nothing installed).
//!
//! - [`resource`] resolves `deploy`, `deployments.apps`, `deploy/web` to a served kind;
//! - [`output`] prints server-side Tables as aligned columns;
//! - [`manifest`] reads YAML/JSON manifests (several documents, `List`s, directories);
//! - [`describe`] renders one object and its events as text;
//! - [`plan`] shows where a Deployment's pods would go, changing nothing.
//!
//! Errors read like kubectl's: `error: ...` for local problems, `Error from server (Reason):
//! message` for the API's Status; [`report`] formats them and the binary exits with 1.

pub mod describe;
pub mod exec;
pub mod inspect;
pub mod manifest;
pub mod output;
pub mod plan;
pub mod resource;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use navarch_client::kubeconfig::Kubeconfig;
use navarch_client::{Client, ClientError, HttpsClient};
use navarch_model::kinds::Kind;
use navarch_model::options::{
    DeleteOptions, GetOptions, ListOptions, Patch, Propagation, WriteOptions,
};
use navarch_model::patch::PatchType;
use navarch_model::selector::{FieldSelector, LabelSelector};
use navarch_model::validate::FieldValidation;
use serde_json::{json, Value};

use output::TextTable;
use resource::display;

/// Where the API server is and which namespace to use.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// The kubeconfig to use [default: $KUBECONFIG, else navarch-data/admin.kubeconfig].
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace [default: the kubeconfig context's namespace, else `default`].
    /// Cluster-scoped kinds (nodes, namespaces) ignore it.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

/// An API client and the namespace requests default to.
#[derive(Debug)]
pub struct Session {
    pub api: HttpsClient,
    pub namespace: String,
}

/// An API error as kubectl prints it: `Error from server (Reason): message`.
pub fn server_error(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Api(e) => anyhow::anyhow!("Error from server ({}): {}", e.reason, e.message),
        other => anyhow::anyhow!("error: {other}"),
    }
}

/// A list's options with a label selector from `-l`.
fn list_options(selector: Option<&str>) -> Result<ListOptions> {
    let mut o = ListOptions::default();
    if let Some(l) = selector {
        o.label_selector = LabelSelector::parse(l).map_err(|e| anyhow::anyhow!("error: {e}"))?;
    }
    Ok(o)
}

fn ns_of<'a>(kind: &Kind, ns: &'a str) -> Option<&'a str> {
    (kind.namespaced && !ns.is_empty()).then_some(ns)
}

impl Conn {
    /// The kubeconfig path: `--kubeconfig`, else the first entry of `$KUBECONFIG`, else
    /// `navarch-data/admin.kubeconfig`.
    pub fn kubeconfig_path(&self) -> PathBuf {
        if let Some(p) = &self.kubeconfig {
            return p.clone();
        }
        std::env::var_os("KUBECONFIG")
            .filter(|v| !v.is_empty())
            .and_then(|v| std::env::split_paths(&v).next())
            .unwrap_or_else(|| PathBuf::from("navarch-data/admin.kubeconfig"))
    }

    pub fn open(&self) -> Result<Session> {
        let path = self.kubeconfig_path();
        let cfg = Kubeconfig::load(&path)
            .with_context(|| format!("error: kubeconfig {}", path.display()))?;
        Ok(Session {
            api: HttpsClient::from_kubeconfig(&cfg).context("error: an HTTPS client")?,
            namespace: self
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or(cfg.namespace),
        })
    }
}

/// `-o` formats of `get`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// All columns of the table, including the priority-1 ones.
    Wide,
    Json,
    Yaml,
    /// `<resource>.<group>/<name>` per object.
    Name,
}

/// `navctl get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// TYPE [NAME...], TYPE1,TYPE2, or TYPE/NAME...; TYPE is a plural, singular, short name
    /// or kind (case-insensitive), e.g. `deploy`, `pods`, `Service`, `deployments.apps`.
    #[arg(required = true, value_name = "RESOURCE")]
    pub args: Vec<String>,
    /// List across all namespaces (adds a NAMESPACE column).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// A label selector, e.g. `app=web,tier!=db`.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Output format (default: the server's table, priority-0 columns).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Format>,
}

/// The long help of `navctl apply`.
pub const APPLY_HELP: &str = "Create or update objects from manifests: a file, a directory (its \
.yaml, .yml and .json files) or - for stdin, holding YAML (several documents separated by ---), \
JSON, or a `kind: List`.

Each object is read; a missing one is created (POST), an existing one is patched with the \
manifest as a JSON merge patch (application/merge-patch+json), both with fieldValidation=Strict. \
A merge patch sets every field the manifest has but does NOT prune: fields removed from the \
manifest since the last apply stay on the server (set them to null in the manifest, or use \
kubectl apply). Objects are applied in file order; the first error stops with a failure.";

/// `navctl apply` (see [`APPLY_HELP`]).
#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// A manifest file, a directory of them, or - for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub filename: String,
}

/// `--cascade` of `delete`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cascade {
    Background,
    Foreground,
    Orphan,
}

impl Cascade {
    fn policy(self) -> &'static str {
        match self {
            Cascade::Background => "Background",
            Cascade::Foreground => "Foreground",
            Cascade::Orphan => "Orphan",
        }
    }
}

/// `navctl delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// TYPE NAME..., or TYPE/NAME...
    #[arg(value_name = "RESOURCE")]
    pub args: Vec<String>,
    /// Delete the objects of a manifest file, directory or - (stdin) instead.
    #[arg(short = 'f', long = "filename", conflicts_with = "args")]
    pub filename: Option<String>,
    /// How dependents are deleted (DeleteOptions.propagationPolicy).
    #[arg(long, value_enum, default_value = "background")]
    pub cascade: Cascade,
    /// Seconds the object gets to terminate gracefully (0: immediately).
    #[arg(long)]
    pub grace_period: Option<i64>,
    /// Treat objects that do not exist as deleted (no error).
    #[arg(long)]
    pub ignore_not_found: bool,
}

/// `navctl describe`.
#[derive(Args, Debug)]
pub struct DescribeArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// TYPE [NAME...] or TYPE/NAME; without names, every object of the type in the namespace.
    #[arg(required = true, value_name = "RESOURCE")]
    pub args: Vec<String>,
}

/// An error as navctl prints it: the server's `Error from server (...)` as is, anything
/// else prefixed with `error: `.
pub fn report(e: &anyhow::Error) -> String {
    let msg = format!("{e:#}");
    if msg.starts_with("Error from server") {
        msg
    } else {
        format!("error: {msg}")
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Runs the requests, printing each error but the last to stderr; returns the last.
fn finish(mut errors: Vec<anyhow::Error>) -> Result<()> {
    let last = errors.pop();
    for e in &errors {
        eprintln!("{}", report(e));
    }
    match last {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

fn print_structured(v: &Value, format: Format) -> Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(v)?),
        _ => print!("{}", serde_yaml::to_string(v)?),
    }
    Ok(())
}

/// `navctl get`.
pub async fn get(a: &GetArgs) -> Result<()> {
    let groups = resource::parse_args(&a.args)?;
    let s = a.conn.open()?;
    if a.selector.is_some() && groups.iter().any(|(_, n)| !n.is_empty()) {
        bail!("name cannot be provided when a selector is specified");
    }
    let list_ns = (!a.all_namespaces).then_some(s.namespace.as_str());
    let mut errors = Vec::new();
    match a.output {
        None | Some(Format::Wide) => {
            let wide = a.output == Some(Format::Wide);
            let mut printed = false;
            for (kind, names) in &groups {
                let with_ns = a.all_namespaces && kind.namespaced && names.is_empty();
                let mut table: Option<TextTable> = None;
                let mut add = |t: &Value| match &mut table {
                    None => table = Some(TextTable::from_table(t, wide, with_ns)),
                    Some(x) => x.push_rows(t, wide, with_ns),
                };
                if names.is_empty() {
                    let opts = list_options(a.selector.as_deref())?;
                    let ns = list_ns.and_then(|n| ns_of(kind, n));
                    add(&s
                        .api
                        .get_table(kind, ns, None, &opts)
                        .await
                        .map_err(server_error)?);
                } else {
                    for n in names {
                        let ns = ns_of(kind, &s.namespace);
                        match s
                            .api
                            .get_table(kind, ns, Some(n), &ListOptions::default())
                            .await
                        {
                            Ok(t) => add(&t),
                            Err(e) => errors.push(server_error(e)),
                        }
                    }
                }
                if let Some(t) = table.filter(|t| !t.rows.is_empty()) {
                    if printed {
                        println!();
                    }
                    print!("{}", t.render());
                    printed = true;
                }
            }
            if !printed && errors.is_empty() {
                if groups.iter().any(|(k, _)| k.namespaced) && !a.all_namespaces {
                    eprintln!("No resources found in {} namespace.", s.namespace);
                } else {
                    eprintln!("No resources found");
                }
            }
        }
        Some(format) => {
            let mut found: Vec<(&Kind, Value)> = Vec::new();
            let mut whole_list: Option<Value> = None;
            for (kind, names) in &groups {
                if names.is_empty() {
                    let opts = list_options(a.selector.as_deref())?;
                    let ns = list_ns.and_then(|n| ns_of(kind, n));
                    let list = s.api.list(kind, ns, &opts).await.map_err(server_error)?;
                    if groups.len() == 1 {
                        whole_list = Some(json!({
                            "kind": format!("{}List", kind.kind),
                            "apiVersion": kind.api_version(),
                            "metadata": {"resourceVersion": list.resource_version},
                            "items": list.items,
                        }));
                    }
                    found.extend(list.items.into_iter().map(|i| (*kind, i)));
                } else {
                    for n in names {
                        let ns = ns_of(kind, &s.namespace);
                        match s.api.get(kind, ns, n, &GetOptions::default()).await {
                            Ok(o) => found.push((*kind, o)),
                            Err(e) => errors.push(server_error(e)),
                        }
                    }
                }
            }
            if format == Format::Name {
                for (kind, o) in &found {
                    println!("{}/{}", display(kind), name_of(o));
                }
            } else if let Some(list) = whole_list {
                print_structured(&list, format)?;
            } else if found.len() == 1 && errors.is_empty() && groups[0].1.len() == 1 {
                print_structured(&found[0].1, format)?;
            } else if !found.is_empty() {
                let items: Vec<Value> = found
                    .into_iter()
                    .map(|(kind, mut o)| {
                        // Items of a List carry their kind and apiVersion.
                        o["kind"] = json!(kind.kind);
                        o["apiVersion"] = json!(kind.api_version());
                        o
                    })
                    .collect();
                let list = json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "metadata": {"resourceVersion": ""},
                    "items": items,
                });
                print_structured(&list, format)?;
            }
        }
    }
    finish(errors)
}

/// What `apply` did to one object.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Applied {
    Created,
    Configured,
    Unchanged,
}

impl Applied {
    pub fn word(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

/// An object without what changes by itself (resourceVersion, managedFields, status): two
/// equal views mean a patch changed nothing even if a controller wrote in between.
fn desired_view(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    v
}

/// The kind, namespace and name of a manifest object; fills in `metadata.namespace` of
/// namespaced objects from `default_ns` when it is missing.
fn locate(obj: &mut Value, default_ns: &str) -> Result<(&'static Kind, String, String)> {
    let kind = resource::for_manifest(
        obj["apiVersion"].as_str().unwrap_or(""),
        obj["kind"].as_str().unwrap_or(""),
    )?;
    let name = obj["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .with_context(|| format!("a {} in the manifest has no metadata.name", kind.kind))?
        .to_string();
    let ns = if kind.namespaced {
        match obj["metadata"]["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
        {
            Some(ns) => ns.to_string(),
            None => {
                obj["metadata"]["namespace"] = json!(default_ns);
                default_ns.to_string()
            }
        }
    } else {
        String::new()
    };
    Ok((kind, ns, name))
}

/// Creates or merge-patches one object (see [`ApplyArgs`]).
pub async fn apply_one(api: &dyn Client, obj: &Value, default_ns: &str) -> Result<String> {
    let mut obj = obj.clone();
    let (kind, ns, name) = locate(&mut obj, default_ns)?;
    let ns = ns_of(kind, &ns);
    let strict = WriteOptions {
        field_validation: FieldValidation::Strict,
        ..WriteOptions::default()
    };
    let result = match api.get(kind, ns, &name, &GetOptions::default()).await {
        Err(e) if e.is_not_found() => {
            api.create(kind, ns, obj, &strict)
                .await
                .map_err(server_error)?;
            Applied::Created
        }
        Ok(before) => {
            let patch = Patch {
                ty: PatchType::Merge,
                body: obj,
            };
            let after = api
                .patch(kind, ns, &name, None, patch, &strict)
                .await
                .map_err(server_error)?
                .object;
            let rv = |v: &Value| v["metadata"]["resourceVersion"].clone();
            if rv(&before) == rv(&after) || desired_view(&before) == desired_view(&after) {
                Applied::Unchanged
            } else {
                Applied::Configured
            }
        }
        Err(e) => return Err(server_error(e)),
    };
    Ok(format!("{}/{name} {}", display(kind), result.word()))
}

/// `navctl apply -f`.
pub async fn apply(a: &ApplyArgs) -> Result<()> {
    let objects = manifest::read(&a.filename)?;
    if objects.is_empty() {
        bail!("no objects passed to apply");
    }
    let s = a.conn.open()?;
    for obj in &objects {
        println!("{}", apply_one(&s.api, obj, &s.namespace).await?);
    }
    Ok(())
}

/// `navctl delete`.
pub async fn delete(a: &DeleteArgs) -> Result<()> {
    let s = a.conn.open()?;
    let mut targets: Vec<(&'static Kind, String, String)> = Vec::new();
    if let Some(f) = &a.filename {
        for mut obj in manifest::read(f)? {
            targets.push(locate(&mut obj, &s.namespace)?);
        }
    } else {
        if a.args.is_empty() {
            bail!("you must provide one or more resources by argument or filename (-f)");
        }
        for (kind, names) in resource::parse_args(&a.args)? {
            if names.is_empty() {
                bail!("resource(s) were provided, but no name was specified");
            }
            for n in names {
                targets.push((kind, s.namespace.clone(), n));
            }
        }
    }
    let opts = DeleteOptions {
        propagation_policy: Some(
            Propagation::parse(a.cascade.policy())
                .map_err(|e| anyhow::anyhow!("error: {}", e.message))?,
        ),
        grace_period_seconds: a.grace_period,
        ..DeleteOptions::default()
    };
    let mut errors = Vec::new();
    for (kind, ns, name) in targets {
        match s.api.delete(kind, ns_of(kind, &ns), &name, &opts).await {
            Ok(_) => println!("{} \"{name}\" deleted", display(kind)),
            Err(e) if e.is_not_found() && a.ignore_not_found => {}
            Err(e) => errors.push(server_error(e)),
        }
    }
    finish(errors)
}

/// `navctl describe`.
pub async fn describe(a: &DescribeArgs) -> Result<()> {
    let s = a.conn.open()?;
    let mut objects: Vec<(&Kind, Value)> = Vec::new();
    let mut errors = Vec::new();
    for (kind, names) in resource::parse_args(&a.args)? {
        if names.is_empty() {
            let items = s
                .api
                .list(kind, ns_of(kind, &s.namespace), &ListOptions::default())
                .await
                .map_err(server_error)?
                .items;
            if items.is_empty() && kind.namespaced {
                eprintln!("No resources found in {} namespace.", s.namespace);
            }
            objects.extend(items.into_iter().map(|i| (kind, i)));
            continue;
        }
        for n in names {
            match s
                .api
                .get(kind, ns_of(kind, &s.namespace), &n, &GetOptions::default())
                .await
            {
                Ok(o) => objects.push((kind, o)),
                Err(e) => errors.push(server_error(e)),
            }
        }
    }
    for (i, (kind, obj)) in objects.iter().enumerate() {
        let name = name_of(obj);
        let selector = format!(
            "involvedObject.name={name},involvedObject.kind={}",
            kind.kind
        );
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .filter(|_| kind.namespaced);
        let events_kind = navarch_client::kind("", "v1", "events");
        // Events are best effort: a describe without them is still useful.
        let events = match FieldSelector::parse("Event", &selector) {
            Ok(field_selector) => {
                let opts = ListOptions {
                    field_selector,
                    ..ListOptions::default()
                };
                match s.api.list(events_kind, ns, &opts).await {
                    Ok(l) => l.items,
                    Err(_) => Vec::new(),
                }
            }
            Err(_) => Vec::new(),
        };
        if i > 0 {
            println!("\n");
        }
        print!("{}", describe::describe(kind, obj, &events, now()));
    }
    finish(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_like_kubectl() {
        assert_eq!(
            report(&anyhow::anyhow!(
                "Error from server (NotFound): pods \"x\" not found"
            )),
            "Error from server (NotFound): pods \"x\" not found"
        );
        assert_eq!(
            report(&resource::resolve("foos").unwrap_err()),
            "error: the server doesn't have a resource type \"foos\""
        );
    }

    #[test]
    fn locates_manifest_objects() {
        let mut d =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        let (k, ns, name) = locate(&mut d, "demo").unwrap();
        assert_eq!(
            (k.kind, ns.as_str(), name.as_str()),
            ("Deployment", "demo", "web")
        );
        assert_eq!(d["metadata"]["namespace"], "demo");
        let mut n = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}});
        assert_eq!(locate(&mut n, "other").unwrap().1, "");
        assert!(n["metadata"].get("namespace").is_none());
        let mut s = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "x"}});
        assert_eq!(locate(&mut s, "demo").unwrap().1, "x");
        let mut bad = json!({"apiVersion": "v1", "kind": "Foo", "metadata": {"name": "a"}});
        assert!(locate(&mut bad, "demo").is_err());
        let mut unnamed = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}});
        assert!(locate(&mut unnamed, "demo").is_err());
    }

    #[test]
    fn status_and_versions_do_not_count_as_changes() {
        let a = json!({"metadata": {"name": "w", "resourceVersion": "1"}, "spec": {"replicas": 2}, "status": {"replicas": 0}});
        let b = json!({"metadata": {"name": "w", "resourceVersion": "5"}, "spec": {"replicas": 2}, "status": {"replicas": 2}});
        let c = json!({"metadata": {"name": "w", "resourceVersion": "6"}, "spec": {"replicas": 3}});
        assert_eq!(desired_view(&a), desired_view(&b));
        assert_ne!(desired_view(&a), desired_view(&c));
    }
}

/// `navctl controlplane`.
#[derive(Args, Debug)]
pub struct ControlPlaneArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// A master's API URL to ask (repeat for each master) [default: the kubeconfig's server].
    #[arg(long = "api")]
    pub servers: Vec<String>,
}

/// `navctl controlplane`: asks each master whether its control plane runs (its
/// `/debug/controlplane`), one line per master.
pub async fn control_plane(a: &ControlPlaneArgs) -> Result<()> {
    let path = a.conn.kubeconfig_path();
    let cfg =
        Kubeconfig::load(&path).with_context(|| format!("error: kubeconfig {}", path.display()))?;
    let servers = if a.servers.is_empty() {
        vec![cfg.server.to_string()]
    } else {
        a.servers.clone()
    };
    let mut table = TextTable {
        headers: ["SERVER", "MASTER", "CONTROL PLANE", "TERM", "ACTIVATIONS"]
            .map(String::from)
            .to_vec(),
        rows: Vec::new(),
    };
    for server in servers {
        let mut https = navarch_client::HttpsConfig::from_kubeconfig(&cfg);
        https.servers = vec![server
            .parse()
            .map_err(|e| anyhow::anyhow!("error: --api {server:?}: {e}"))?];
        let client = HttpsClient::new(https).context("error: an HTTPS client")?;
        let row = match client
            .raw(
                navarch_client::https::Method::GET,
                "/debug/controlplane",
                None,
            )
            .await
            .and_then(|r| r.json())
        {
            Ok(v) => vec![
                server.clone(),
                v["master"].as_str().unwrap_or("?").to_string(),
                if v["active"] == json!(true) {
                    "active"
                } else {
                    "standby"
                }
                .to_string(),
                v["term"]
                    .as_u64()
                    .map_or("-".to_string(), |t| t.to_string()),
                v["activations"].as_u64().unwrap_or(0).to_string(),
            ],
            Err(e) => vec![
                server.clone(),
                "?".into(),
                format!("unreachable: {e}"),
                "-".into(),
                "-".into(),
            ],
        };
        table.rows.push(row);
    }
    print!("{}", table.render());
    Ok(())
}
