//! The inspector's HTTP endpoints (`bins/src/debug_actors.rs`, compiled here against this
//! crate): list and get actors, read and follow messages, kill by path and by prefix; a tree of
//! groups, kinds and singletons as they show it.

mod common;

#[path = "../../bins/src/debug_actors.rs"]
mod debug_actors;

use std::pin::Pin;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::{test, App};
use common::*;
use navarch_actors::{
    with_correlation, CorrelationId, GroupSpec, KindSpec, Root, SingletonSpec, Status, TapConfig,
};
use serde_json::Value;

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

    let (registry, tap) = (root.registry(), root.tap());
    let app = test::init_service(
        App::new().configure(move |cfg| debug_actors::configure(cfg, registry, tap)),
    )
    .await;

    // Actors: a listing by prefix, one by path, and errors.
    let req = test::TestRequest::get()
        .uri("/debug/actors?prefix=/master/controllers/deployment")
        .to_request();
    let list: Vec<Value> = test::call_and_read_body_json(&app, req).await;
    let paths: Vec<&str> = list.iter().map(|v| v["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "/master/controllers/deployment",
            "/master/controllers/deployment/default/api",
            "/master/controllers/deployment/default/web",
        ]
    );
    let req = test::TestRequest::get()
        .uri("/debug/actors?path=/master/controllers/deployment/default/web")
        .to_request();
    let one: Value = test::call_and_read_body_json(&app, req).await;
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
        let resp = test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(resp.status().as_u16(), status, "{uri}");
    }

    // Messages: filtered by correlation id and by type.
    let req = test::TestRequest::get()
        .uri(&format!("/debug/messages?correlation={id}"))
        .to_request();
    let msgs: Vec<Value> = test::call_and_read_body_json(&app, req).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["message_type"], "Add");
    assert_eq!(
        msgs[0]["receiver"],
        "/master/controllers/deployment/default/web"
    );
    assert_eq!(msgs[0]["correlation"], id.to_string());
    let req = test::TestRequest::get()
        .uri("/debug/messages?type=Started&limit=1")
        .to_request();
    let msgs: Vec<Value> = test::call_and_read_body_json(&app, req).await;
    assert_eq!(msgs.len(), 1);

    // Follow: a live stream of newline-delimited JSON.
    let req = test::TestRequest::get()
        .uri("/debug/messages?follow=true&type=Add&prefix=/master/controllers/deployment/default/api")
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/x-ndjson"
    );
    let mut body = resp.into_body();
    let api_ref = kind.child(&b).await.unwrap().unwrap();
    api_ref.send(CounterEvent::Add(5)).await.unwrap();
    web_ref.send(CounterEvent::Add(5)).await.unwrap();
    api_ref.send(CounterEvent::Add(6)).await.unwrap();
    let mut buf = Vec::new();
    while buf.iter().filter(|&&c| c == b'\n').count() < 2 {
        let chunk = tokio::time::timeout(
            LIMIT,
            futures::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)),
        )
        .await
        .expect("a streamed record")
        .expect("the stream is open")
        .unwrap();
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
    let req = test::TestRequest::post()
        .uri("/debug/kill?path=/master/controllers/deployment/default/web")
        .to_request();
    let killed: Value = test::call_and_read_body_json(&app, req).await;
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
    let req = test::TestRequest::post()
        .uri("/debug/kill?prefix=/master/controllers")
        .to_request();
    let killed: Value = test::call_and_read_body_json(&app, req).await;
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
        let resp = test::call_service(&app, test::TestRequest::post().uri(uri).to_request()).await;
        assert_eq!(resp.status().as_u16(), status, "{uri}");
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
    let (registry, tap) = (root.registry(), root.tap());
    let app = test::init_service(
        App::new().configure(move |cfg| debug_actors::configure(cfg, registry, tap)),
    )
    .await;
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
            let req = test::TestRequest::get().uri(uri).to_request();
            let list: Vec<Value> = test::call_and_read_body_json(app, req).await;
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
    let req = test::TestRequest::get()
        .uri("/debug/actors?path=/master/controllers/scheduler")
        .to_request();
    let one: Value = test::call_and_read_body_json(&app, req).await;
    assert_eq!(one["summary"], "placed 0, free n1=1");
    assert_eq!(one["kind"], "scheduler");

    // The singleton is killable; the group and the kind are not.
    let req = test::TestRequest::post()
        .uri("/debug/kill?path=/master/controllers/scheduler")
        .to_request();
    let killed: Value = test::call_and_read_body_json(&app, req).await;
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
        let resp = test::call_service(&app, test::TestRequest::post().uri(uri).to_request()).await;
        assert_eq!(resp.status().as_u16(), 409, "{uri}");
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
    let resp = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/debug/kill?prefix=/master/controllers")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 404);
}
