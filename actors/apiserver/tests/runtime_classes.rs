//! RuntimeClasses in the API server, without a control plane: the bootstrap creates `process`
//! and `oci` (and re-creates a deleted one, never touching one a user changed); a pod naming
//! a RuntimeClass that does not exist is refused at create with Kubernetes' 403 and is not
//! stored, one naming `oci` is admitted; a handler is immutable; nodes read RuntimeClasses
//! and write none.
//!
//! The server is in this process: a single-member store in a temporary dir and the API
//! server, called through in-process clients.

mod support;

use navarch_client::{Client, ClientError};
use navarch_model::authz::User;
use navarch_model::kinds::Kind;
use navarch_model::options::{DeleteOptions, GetOptions, ListOptions, WriteOptions};
use navarch_model::ApiError;
use serde_json::{json, Value};

use support::start;

fn runtime_classes() -> &'static Kind {
    navarch_client::kind("node.k8s.io", "v1", "runtimeclasses")
}

fn pods() -> &'static Kind {
    navarch_client::kind("", "v1", "pods")
}

fn admin() -> User {
    User::new("test-admin", vec!["system:masters".into()])
}

fn pod(name: &str, class: Option<&str>) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    if let Some(c) = class {
        p["spec"]["runtimeClassName"] = json!(c);
    }
    p
}

fn api_error(r: Result<impl std::fmt::Debug, ClientError>) -> ApiError {
    match r {
        Err(ClientError::Api(e)) => e,
        other => panic!("expected a Status, got {other:?}"),
    }
}

/// `(name, handler)` of every RuntimeClass, sorted by name.
async fn handlers(c: &dyn Client) -> Vec<(String, String)> {
    let list = c
        .list(runtime_classes(), None, &ListOptions::default())
        .await
        .unwrap();
    let mut out: Vec<(String, String)> = list
        .items
        .iter()
        .map(|rc| {
            (
                rc["metadata"]["name"].as_str().unwrap().to_string(),
                rc["handler"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_keeps_process_and_oci() {
    let dir = tempfile::tempdir().unwrap();
    let api = start(dir.path()).await;
    let admin = api.client(admin());
    let w = WriteOptions::default();
    let builtin = vec![
        ("oci".to_string(), "oci".to_string()),
        ("process".to_string(), "process".to_string()),
    ];
    assert_eq!(handlers(&admin).await, builtin);

    // A user's change to one stays through the next bootstrap; a deleted one comes back.
    let mut oci = admin
        .get(runtime_classes(), None, "oci", &GetOptions::default())
        .await
        .unwrap();
    oci["metadata"]["labels"] = json!({"tier": "sandbox"});
    admin
        .update(runtime_classes(), None, "oci", None, oci, &w)
        .await
        .unwrap();
    admin
        .delete(
            runtime_classes(),
            None,
            "process",
            &DeleteOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(handlers(&admin).await, builtin[..1].to_vec());
    api.ensure_bootstrap().await.unwrap();
    assert_eq!(handlers(&admin).await, builtin);
    let oci = admin
        .get(runtime_classes(), None, "oci", &GetOptions::default())
        .await
        .unwrap();
    assert_eq!(oci["metadata"]["labels"], json!({"tier": "sandbox"}));

    // The handler is immutable; overhead and scheduling are not implemented.
    let mut changed = oci.clone();
    changed["handler"] = json!("runc");
    let e = api_error(
        admin
            .update(runtime_classes(), None, "oci", None, changed, &w)
            .await,
    );
    assert_eq!((e.code, e.reason), (422, "Invalid"));
    assert_eq!(e.details.causes[0].field, "handler");
    assert_eq!(
        e.details.causes[0].message,
        "Invalid value: \"runc\": field is immutable"
    );
    let overhead = json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
        "metadata": {"name": "kata"}, "handler": "kata", "overhead": {"podFixed": {"cpu": "250m"}}});
    let e = api_error(admin.create(runtime_classes(), None, overhead, &w).await);
    assert_eq!(e.code, 422);
    assert_eq!(e.details.causes[0].reason, "FieldValueNotSupported");
    assert!(e.details.causes[0].field.starts_with("overhead"));
    let e = api_error(
        admin
            .create(
                runtime_classes(),
                None,
                json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                       "metadata": {"name": "bad"}, "handler": "Bad_Handler"}),
                &w,
            )
            .await,
    );
    assert_eq!(
        (e.code, e.details.causes[0].field.as_str()),
        (422, "handler")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_needs_its_runtime_class_to_exist() {
    let dir = tempfile::tempdir().unwrap();
    let api = start(dir.path()).await;
    let admin = api.client(admin());
    let w = WriteOptions::default();

    let e = api_error(
        admin
            .create(pods(), Some("default"), pod("web", Some("gvisor")), &w)
            .await,
    );
    assert_eq!((e.code, e.reason), (403, "Forbidden"));
    assert_eq!(
        e.message,
        r#"pods "web" is forbidden: pod rejected: RuntimeClass "gvisor" not found"#
    );
    assert_eq!(e.details.kind.as_deref(), Some("pods"));
    assert_eq!(e.details.name.as_deref(), Some("web"));
    let gone = admin
        .get(pods(), Some("default"), "web", &GetOptions::default())
        .await;
    assert!(matches!(&gone, Err(e) if e.code() == Some(404)), "{gone:?}");
    // A dry run is refused alike.
    let dry = WriteOptions {
        dry_run: true,
        ..Default::default()
    };
    let e = api_error(
        admin
            .create(pods(), Some("default"), pod("web", Some("gvisor")), &dry)
            .await,
    );
    assert_eq!(e.code, 403);

    // A built-in class, or none, is admitted; so is one created a moment ago.
    let web = admin
        .create(pods(), Some("default"), pod("web", Some("oci")), &w)
        .await
        .unwrap()
        .object;
    assert_eq!(web["spec"]["runtimeClassName"], "oci");
    admin
        .create(pods(), Some("default"), pod("plain", None), &w)
        .await
        .unwrap();
    admin
        .create(
            runtime_classes(),
            None,
            json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                   "metadata": {"name": "gvisor"}, "handler": "runsc"}),
            &w,
        )
        .await
        .unwrap();
    admin
        .create(
            pods(),
            Some("default"),
            pod("sandboxed", Some("gvisor")),
            &w,
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_read_runtime_classes_and_write_none() {
    let dir = tempfile::tempdir().unwrap();
    let api = start(dir.path()).await;
    let node = api.client(User::new("system:node:n1", vec!["system:nodes".into()]));
    assert_eq!(handlers(&node).await.len(), 2);
    node.get(runtime_classes(), None, "process", &GetOptions::default())
        .await
        .unwrap();
    let e = api_error(
        node.create(
            runtime_classes(),
            None,
            json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                   "metadata": {"name": "mine"}, "handler": "mine"}),
            &WriteOptions::default(),
        )
        .await,
    );
    assert_eq!(e.code, 403);
    let e = api_error(
        node.delete(runtime_classes(), None, "oci", &DeleteOptions::default())
            .await,
    );
    assert_eq!(e.code, 403);
}
