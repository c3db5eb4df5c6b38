//! What the in-process API server tests share: one single-member store in a temporary dir
//! and the API server on it, its bootstrap policy written.

use std::time::Duration;

use navarch_apiserver::{ApiServer, ApiServerConfig};
use navarch_net::pki::ClusterCa;
use navarch_net::{Endpoint, NetConfig, Router};
use navarch_store::{Member, MemberConfig};

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// Starts a member `m1` on 127.0.0.1 with its data under `dir`, and an API server on it.
pub async fn start(dir: &std::path::Path) -> ApiServer {
    let (ca, _) = ClusterCa::load_or_create(&dir.join("pki")).unwrap();
    let identity = ca.issue_member("m1", YEAR).unwrap();
    let router = Router::new();
    let endpoint = Endpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        NetConfig::new("m1", identity),
        router.clone(),
    )
    .unwrap();
    let addr = endpoint.local_addr().unwrap();
    let cfg = MemberConfig::new("m1", dir.join("data"), vec![("m1".into(), addr)]);
    let member = Member::start(cfg, endpoint).await.unwrap();
    navarch_store::mount(&router, &member).unwrap();
    let api = ApiServer::start(ApiServerConfig::new(
        member,
        tokio::runtime::Handle::current(),
    ));
    tokio::time::timeout(Duration::from_secs(30), async {
        while api.ensure_bootstrap().await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the bootstrap objects are written");
    api
}
