//! Namespace lifecycle in the API server, as Kubernetes' namespace storage has it, without a
//! control plane: a created namespace is `Active` with the `kubernetes` finalizer; a DELETE
//! marks it `Terminating` and keeps it (creating in it is refused with 403); only the
//! `finalize` subresource changes `spec.finalizers`, and the namespace goes once they and
//! its `metadata.finalizers` are empty. Bad finalize bodies get a `Status` and change
//! nothing; a component without `update` on `namespaces/finalize` is refused.
//!
//! The server is in this process: a single-member store in a temporary dir and the API
//! server, called through in-process clients.

mod support;

use navarch_client::{Client, ClientError, Subresource};
use navarch_model::authz::User;
use navarch_model::identity::{DEPLOYMENT_CONTROLLER, NAMESPACE_CONTROLLER};
use navarch_model::kinds::Kind;
use navarch_model::options::{DeleteOptions, GetOptions, ListOptions, Propagation, WriteOptions};
use navarch_model::ApiError;
use serde_json::{json, Value};

use support::start;

fn namespaces() -> &'static Kind {
    navarch_client::kind("", "v1", "namespaces")
}

fn leases() -> &'static Kind {
    navarch_client::kind("coordination.k8s.io", "v1", "leases")
}

fn pods() -> &'static Kind {
    navarch_client::kind("", "v1", "pods")
}

fn admin() -> User {
    User::new("test-admin", vec!["system:masters".into()])
}

fn namespace(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "spec": spec})
}

fn lease(name: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": name}, "spec": {"holderIdentity": name}})
}

fn api_error(r: Result<impl std::fmt::Debug, ClientError>) -> ApiError {
    match r {
        Err(ClientError::Api(e)) => e,
        other => panic!("expected a Status, got {other:?}"),
    }
}

async fn get(c: &dyn Client, name: &str) -> Result<Value, ClientError> {
    c.get(namespaces(), None, name, &GetOptions::default())
        .await
}

async fn finalize(c: &dyn Client, name: &str, body: Value) -> Result<Value, ClientError> {
    c.update(
        namespaces(),
        None,
        name,
        Some(Subresource::Finalize),
        body,
        &WriteOptions::default(),
    )
    .await
    .map(|w| w.object)
}

fn finalizers(ns: &Value) -> &Value {
    &ns["spec"]["finalizers"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_terminates_until_it_is_finalized() {
    let dir = tempfile::tempdir().unwrap();
    let api = start(dir.path()).await;
    let admin = api.client(admin());
    let controller = api.client(NAMESPACE_CONTROLLER.user_info());
    let w = WriteOptions::default();

    // Created: Active, with the controller's finalizer added to any the user gave; a status
    // in the body is not taken.
    let shop = admin
        .create(namespaces(), None, namespace("shop", json!({})), &w)
        .await
        .unwrap()
        .object;
    assert_eq!(finalizers(&shop), &json!(["kubernetes"]));
    assert_eq!(shop["status"], json!({"phase": "Active"}));
    let mut body = namespace("mine", json!({"finalizers": ["example.com/x"]}));
    body["status"] = json!({"phase": "Terminating"});
    let mine = admin
        .create(namespaces(), None, body, &w)
        .await
        .unwrap()
        .object;
    assert_eq!(finalizers(&mine), &json!(["example.com/x", "kubernetes"]));
    assert_eq!(mine["status"]["phase"], "Active");

    // Content: a Lease, and a pod no node was given.
    admin
        .create(leases(), Some("shop"), lease("l1"), &w)
        .await
        .unwrap();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    admin.create(pods(), Some("shop"), pod, &w).await.unwrap();

    // An update of the namespace itself cannot drop the finalizer.
    let mut edited = shop.clone();
    edited["metadata"]["labels"] = json!({"team": "a"});
    edited["spec"]["finalizers"] = json!([]);
    let edited = admin
        .update(namespaces(), None, "shop", None, edited, &w)
        .await
        .unwrap()
        .object;
    assert_eq!(edited["metadata"]["labels"]["team"], "a");
    assert_eq!(finalizers(&edited), &json!(["kubernetes"]));

    // DELETE marks it Terminating and keeps it, the content too.
    let marked = admin
        .delete(namespaces(), None, "shop", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    assert_eq!(marked["status"]["phase"], "Terminating");
    let got = get(&admin, "shop").await.unwrap();
    assert_eq!(got["status"]["phase"], "Terminating");
    assert_eq!(finalizers(&got), &json!(["kubernetes"]));
    admin
        .get(leases(), Some("shop"), "l1", &GetOptions::default())
        .await
        .unwrap();
    // Deleting it again changes nothing.
    let again = admin
        .delete(namespaces(), None, "shop", &DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        again["metadata"]["resourceVersion"],
        got["metadata"]["resourceVersion"]
    );
    // Nothing new may be created in it.
    let e = api_error(admin.create(leases(), Some("shop"), lease("l2"), &w).await);
    assert_eq!((e.code, e.reason), (403, "Forbidden"), "{e:?}");
    assert_eq!(
        e.message,
        "unable to create new content in namespace shop because it is being terminated"
    );
    // Its status follows its deletion: it cannot be made Active again.
    let mut active = got.clone();
    active["status"]["phase"] = json!("Active");
    let e = api_error(
        admin
            .update(
                namespaces(),
                None,
                "shop",
                Some(Subresource::Status),
                active,
                &w,
            )
            .await,
    );
    assert_eq!(e.code, 422, "{e:?}");

    // Bad finalize bodies: a Status, and nothing changed.
    let rv = got["metadata"]["resourceVersion"].clone();
    let bad: Vec<(&str, Value, u16, &str)> = vec![
        (
            "another kind",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "shop"}}),
            400,
            "BadRequest",
        ),
        (
            "another name",
            namespace("other", json!({"finalizers": []})),
            400,
            "BadRequest",
        ),
        ("not an object", json!("finalize me"), 400, "BadRequest"),
        (
            "a finalizer that is neither standard nor qualified",
            namespace("shop", json!({"finalizers": ["mine"]})),
            422,
            "Invalid",
        ),
        (
            "finalizers that are not a list",
            namespace("shop", json!({"finalizers": "kubernetes"})),
            422,
            "Invalid",
        ),
        (
            "a stale resourceVersion",
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "shop", "resourceVersion": "1"},
                   "spec": {"finalizers": []}}),
            409,
            "Conflict",
        ),
    ];
    for (what, body, code, reason) in bad {
        let e = api_error(finalize(&controller, "shop", body).await);
        assert_eq!((e.code, e.reason), (code, reason), "{what}: {e:?}");
        let now = get(&admin, "shop").await.unwrap();
        assert_eq!(now["metadata"]["resourceVersion"], rv, "{what}");
        assert_eq!(finalizers(&now), &json!(["kubernetes"]), "{what}");
    }
    let e = api_error(finalize(&admin, "nowhere", namespace("nowhere", json!({}))).await);
    assert_eq!(e.code, 404, "{e:?}");
    // A component whose role does not grant namespaces/finalize is refused.
    let deployments = api.client(DEPLOYMENT_CONTROLLER.user_info());
    let e = api_error(
        finalize(
            &deployments,
            "shop",
            namespace("shop", json!({"finalizers": []})),
        )
        .await,
    );
    assert_eq!(e.code, 403, "{e:?}");
    assert_eq!(
        get(&admin, "shop").await.unwrap()["metadata"]["resourceVersion"],
        rv
    );

    // The namespace controller's way out: delete the content, then finalize.
    for kind in [leases(), pods()] {
        let gone = controller
            .delete_collection(
                kind,
                Some("shop"),
                &ListOptions::default(),
                &DeleteOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(gone.items.len(), 1, "{}", kind.plural);
    }
    // An unscheduled pod goes at once (no node to end it).
    let left = admin
        .list(pods(), Some("shop"), &ListOptions::default())
        .await
        .unwrap();
    assert!(left.items.is_empty(), "{:?}", left.items);
    finalize(
        &controller,
        "shop",
        namespace("shop", json!({"finalizers": []})),
    )
    .await
    .unwrap();
    let e = api_error(get(&admin, "shop").await);
    assert_eq!(e.code, 404, "finalized and gone: {e:?}");

    // Another party's finalizer keeps it after the controller's is gone; an absent list
    // empties it.
    admin
        .delete(namespaces(), None, "mine", &DeleteOptions::default())
        .await
        .unwrap();
    let kept = finalize(
        &controller,
        "mine",
        namespace("mine", json!({"finalizers": ["example.com/x"]})),
    )
    .await
    .unwrap();
    assert_eq!(finalizers(&kept), &json!(["example.com/x"]));
    assert_eq!(
        get(&admin, "mine").await.unwrap()["status"]["phase"],
        "Terminating"
    );
    finalize(&admin, "mine", json!({"metadata": {"name": "mine"}}))
        .await
        .unwrap();
    assert_eq!(api_error(get(&admin, "mine").await).code, 404);

    // Deleted orphaning: the garbage collector's finalizer is recorded and honoured once
    // the namespace is finalized.
    admin
        .create(namespaces(), None, namespace("orphans", json!({})), &w)
        .await
        .unwrap();
    let opts = DeleteOptions {
        propagation_policy: Some(Propagation::Orphan),
        ..DeleteOptions::default()
    };
    let marked = admin
        .delete(namespaces(), None, "orphans", &opts)
        .await
        .unwrap();
    assert_eq!(marked["metadata"]["finalizers"], json!(["orphan"]));
    finalize(
        &controller,
        "orphans",
        namespace("orphans", json!({"finalizers": []})),
    )
    .await
    .unwrap();
    assert_eq!(api_error(get(&admin, "orphans").await).code, 404);

    // The system namespaces stay.
    for name in ["default", "kube-system", "kube-public"] {
        let e = api_error(
            admin
                .delete(namespaces(), None, name, &DeleteOptions::default())
                .await,
        );
        assert_eq!(e.code, 403, "{name}: {e:?}");
        assert!(get(&admin, name).await.unwrap()["metadata"]["deletionTimestamp"].is_null());
    }
}
