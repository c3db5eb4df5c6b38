//! Wiring the control plane to the store's leadership: this master runs the controllers and
//! the scheduler while it leads the Raft group, their writes fenced to the term it leads in.

use std::sync::Arc;
use std::time::Duration;

use navarch_apiserver::ApiServer;
use navarch_client::Client;
use navarch_controllers::{Clients, ControlPlane};
use navarch_model::identity::Component;
use navarch_store::Member;

/// Each component's in-process client, fenced to one term.
struct FencedClients {
    api: ApiServer,
    term: u64,
}

impl Clients for FencedClients {
    fn client(&self, component: &Component) -> Arc<dyn Client> {
        Arc::new(self.api.client(component.user_info()).fenced(self.term))
    }
}

/// Runs `control_plane` whenever `member` leads, until the process stops.
pub async fn follow_leadership(
    member: Arc<Member>,
    api: ApiServer,
    control_plane: Arc<ControlPlane>,
) {
    let mut leadership = member.leadership();
    let mut current = None;
    loop {
        let term = leadership.changed_from(current).await;
        if term.is_none() && current.is_none() {
            // Raft stopped while not leading.
            return;
        }
        current = term;
        match term {
            Some(term) => {
                let clients = Arc::new(FencedClients {
                    api: api.clone(),
                    term,
                });
                if let Err(e) = control_plane.activate(term, clients).await {
                    tracing::warn!(term, error = %e, "control plane did not start");
                    // Try again on the next change, or after a pause in the same term.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    current = None;
                }
            }
            None => control_plane.deactivate().await,
        }
    }
}
