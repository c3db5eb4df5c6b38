//! Join attempts are rate-limited before any work is done, and their refusals do not write one
//! log line each.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use navarch_net::{
    join, BootstrapToken, JoinAuthority, JoinError, JoinLimits, NetConfig, Rate, RpcError,
    TokenStore,
};

/// Collects everything the test's subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// A current-thread runtime: the server's tasks log through this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn a_burst_of_bad_joins_is_rate_limited_and_logged_once() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let pki = pki();
    let tokens = TokenStore::open(pki.dir.path()).unwrap();
    let token = BootstrapToken::generate();
    tokens.add(&token, Duration::from_secs(600)).unwrap();
    let mut auth = JoinAuthority::new(pki.ca.clone(), Arc::new(tokens), Duration::from_secs(600));
    auth.limits = JoinLimits {
        per_source: Rate {
            burst: 3,
            per_second: 1.0,
        },
        overall: Rate {
            burst: 100,
            per_second: 100.0,
        },
        log_interval: Duration::from_secs(3600),
    };
    let mut cfg = NetConfig::new("master", pki.member("master"));
    cfg.join = Some(auth);
    let srv = server(cfg);
    let addr = srv.local_addr().unwrap();
    let pin = pki.ca.spki_sha256();
    let wrong = format!("{}.{}", token.id(), "0123456789abcdef");

    let attempts = 30;
    let (mut bad_token, mut limited) = (0, 0);
    for i in 0..attempts {
        match join(
            addr,
            &wrong,
            &pin,
            &format!("w{i}"),
            Duration::from_secs(60),
        )
        .await
        {
            Err(JoinError::Rpc(RpcError::Refused(m))) => {
                assert!(m.contains("bootstrap token"), "{m}");
                bad_token += 1;
            }
            Err(JoinError::Rpc(RpcError::RateLimited { retry_after_ms })) => {
                assert!(
                    retry_after_ms > 0 && retry_after_ms <= 1000,
                    "{retry_after_ms}"
                );
                limited += 1;
            }
            other => panic!("attempt {i}: unexpected {other:?}"),
        }
    }
    // The token was checked only for the burst (and what refilled meanwhile); the rest were
    // refused before decoding the request, so no signing work was ever possible.
    assert!(
        limited >= attempts * 2 / 3,
        "{limited} of {attempts} rate-limited, {bad_token} checked"
    );
    assert!(
        bad_token >= 3,
        "the burst reaches the token check: {bad_token}"
    );

    // After the burst window the real token works.
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        match join(
            addr,
            &token.to_string(),
            &pin,
            "good",
            Duration::from_secs(60),
        )
        .await
        {
            Ok(id) => break id,
            Err(JoinError::Rpc(RpcError::RateLimited { retry_after_ms })) => {
                assert!(Instant::now() < deadline, "still rate-limited");
                tokio::time::sleep(Duration::from_millis(retry_after_ms)).await;
            }
            Err(e) => panic!("the real token was refused: {e:?}"),
        }
    };
    assert_eq!(id.peer_identity().unwrap().common_name, "system:node:good");

    // One refusal line for the whole burst, and the secret is not in it.
    let text = log.text();
    let lines = text.lines().filter(|l| l.contains("join refused")).count();
    assert_eq!(lines, 1, "refusal lines:\n{text}");
    assert!(!text.contains(token.secret()));
    assert!(!text.contains("0123456789abcdef"));
}
