//! The prober (the kubelet's prober manager): one task per running container that has
//! probes, running them on their schedule ([`probe::ProbeSet`] decides what is due and what
//! a result means) and publishing what they say as a [`ProbeView`] that the pod's passes
//! read; a change pokes the pod. The task ends when its container stops running.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use navarch_actors::ObjectKey;
use navarch_runtime::{ContainerId, ContainerRuntime, ContainerState};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::probe::{self, ProbeAction, ProbeSet, ProbeTarget};
use super::sync::ProbeView;
use super::worker::Shared;

/// The probe tasks of one kubelet, by container id.
#[derive(Default)]
pub struct Prober {
    tasks: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober").finish_non_exhaustive()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            t.abort();
        }
    }
}

/// Whether a container declares any probe.
pub fn has_probes(container: &Value) -> bool {
    ["livenessProbe", "readinessProbe", "startupProbe"]
        .iter()
        .any(|p| container[*p].is_object())
}

/// What a container's probes say before their first result.
pub fn initial_view(set: &ProbeSet) -> ProbeView {
    ProbeView {
        ready: set.ready(),
        started: set.started().unwrap_or(true),
        restart: None,
    }
}

/// Everything a probe task needs.
pub struct Probed {
    pub key: ObjectKey,
    pub id: ContainerId,
    pub container: Value,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub pod_ip: IpAddr,
    pub started_at: SystemTime,
}

impl Prober {
    /// Whether container `id` has a probe task.
    pub fn watching(&self, id: &str) -> bool {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .is_some_and(|t| !t.is_finished())
    }

    /// Stops the task of container `id`.
    pub fn stop(&self, id: &str) {
        if let Some(t) = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
        {
            t.abort();
        }
    }

    /// Starts probing a running container (unless it is probed already).
    pub fn start(&self, shared: &Arc<Shared>, p: Probed) -> Result<(), probe::ProbeError> {
        if self.watching(p.id.as_str()) {
            return Ok(());
        }
        // The probes' clock starts when the container did, not when this task does (a
        // restarted agent keeps the initial delays already spent).
        let ran = SystemTime::now()
            .duration_since(p.started_at)
            .unwrap_or_default();
        let started = Instant::now().checked_sub(ran).unwrap_or_else(Instant::now);
        let set = ProbeSet::for_container(&p.container, started)?;
        shared.set_probe_view(p.id.as_str(), initial_view(&set));
        let id = p.id.as_str().to_string();
        let task = tokio::spawn(run(shared.clone(), p, set));
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, task);
        Ok(())
    }
}

async fn run(shared: Arc<Shared>, p: Probed, mut set: ProbeSet) {
    loop {
        let Some(next) = set.next_due() else {
            return;
        };
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        match p.runtime.status(&p.id).await {
            Ok(s) if s.state == ContainerState::Running => {}
            _ => return,
        }
        let now = Instant::now();
        let mut changed = false;
        for kind in set.due(now) {
            let Some(spec) = set.spec(kind).cloned() else {
                continue;
            };
            let target = ProbeTarget {
                pod_ip: p.pod_ip,
                runtime: &*p.runtime,
                container: &p.id,
            };
            let result = probe::run(&spec, &target).await;
            if result.status != probe::ProbeStatus::Success {
                tracing::debug!(container = %p.id, probe = %kind, message = %result.message, "probe attempt failed");
            }
            match set.record(kind, Instant::now(), &result) {
                None => {}
                Some(ProbeAction::Ready(_)) | Some(ProbeAction::Started) => changed = true,
                Some(ProbeAction::Restart {
                    reason, message, ..
                }) => {
                    tracing::info!(container = %p.id, reason = reason.as_str(), message = %message, "probe failed past its threshold: restarting the container");
                    let mut view = initial_view(&set);
                    view.restart = Some(format!("{}: {message}", reason.as_str()));
                    shared.set_probe_view(p.id.as_str(), view);
                    shared.poke(&p.key).await;
                    // The verdict stands until the container is gone: no more attempts, and
                    // the task stays so that no new one starts over with a clean slate.
                    while matches!(p.runtime.status(&p.id).await, Ok(s) if s.state == ContainerState::Running)
                    {
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                    return;
                }
            }
        }
        if changed {
            shared.set_probe_view(p.id.as_str(), initial_view(&set));
            shared.poke(&p.key).await;
        }
    }
}
