//! What the node's kubelet endpoint asks the kubelet: where a container's log is, and which
//! running container an exec goes to ([`crate::streams::LogLocator`] and
//! [`crate::streams::Execer`] over the kubelet's pods and index). The endpoint is bound before
//! the kubelet starts (the Node reports its port when it registers), so [`Lookup`] answers
//! "not ready" until [`Lookup::attach`] hands it the kubelet.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use navarch_runtime::{ContainerState, ExecIo};
use serde_json::Value;

use super::worker::Shared;
use crate::streams::{Execer, LogLocator, LogTarget, StreamError};

/// Kubernetes' streaming connections idle out after 4 hours; an exec runs at most that.
const EXEC_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// The kubelet as its endpoint sees it.
#[derive(Default)]
pub struct Lookup {
    shared: OnceLock<Arc<Shared>>,
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookup")
            .field("attached", &self.shared.get().is_some())
            .finish()
    }
}

impl Lookup {
    pub fn attach(&self, shared: Arc<Shared>) {
        let _ = self.shared.set(shared);
    }

    fn shared(&self) -> Result<&Arc<Shared>, StreamError> {
        self.shared
            .get()
            .ok_or_else(|| StreamError::Internal("the kubelet is starting".into()))
    }
}

/// The pod and the name of the container asked for (the only one when `None`).
fn choose(
    shared: &Shared,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
) -> Result<(Arc<Value>, String), StreamError> {
    let p = shared
        .pods
        .get(Some(namespace), pod)
        .ok_or_else(|| StreamError::NotFound(format!("pods \"{pod}\" not found")))?;
    let names: Vec<&str> = ["initContainers", "containers"]
        .iter()
        .filter_map(|l| p["spec"][*l].as_array())
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let name = match container {
        Some(c) if names.contains(&c) => c.to_string(),
        Some(c) => return Err(StreamError::container_not_valid(c, pod)),
        None => {
            let apps: Vec<&str> = p["spec"]["containers"]
                .as_array()
                .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
                .unwrap_or_default();
            match apps.as_slice() {
                [one] => one.to_string(),
                _ => return Err(StreamError::container_required(pod, &apps)),
            }
        }
    };
    Ok((p, name))
}

impl LogLocator for Lookup {
    fn locate(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        previous: bool,
    ) -> Result<LogTarget, StreamError> {
        let shared = self.shared()?.clone();
        let (p, name) = choose(&shared, namespace, pod, container)?;
        let uid = p["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let latest = shared
            .instances_of(&uid)
            .into_iter()
            .filter(|c| c.container == name)
            .max_by_key(|c| c.restart);
        let Some(latest) = latest else {
            return Err(StreamError::waiting(&name, pod, Some("ContainerCreating")));
        };
        let n = latest.restart;
        if previous {
            if n == 0 {
                return Err(StreamError::previous_not_found(&name, pod));
            }
            let path = shared.cfg.log_path(namespace, pod, &uid, &name, n - 1);
            if !path.exists() {
                return Err(StreamError::previous_not_found(&name, pod));
            }
            return Ok(LogTarget {
                path,
                running: Arc::new(|| false),
            });
        }
        let id = latest.id.clone();
        let watcher = shared.clone();
        let uid2 = uid.clone();
        Ok(LogTarget {
            path: shared.cfg.log_path(namespace, pod, &uid, &name, n),
            running: Arc::new(move || watcher.state_of(&uid2, &id) != Some(ContainerState::Exited)),
        })
    }
}

impl Execer for Lookup {
    fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: Vec<String>,
        io: ExecIo,
    ) -> BoxFuture<'static, Result<i32, StreamError>> {
        let found = self.shared().cloned().and_then(|shared| {
            let (p, name) = choose(&shared, namespace, pod, container)?;
            let uid = p["metadata"]["uid"].as_str().unwrap_or("").to_string();
            let running = shared
                .instances_of(&uid)
                .into_iter()
                .filter(|c| c.container == name && c.state == ContainerState::Running)
                .max_by_key(|c| c.restart);
            let c = running.ok_or_else(|| StreamError::not_running(&name, pod))?;
            let rt = shared
                .runtime_named(&c.runtime)
                .ok_or_else(|| StreamError::Internal(format!("no runtime {}", c.runtime)))?;
            Ok((rt, c.id, name))
        });
        let pod = pod.to_string();
        Box::pin(async move {
            let (rt, id, name) = found?;
            crate::streams::exec_in(&*rt, &id, command, io, EXEC_TIMEOUT, &pod, &name).await
        })
    }
}
