//! The event recorder: turns a controller's [`EventSpec`]s into Event objects through the
//! API, counted and rate-limited by navarch-logic's [`Correlator`], written in the
//! background so a slow write never holds a controller back.

use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use navarch_actors::Clock;
use navarch_client::Client;
use navarch_logic::events::{Correlator, EventSpec, EventWrite};
use navarch_model::options::{Patch, WriteOptions};
use navarch_model::patch::PatchType;
use serde_json::json;

/// Records events for one component. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    correlator: Arc<Mutex<Correlator>>,
    client: Arc<dyn Client>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

impl Recorder {
    pub fn new(
        component: &str,
        host: &str,
        client: Arc<dyn Client>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Recorder {
            correlator: Arc::new(Mutex::new(Correlator::new(component, host))),
            client,
            clock,
        }
    }

    /// Records `event` (in the background; a failed write is logged and dropped, as
    /// Kubernetes' recorder does).
    pub fn record(&self, event: EventSpec) {
        let wall = self
            .clock
            .wall()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let suffix = format!("{:x}", wall.as_nanos());
        let write = self
            .correlator
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(&event, wall.as_secs() as i64, &suffix);
        let events = navarch_client::kind("", "v1", "events");
        let client = self.client.clone();
        let fut = async move {
            let opts = WriteOptions::default();
            let result = match write {
                EventWrite::Dropped => return,
                EventWrite::Create(obj) => {
                    let ns = obj["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("default")
                        .to_string();
                    client
                        .create(events, Some(&ns), obj, &opts)
                        .await
                        .map(|_| ())
                }
                EventWrite::Bump {
                    namespace,
                    name,
                    count,
                    last_timestamp,
                } => {
                    let patch = Patch {
                        ty: PatchType::Merge,
                        body: json!({"count": count, "lastTimestamp": last_timestamp}),
                    };
                    client
                        .patch(events, Some(&namespace), &name, None, patch, &opts)
                        .await
                        .map(|_| ())
                }
            };
            if let Err(e) = result {
                tracing::debug!(reason = %event.reason, error = %e, "event not recorded");
            }
        };
        tokio::spawn(fut);
    }
}
