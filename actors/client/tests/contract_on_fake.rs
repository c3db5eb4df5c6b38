//! The contract suite run on the in-memory fake (feature `contract`): the fake passes the
//! scenarios it models, which keeps both honest without a server, and the suite catches
//! what the fake does not model, with messages that say what came back.
#![cfg(feature = "contract")]

use navarch_client::contract::{self, Outcome, SCENARIOS};
use navarch_client::testing::FakeClient;

async fn run(name: &str) -> Outcome {
    let f = FakeClient::new();
    let s = SCENARIOS
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"));
    let ns = contract::fresh_namespace(&f, "fake").await?;
    (s.run)(&f, &ns).await
}

#[tokio::test]
async fn the_fake_passes_the_scenarios_it_models() {
    for name in [
        "create_get_list",
        "selectors_and_paging",
        "optimistic_concurrency",
        "patch_types",
        "binding",
        "finalizers",
        "watch_from_list",
        "watch_list",
    ] {
        if let Err(f) = run(name).await {
            panic!("{f}");
        }
    }
}

#[tokio::test]
async fn the_suite_catches_what_the_fake_does_not_model() {
    let f = run("status_subresource").await.unwrap_err();
    assert!(f.message.contains("create kept the status"), "{f}");
    let f = run("typed_errors").await.unwrap_err();
    assert!(f.message.contains("expected 422 Invalid"), "{f}");
    let fake = FakeClient::new();
    let ns = contract::fresh_namespace(&fake, "fake").await.unwrap();
    let f = contract::errors::unprivileged_writes_are_forbidden(&fake, &fake, &ns)
        .await
        .unwrap_err();
    assert!(f.message.contains("expected 403 Forbidden"), "{f}");
}
