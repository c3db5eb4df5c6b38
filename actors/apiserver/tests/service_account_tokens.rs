//! Service-account tokens through the API server's pipeline, without a control plane: a
//! node gets a token only for a pod bound to it and running as that account; the token
//! authenticates as the account (RBAC then decides) until the pod or the account is
//! deleted; TokenReview says the same to other servers; forged and expired tokens are 401.
//!
//! The server is in this process: a single-member store in a temporary dir and the API
//! server, called through in-process clients and presented bearer tokens.

mod support;

use navarch_apiserver::{Body, Credentials, Origin, RequestHead, Target};
use navarch_client::{Client, ClientError};
use navarch_model::authz::User;
use navarch_model::kinds::Kind;
use navarch_model::options::WriteOptions;
use navarch_model::ApiError;
use serde_json::{json, Value};

use support::start;

fn kind(plural: &str) -> &'static Kind {
    navarch_client::kind("", "v1", plural)
}

fn admin() -> User {
    User::new("test-admin", vec!["system:masters".into()])
}

fn node(name: &str) -> User {
    User::new(format!("system:node:{name}"), vec!["system:nodes".into()])
}

fn api_error(r: Result<impl std::fmt::Debug, ClientError>) -> ApiError {
    match r {
        Err(ClientError::Api(e)) => e,
        other => panic!("expected a Status, got {other:?}"),
    }
}

fn ask(pod: &str, uid: &str) -> Value {
    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
           "spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod, "uid": uid}}})
}

/// `GET /api/v1/namespaces/apps/pods` presenting `token`: the code, or 200.
async fn list_pods_with(api: &navarch_apiserver::ApiServer, token: &str) -> u16 {
    let creds = Credentials::Presented {
        client_cert: None,
        authorization: Some(format!("Bearer {token}")),
        impersonate: None,
    };
    let head = RequestHead {
        verb: "list",
        target: Target::Resource {
            kind: kind("pods"),
            namespace: Some("apps".into()),
            name: None,
            subresource: None,
        },
        query: Vec::new(),
        origin: Origin::in_process("/api/v1/namespaces/apps/pods".into()),
    };
    match api.handle(&creds, head, Body::Empty).await {
        Ok(r) => r.code(),
        Err(e) => e.code,
    }
}

/// The code `token` gets once it is not 200 or 403 any more (a revocation reaches the
/// check when this master's copy of the store applies the deletion).
async fn refused_soon(api: &navarch_apiserver::ApiServer, token: &str) -> u16 {
    let mut code = 0;
    for _ in 0..100 {
        code = list_pods_with(api, token).await;
        if code != 200 && code != 403 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    code
}

async fn review(admin: &dyn Client, token: &str) -> Value {
    let kind = navarch_client::kind("authentication.k8s.io", "v1", "tokenreviews");
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                      "spec": {"token": token}});
    admin
        .create(kind, None, body, &WriteOptions::default())
        .await
        .unwrap()
        .object["status"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_tokens_authenticate_until_their_pod_goes() {
    let dir = tempfile::tempdir().unwrap();
    let api = start(dir.path()).await;
    let admin = api.client(admin());
    let w = WriteOptions::default();
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}});
    admin
        .create(kind("namespaces"), None, ns, &w)
        .await
        .unwrap();
    for sa in ["default", "builder"] {
        let body = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}});
        admin
            .create(kind("serviceaccounts"), Some("apps"), body, &w)
            .await
            .unwrap();
    }
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                     "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}});
    let pod = admin
        .create(kind("pods"), Some("apps"), pod, &w)
        .await
        .unwrap()
        .object;
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    // Admission: the default account, its token projected.
    assert_eq!(pod["spec"]["serviceAccountName"], "default");
    assert!(pod["spec"]["volumes"][0]["name"]
        .as_str()
        .unwrap()
        .starts_with("kube-api-access-"));

    // Node restriction: only the pod's node, only for the pod's account, only bound.
    let n2 = api.client(node("n2"));
    let e = api_error(n2.create_token("apps", "default", ask("web", &uid)).await);
    assert_eq!(e.code, 403, "{e:?}");
    let n1 = api.client(node("n1"));
    let e = api_error(n1.create_token("apps", "builder", ask("web", &uid)).await);
    assert_eq!(e.code, 400, "{e:?}");
    let unbound =
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}});
    let e = api_error(n1.create_token("apps", "default", unbound).await);
    assert_eq!(e.code, 403, "{e:?}");
    let e = api_error(
        n1.create_token("apps", "default", ask("web", "other-uid"))
            .await,
    );
    assert_eq!(e.code, 409, "{e:?}");
    let short = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                       "spec": {"expirationSeconds": 60}});
    let e = api_error(admin.create_token("apps", "default", short).await);
    assert_eq!(e.code, 422, "{e:?}");

    let answer = n1
        .create_token("apps", "default", ask("web", &uid))
        .await
        .unwrap();
    let token = answer["status"]["token"].as_str().unwrap().to_string();
    assert!(
        answer["status"]["expirationTimestamp"].is_string(),
        "{answer}"
    );
    assert_eq!(answer["spec"]["expirationSeconds"], 3600);

    // The token is the account: RBAC gives it nothing yet, then what a binding grants.
    assert_eq!(list_pods_with(&api, &token).await, 403);
    let rbac = |p: &str| navarch_client::kind("rbac.authorization.k8s.io", "v1", p);
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]});
    admin
        .create(rbac("roles"), Some("apps"), role, &w)
        .await
        .unwrap();
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "default"}]});
    admin
        .create(rbac("rolebindings"), Some("apps"), binding, &w)
        .await
        .unwrap();
    let mut code = 0;
    for _ in 0..100 {
        code = list_pods_with(&api, &token).await;
        if code == 200 {
            break;
        }
        // The RBAC snapshot follows the store's watch.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(code, 200);

    let status = review(&admin, &token).await;
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:apps:default"
    );
    assert_eq!(
        status["user"]["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["web"])
    );

    // Forged: one character of the signature changed.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(list_pods_with(&api, &forged).await, 401);
    assert_eq!(review(&admin, &forged).await["authenticated"], false);

    // The pod gone (deleted at once): its token with it.
    let now = navarch_model::options::DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    admin
        .delete(kind("pods"), Some("apps"), "web", &now)
        .await
        .unwrap();
    assert_eq!(refused_soon(&api, &token).await, 401);
    assert_eq!(review(&admin, &token).await["authenticated"], false);

    // A token bound to no pod (admin may ask) lives as long as its account.
    let plain =
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}});
    let answer = admin.create_token("apps", "builder", plain).await.unwrap();
    let token = answer["status"]["token"].as_str().unwrap().to_string();
    assert_eq!(list_pods_with(&api, &token).await, 403);
    admin
        .delete(
            kind("serviceaccounts"),
            Some("apps"),
            "builder",
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(refused_soon(&api, &token).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_as_a_missing_account_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let api = start(dir.path()).await;
    let admin = api.client(admin());
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                     "spec": {"serviceAccountName": "ghost", "automountServiceAccountToken": false,
                              "containers": [{"name": "c", "image": "busybox"}]}});
    let e = api_error(
        admin
            .create(kind("pods"), Some("default"), pod, &WriteOptions::default())
            .await,
    );
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        r#"pods "web" is forbidden: error looking up service account default/ghost: serviceaccount "ghost" not found"#
    );
    let got = admin
        .get(kind("pods"), Some("default"), "web", &Default::default())
        .await;
    assert!(matches!(got, Err(e) if e.is_not_found()));
}
