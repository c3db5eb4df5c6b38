//! What the controllers' tests over the in-memory API share: a control plane whose every
//! component writes through one [`FakeClient`].

use std::sync::Arc;

use navarch_actors::{ActorPath, Root, TapConfig};
use navarch_client::testing::FakeClient;
use navarch_client::{Client, SharedCaches};
use navarch_controllers::{Clients, ControlPlane, ControllerConfig};
use navarch_model::identity::Component;

/// Every component's client is the fake.
pub struct Fake(pub Arc<FakeClient>);

impl Clients for Fake {
    fn client(&self, _: &Component) -> Arc<dyn Client> {
        self.0.clone()
    }
}

pub fn kind(group: &str, plural: &str) -> &'static navarch_model::kinds::Kind {
    navarch_client::kind(group, "v1", plural)
}

/// A control plane under `/test`, active (term 1) over `fake`, caches and writes alike.
pub async fn start_with(
    fake: &Arc<FakeClient>,
    config: ControllerConfig,
) -> (Root, Arc<ControlPlane>) {
    let root = Root::new(ActorPath::parse("/test").unwrap(), TapConfig::default());
    let f = fake.clone();
    let caches = Arc::new(move || SharedCaches::new(f.clone()));
    let cp = ControlPlane::new(root.clone(), caches, config);
    cp.activate(1, Arc::new(Fake(fake.clone()))).await.unwrap();
    (root, cp)
}
