//! Pod watches by `spec.nodeName` go through the indexed fan-out: a watch sees exactly the
//! events of the pods that are or were on its node (a binding as ADDED, a move away as
//! DELETED), in order; one started from an older resourceVersion replays what it missed
//! before following; and the pods of other nodes never reach it.

mod support;

use std::time::Duration;

use futures::StreamExt;
use navarch_client::{kind, Client, WatchStream};
use navarch_model::authz::User;
use navarch_model::options::{DeleteOptions, WatchOptions, WriteOptions};
use navarch_model::selector::FieldSelector;
use navarch_model::watch::EventType;
use serde_json::{json, Value};

use support::start;

fn pod(name: &str, node: Option<&str>) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    });
    if let Some(n) = node {
        p["spec"]["nodeName"] = json!(n);
    }
    p
}

fn on_node(node: &str, rv: Option<String>) -> WatchOptions {
    WatchOptions {
        field_selector: FieldSelector::parse("Pod", &format!("spec.nodeName={node}")).unwrap(),
        resource_version: rv,
        ..WatchOptions::default()
    }
}

/// The next event's type and pod name (bookmarks are not asked for).
async fn next(w: &mut WatchStream) -> (EventType, String) {
    let e = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("an event within 10 s")
        .expect("the watch goes on")
        .expect("a watch event, not an error");
    let name = e.object["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    (e.event_type, name)
}

fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn node_watches_see_their_pods_and_only_theirs_and_resume_from_older_revisions() {
    actix_web::rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
    .block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let api = start(dir.path()).await;
        let c = api.client(User::new(
            "system:controller:indexed-watch-test",
            vec!["system:masters".into()],
        ));
        let pods = kind("", "v1", "pods");
        let w = WriteOptions::default();
        let ns = Some("default");
        c.create(pods, ns, pod("a", None), &w).await.unwrap();
        c.create(pods, ns, pod("b", Some("n1")), &w).await.unwrap();
        c.create(pods, ns, pod("c", Some("n2")), &w).await.unwrap();

        // With its initial list: the pod already on n1.
        let mut n1 = c.watch(pods, ns, &on_node("n1", None)).await.unwrap();
        assert_eq!(next(&mut n1).await, (EventType::Added, "b".into()));
        // The unscheduled pods' watch, all namespaces.
        let mut unbound = c.watch(pods, None, &on_node("", None)).await.unwrap();
        assert_eq!(next(&mut unbound).await, (EventType::Added, "a".into()));

        let before_bind = rv(&c.get(pods, ns, "c", &Default::default()).await.unwrap());
        c.bind("default", "a", "n1").await.unwrap();
        assert_eq!(next(&mut n1).await, (EventType::Added, "a".into()));
        assert_eq!(
            next(&mut unbound).await,
            (EventType::Deleted, "a".into()),
            "a pod leaving the selector's value is reported to the watch of that value"
        );

        // Another node's pod changes: n1 never hears of it; its own pod's change it does.
        let mut c_pod = c.get(pods, ns, "c", &Default::default()).await.unwrap();
        c_pod["metadata"]["labels"] = json!({"touched": "yes"});
        c.update(pods, ns, "c", None, c_pod, &w).await.unwrap();
        let mut b_pod = c.get(pods, ns, "b", &Default::default()).await.unwrap();
        b_pod["metadata"]["labels"] = json!({"touched": "yes"});
        c.update(pods, ns, "b", None, b_pod, &w).await.unwrap();
        assert_eq!(next(&mut n1).await, (EventType::Modified, "b".into()));

        let gone = DeleteOptions {
            grace_period_seconds: Some(0),
            ..DeleteOptions::default()
        };
        c.delete(pods, ns, "b", &gone).await.unwrap();
        assert_eq!(next(&mut n1).await, (EventType::Deleted, "b".into()));

        // From a revision before the binding: replayed from the history, then live.
        let mut late = c
            .watch(pods, ns, &on_node("n1", Some(before_bind)))
            .await
            .unwrap();
        assert_eq!(next(&mut late).await, (EventType::Modified, "a".into()));
        assert_eq!(next(&mut late).await, (EventType::Modified, "b".into()));
        assert_eq!(next(&mut late).await, (EventType::Deleted, "b".into()));
        c.create(pods, ns, pod("d", Some("n1")), &w).await.unwrap();
        assert_eq!(next(&mut late).await, (EventType::Added, "d".into()));
        assert_eq!(next(&mut n1).await, (EventType::Added, "d".into()));

        // A watch in another namespace on the same node sees none of default's pods.
        let mut elsewhere = c
            .watch(
                pods,
                Some("kube-system"),
                &on_node(
                    "n1",
                    Some(rv(&c
                        .get(pods, ns, "d", &Default::default())
                        .await
                        .unwrap())),
                ),
            )
            .await
            .unwrap();
        c.create(pods, ns, pod("e", Some("n1")), &w).await.unwrap();
        assert_eq!(next(&mut n1).await, (EventType::Added, "e".into()));
        c.create(pods, Some("kube-system"), pod("f", Some("n1")), &w)
            .await
            .unwrap();
        assert_eq!(
            next(&mut elsewhere).await,
            (EventType::Added, "f".into()),
            "the first event a kube-system watch sees is kube-system's, not default's e"
        );
    });
}
