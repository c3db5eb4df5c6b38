//! The inspector's views (`/debug/actors`, `/debug/messages`, `/debug/kill`) over a real actor
//! tree: list and get actors, read and follow messages, kill by path and by prefix; a tree of
//! groups, kinds and singletons as they show it. The actor kit's test helpers are shared.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use common::*;
use futures::StreamExt;
use navarch_actors::{
    with_correlation, CorrelationId, GroupSpec, KindSpec, Root, SingletonSpec, Status, TapConfig,
};
use navarch_apiserver::debug::actor_view;
use navarch_apiserver::{DebugHooks, Reply};
use navarch_net::fault::FaultInjector;
use serde_json::Value;

fn hooks(root: &Root) -> DebugHooks {
    DebugHooks {
        registry: root.registry(),
        tap: root.tap(),
        faults: FaultInjector::default(),
        views: Vec::new(),
    }
}

/// `METHOD /debug/<view>?<query>`: the HTTP status and the reply.
async fn call(h: &DebugHooks, method: &str, uri: &str) -> (u16, Option<Reply>) {
    let rest = uri.strip_prefix("/debug/").expect("a debug uri");
    let (view, query) = rest.split_once('?').unwrap_or((rest, ""));
    let q: Vec<(String, String)> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    match actor_view(h, &method.to_ascii_lowercase(), view, &q).await {
        Ok(r) => (r.code(), Some(r)),
        Err(e) => (e.code, None),
    }
}

async fn json<T: serde::de::DeserializeOwned>(h: &DebugHooks, method: &str, uri: &str) -> T {
    match call(h, method, uri).await {
        (200, Some(Reply::Document { body, .. })) => serde_json::from_value(body).unwrap(),
        (code, _) => panic!("{method} {uri}: {code}"),
    }
}

#[actix_rt::test]
async fn inspector_endpoints_show_actors_and_messages_and_kill() {
    let root = Root::new(path("/master"), TapConfig::default());
    let source = Arc::new(MemSource::default());
    let (a, b) = (key("default/web"), key("default/api"));
    source.put(&a, 1);
    source.put(&b, 2);
    let kind = root
        .supervise(
            KindSpec::new("deployment", Counter, source.clone()).at("controllers/deployment"),
        )
        .unwrap();
    kind.object_changed(a.clone(), 1).await.unwrap();
    kind.object_changed(b.clone(), 2).await.unwrap();
    let web_ref = kind.child(&a).await.unwrap().unwrap();
    let id = CorrelationId::new_random();
    with_correlation(id, web_ref.send(CounterEvent::Add(1)))
        .await
        .unwrap();

    let app = hooks(&root);

    // Actors: a listing by prefix, one by path, and errors.
    let list: Vec<Value> = json(
        &app,
        "GET",
        "/debug/actors?prefix=/master/controllers/deployment",
    )
    .await;
    let paths: Vec<&str> = list.iter().map(|v| v["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "/master/controllers/deployment",
            "/master/controllers/deployment/default/api",
            "/master/controllers/deployment/default/web",
        ]
    );
    let one: Value = json(
        &app,
        "GET",
        "/debug/actors?path=/master/controllers/deployment/default/web",
    )
    .await;
    assert_eq!(one["summary"], "value=2");
    assert_eq!(one["supervisor"], "/master/controllers/deployment");
    assert_eq!(one["kind"], "deployment");
    assert_eq!(
        (one["handled"].as_u64(), one["restarts"].as_u64()),
        (Some(1), Some(0))
    );
    for (uri, status) in [
        ("/debug/actors?path=/master/nope", 404),
        ("/debug/actors?path=relative", 400),
        ("/debug/messages?correlation=xyz", 400),
        ("/debug/messages?limit=many", 400),
    ] {
        assert_eq!(call(&app, "GET", uri).await.0, status, "{uri}");
    }

    // Messages: filtered by correlation id and by type.
    let msgs: Vec<Value> = json(&app, "GET", &format!("/debug/messages?correlation={id}")).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["message_type"], "Add");
    assert_eq!(
        msgs[0]["receiver"],
        "/master/controllers/deployment/default/web"
    );
    assert_eq!(msgs[0]["correlation"], id.to_string());
    let msgs: Vec<Value> = json(&app, "GET", "/debug/messages?type=Started&limit=1").await;
    assert_eq!(msgs.len(), 1);

    // Follow: a live stream of newline-delimited JSON.
    let (code, reply) = call(
        &app,
        "GET",
        "/debug/messages?follow=true&type=Add&prefix=/master/controllers/deployment/default/api",
    )
    .await;
    assert_eq!(code, 200);
    let Some(Reply::Stream {
        content_type,
        chunks: mut body,
    }) = reply
    else {
        panic!("a stream");
    };
    assert_eq!(content_type, "application/x-ndjson");
    let api_ref = kind.child(&b).await.unwrap().unwrap();
    api_ref.send(CounterEvent::Add(5)).await.unwrap();
    web_ref.send(CounterEvent::Add(5)).await.unwrap();
    api_ref.send(CounterEvent::Add(6)).await.unwrap();
    let mut buf = Vec::new();
    while buf.iter().filter(|&&c| c == b'\n').count() < 2 {
        let chunk = tokio::time::timeout(LIMIT, body.next())
            .await
            .expect("a streamed record")
            .expect("the stream is open");
        buf.extend_from_slice(&chunk);
    }
    let lines: Vec<Value> = buf
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let summaries: Vec<&str> = lines
        .iter()
        .map(|l| l["summary"].as_str().unwrap())
        .collect();
    assert_eq!(summaries, ["add 5", "add 6"]);
    drop(body);

    // Kill by path, then a random one by prefix; the registry shows the restarts.
    let killed: Value = json(
        &app,
        "POST",
        "/debug/kill?path=/master/controllers/deployment/default/web",
    )
    .await;
    assert_eq!(
        killed["killed"],
        "/master/controllers/deployment/default/web"
    );
    let reg = root.registry();
    eventually(LIMIT, "web restarted", || {
        reg.get(web_ref.path())
            .is_some_and(|i| i.restarts == 1 && i.status == Status::Running)
    })
    .await;
    let killed: Value = json(&app, "POST", "/debug/kill?prefix=/master/controllers").await;
    let victim = path(killed["killed"].as_str().unwrap());
    assert!(victim.starts_with(kind.path()));
    eventually(LIMIT, "victim restarted", || {
        let all = reg.list(kind.path());
        all.iter().map(|i| i.restarts).sum::<u32>() == 2
            && all.iter().all(|i| i.status == Status::Running)
    })
    .await;
    for (uri, status) in [
        ("/debug/kill?path=/master/controllers/deployment", 409),
        ("/debug/kill?path=/master/none", 404),
        ("/debug/kill?prefix=/nowhere", 404),
        ("/debug/kill", 400),
    ] {
        assert_eq!(call(&app, "POST", uri).await.0, status, "{uri}");
    }
}

#[actix_rt::test]
async fn inspector_shows_the_supervision_tree_and_kills_a_singleton() {
    let root = Root::new(path("/master"), TapConfig::default());
    let source = Arc::new(MemSource::listable());
    source.put(&key("default/web"), 1);
    let cm = root
        .group(GroupSpec::new("controllers").kind("controller-manager"))
        .unwrap();
    cm.supervise(KindSpec::new("deployment", Counter, source.clone()))
        .await
        .unwrap();
    let sched = cm
        .singleton(SingletonSpec::new(
            "scheduler",
            Placer::default(),
            MemNodes::with(&[("n1", 1)]),
        ))
        .await
        .unwrap();
    let app = hooks(&root);
    let reg = root.registry();
    eventually(LIMIT, "all running", || {
        reg.list(cm.path())
            .iter()
            .all(|i| i.status == Status::Running)
            && reg.list(cm.path()).len() == 4
    })
    .await;

    let list = |uri: &'static str| {
        let app = &app;
        async move {
            let list: Vec<Value> = json(app, "GET", uri).await;
            list.iter()
                .map(|v| {
                    format!(
                        "{} {} {} <- {}",
                        v["path"].as_str().unwrap(),
                        v["role"].as_str().unwrap(),
                        v["status"].as_str().unwrap(),
                        v["supervisor"].as_str().unwrap_or("-"),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list("/debug/actors?prefix=/master/controllers").await,
        [
            "/master/controllers group running <- /master",
            "/master/controllers/deployment supervisor running <- /master/controllers",
            "/master/controllers/deployment/default/web object running <- /master/controllers/deployment",
            "/master/controllers/scheduler singleton running <- /master/controllers",
        ]
    );
    let one: Value = json(
        &app,
        "GET",
        "/debug/actors?path=/master/controllers/scheduler",
    )
    .await;
    assert_eq!(one["summary"], "placed 0, free n1=1");
    assert_eq!(one["kind"], "scheduler");

    // The singleton is killable; the group and the kind are not.
    let killed: Value = json(
        &app,
        "POST",
        "/debug/kill?path=/master/controllers/scheduler",
    )
    .await;
    assert_eq!(killed["killed"], "/master/controllers/scheduler");
    eventually(LIMIT, "scheduler restarted", || {
        reg.get(sched.path())
            .is_some_and(|i| i.restarts == 1 && i.status == Status::Running)
    })
    .await;
    for uri in [
        "/debug/kill?path=/master/controllers",
        "/debug/kill?path=/master/controllers/deployment",
    ] {
        assert_eq!(call(&app, "POST", uri).await.0, 409, "{uri}");
    }

    // Stopped (not the leader): the tree stays visible, nothing under it runs or can be killed.
    cm.stop_children().await.unwrap();
    assert_eq!(
        list("/debug/actors?prefix=/master/controllers").await,
        [
            "/master/controllers group running <- /master",
            "/master/controllers/deployment supervisor stopped <- /master/controllers",
            "/master/controllers/scheduler singleton stopped <- /master/controllers",
        ]
    );
    assert_eq!(
        call(&app, "POST", "/debug/kill?prefix=/master/controllers")
            .await
            .0,
        404
    );
}
