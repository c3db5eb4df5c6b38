//! The client contract suite (`navarch_client::contract`) run against every implementation
//! of `Client` on one API server: the in-process client, which runs the pipeline under a
//! component's identity, the HTTPS client through the actix-web layer, and the node link
//! client over QUIC. All must pass the same scenarios; an in-process client whose identity
//! may not write gets 403, and the audit log names that identity. A watch cache over the
//! node link resumes from its revision when the link's connection breaks.
//!
//! The server is in this process: a single-member store in a temporary dir, the API server,
//! its HTTPS layer on 127.0.0.1 and its node link on the store's QUIC endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer};
use navarch_apiserver::audit::AuditLog;
use navarch_apiserver::http::{self, HttpLimits, HttpState};
use navarch_apiserver::nodelink::{self, NodeLinkLimits};
use navarch_apiserver::{ApiServer, ApiServerConfig};
use navarch_client::kubeconfig::{ClientCert, Secret};
use navarch_client::{contract, Client, HttpsClient, HttpsConfig, LinkClient};
use navarch_model::authz::User;
use navarch_net::pki::{ClusterCa, ORG_ADMINS};
use navarch_net::{Endpoint, NetConfig, Router};
use navarch_store::{Member, MemberConfig};

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

struct Server {
    api: ApiServer,
    https: HttpsClient,
    /// An HTTPS client whose certificate carries no role.
    https_nobody: HttpsClient,
    link: LinkClient,
    link_nobody: LinkClient,
    audit: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (ca, _) = ClusterCa::load_or_create(&dir.path().join("pki")).unwrap();
    let identity = ca.issue_member("m1", YEAR).unwrap();
    let router = Router::new();
    let endpoint = Endpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        NetConfig::new("m1", identity),
        router.clone(),
    )
    .unwrap();
    let addr = endpoint.local_addr().unwrap();
    let cfg = MemberConfig::new("m1", dir.path().join("data"), vec![("m1".into(), addr)]);
    let member = Member::start(cfg, endpoint).await.unwrap();
    navarch_store::mount(&router, &member).unwrap();

    let audit_path = dir.path().join("audit.log");
    let mut api_cfg = ApiServerConfig::new(member, tokio::runtime::Handle::current());
    api_cfg.audit = Some(Arc::new(AuditLog::open(&audit_path, 1 << 24, 2).unwrap()));
    let api = ApiServer::start(api_cfg);
    nodelink::mount(&router, &api, NodeLinkLimits::default()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while api.ensure_bootstrap().await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the bootstrap objects are written");

    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let serving = http::tls::serving_identity(&ca, "m1", listen, &[]).unwrap();
    let tls = http::tls::server_config(&serving, "m1").unwrap();
    let state = HttpState::new(api.clone(), HttpLimits::default());
    let server = HttpServer::new(move || {
        let state = state.clone();
        App::new()
            .wrap(actix_web::middleware::from_fn(http::correlation))
            .configure(|cfg| http::configure(cfg, state))
    })
    .workers(1)
    .on_connect(http::on_connect)
    .bind_rustls_0_23(listen, tls)
    .unwrap();
    let port = server.addrs()[0].port();
    actix_web::rt::spawn(server.run());

    let https_for = |cn: &str, orgs: &[&str]| {
        let id = ca.issue_client(cn, orgs, YEAR).unwrap();
        HttpsClient::new(HttpsConfig {
            servers: vec![format!("https://127.0.0.1:{port}")],
            ca_pem: ca.cert_pem().to_string(),
            client_cert: Some(ClientCert {
                cert_pem: id.cert_pem.clone(),
                key_pem: Secret::new(id.key_pem.clone()),
            }),
            token: None,
            request_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            user_agent: "contract-test".into(),
        })
        .unwrap()
    };
    let https = https_for("contract-admin", &[ORG_ADMINS]);
    let https_nobody = https_for("https-nobody", &[]);
    let link_for = |cn: &str, orgs: &[&str]| {
        let id = ca.issue_client(cn, orgs, YEAR).unwrap();
        let ep = Endpoint::client(NetConfig::new(cn, id)).unwrap();
        LinkClient::new(&ep, &[addr], "contract-test").unwrap()
    };
    let link = link_for("link-admin", &[ORG_ADMINS]);
    let link_nobody = link_for("link-nobody", &[]);
    Server {
        https,
        https_nobody,
        link,
        link_nobody,
        api,
        audit: audit_path,
        _dir: dir,
    }
}

fn admin_identity() -> User {
    User::new(
        "system:controller:contract-admin",
        vec!["system:masters".into()],
    )
}

#[test]
fn every_client_passes_the_contract_and_an_unauthorized_component_is_refused_and_audited() {
    actix_web::rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
    .block_on(async {
        let s = start().await;
        let in_process = s.api.client(admin_identity());
        // A component identity no binding grants anything to.
        let nobody = s.api.client(User::new(
            "system:controller:nobody",
            vec!["system:authenticated".into()],
        ));
        for (name, admin, unprivileged) in [
            ("inproc", &in_process as &dyn Client, &nobody as &dyn Client),
            ("https", &s.https, &s.https_nobody),
            ("link", &s.link, &s.link_nobody),
        ] {
            let report = contract::run_all(admin, Some(unprivileged), name).await;
            report.assert_passed();
            // Every scenario ran, and the unprivileged one.
            assert_eq!(report.results.len(), contract::SCENARIOS.len() + 1, "{name}");
        }

        // The refusal of an in-process write is a 403 and names the identity in the audit log.
        let ns = navarch_client::kind("", "v1", "namespaces");
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "not-mine"}});
        let e = nobody
            .create(ns, None, body, &Default::default())
            .await
            .unwrap_err();
        assert!(e.is_forbidden(), "{e}");
        let audit = std::fs::read_to_string(&s.audit).unwrap();
        let line = audit
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|r| {
                r["user"] == "system:controller:nobody"
                    && r["verb"] == "create"
                    && r["resource"] == "namespaces"
            })
            .expect("the refused create is audited");
        assert_eq!(line["code"], 403);
        assert_eq!(line["transport"], "in-process");
        // Link requests are audited as the certificate's user, over the node link.
        assert!(audit.lines().any(|l| l.contains("\"user\":\"link-admin\"")
            && l.contains("\"transport\":\"node-link\"")
            && l.contains("\"code\":201")));
        // The in-process admin's writes are audited under its own name too.
        assert!(audit.lines().any(|l| l.contains("system:controller:contract-admin")
            && l.contains("\"verb\":\"create\"")
            && l.contains("\"code\":201")));
    });
}

#[test]
fn a_watch_cache_over_the_link_resumes_after_its_connection_breaks() {
    actix_web::rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
    .block_on(async {
        let s = start().await;
        let link: Arc<dyn Client> = Arc::new(s.link.clone());
        let namespaces = navarch_client::kind("", "v1", "namespaces");
        let leases = navarch_client::kind("coordination.k8s.io", "v1", "leases");
        let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cache-link"}});
        link.create(namespaces, None, ns, &Default::default())
            .await
            .unwrap();
        let lease = |name: &str| {
            serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                               "metadata": {"name": name, "namespace": "cache-link"},
                               "spec": {"holderIdentity": name}})
        };
        let caches = navarch_client::SharedCaches::new(link.clone());
        let cache = caches.scoped(navarch_client::Scope::kind(leases).namespace("cache-link"));
        cache.wait_synced().await.unwrap();
        let shows = |name: &'static str| {
            let cache = cache.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(20), async {
                    while cache.get(Some("cache-link"), name).is_none() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
                .await
                .unwrap_or_else(|_| panic!("the cache never showed {name}"))
            }
        };
        link.create(leases, Some("cache-link"), lease("a"), &Default::default())
            .await
            .unwrap();
        shows("a").await;
        // The watch is open (it delivered "a"); its connection breaks.
        s.link.disconnect().await;
        let mut stats = cache.watch_stats();
        tokio::time::timeout(
            Duration::from_secs(20),
            stats.wait_for(|st| st.errors >= 1 && st.resumes >= 1),
        )
        .await
        .expect("the broken watch is resumed")
        .unwrap();
        link.create(leases, Some("cache-link"), lease("b"), &Default::default())
            .await
            .unwrap();
        shows("b").await;
        let st = cache.stats();
        assert_eq!(st.lists, 1, "resumed from its revision, not listed again: {st:?}");
        assert_eq!(st.relists_after_gone, 0, "{st:?}");
    });
}
