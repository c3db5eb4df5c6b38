//! What a node is told at start: its resources (`cpu=4,memory=8Gi,pods=110`), its labels
//! (`k=v,...`) and the timing of its heartbeats, parsed from the command line's text.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::AgentError;

/// The resources a hollow node reports (capacity and allocatable alike) unless told others.
pub const DEFAULT_CAPACITY: &str = "cpu=4,memory=8Gi,pods=110";

/// A node's resources: name to Kubernetes quantity (`cpu` → `4`, `memory` → `8Gi`).
pub type Resources = BTreeMap<String, String>;

/// Parses `name=value,...` pairs; an empty text is no pair.
fn pairs(what: &str, text: &str) -> Result<BTreeMap<String, String>, AgentError> {
    let mut out = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| AgentError::Config {
            what: what.to_string(),
            reason: format!("{part:?} is not name=value"),
        })?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(AgentError::Config {
                what: what.to_string(),
                reason: format!("{part:?} has no name"),
            });
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(AgentError::Config {
                what: what.to_string(),
                reason: format!("{k:?} is given twice"),
            });
        }
    }
    Ok(out)
}

/// `cpu=4,memory=8Gi,pods=110`: the resources not named keep their defaults
/// ([`DEFAULT_CAPACITY`]). A quantity is digits with an optional fraction and suffix
/// (`500m`, `1.5`, `8Gi`, `1e3`); the API server checks it further.
pub fn parse_capacity(text: &str) -> Result<Resources, AgentError> {
    let mut out = pairs("--capacity", DEFAULT_CAPACITY)?;
    for (k, v) in pairs("--capacity", text)? {
        let quantity = v.starts_with(|c: char| c.is_ascii_digit())
            && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
        if !quantity {
            return Err(AgentError::Config {
                what: "--capacity".into(),
                reason: format!("{k}={v:?} is not a quantity"),
            });
        }
        out.insert(k, v);
    }
    Ok(out)
}

/// `k=v,...` labels (the API server validates keys and values).
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, AgentError> {
    pairs("--labels", text)
}

/// How often a node speaks up, and what its lease promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How often the Lease is renewed (the kubelet's default: a quarter of its duration).
    pub lease_renew: Duration,
    /// The Lease's `leaseDurationSeconds`.
    pub lease_duration: Duration,
    /// How often the Node's Ready condition gets a new `lastHeartbeatTime` (the Lease is the
    /// heartbeat that matters; this one is the status' own).
    pub status_update: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_renew: Duration::from_secs(10),
            lease_duration: Duration::from_secs(40),
            status_update: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_keeps_defaults_for_what_it_does_not_name() {
        let c = parse_capacity("").unwrap();
        assert_eq!(c["cpu"], "4");
        assert_eq!(c["memory"], "8Gi");
        assert_eq!(c["pods"], "110");
        let c = parse_capacity("cpu=500m, pods=20,ephemeral-storage=100Gi").unwrap();
        assert_eq!(c["cpu"], "500m");
        assert_eq!(c["memory"], "8Gi");
        assert_eq!(c["pods"], "20");
        assert_eq!(c["ephemeral-storage"], "100Gi");
        for bad in [
            "cpu",
            "cpu=",
            "cpu=four",
            "=4",
            "cpu=1,cpu=2",
            "memory=8 Gi",
        ] {
            assert!(parse_capacity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_are_pairs() {
        let l = parse_labels("zone=a,navarch.io/pool=hollow").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l["navarch.io/pool"], "hollow");
        assert_eq!(parse_labels("").unwrap().len(), 0);
        assert_eq!(parse_labels("empty=").unwrap()["empty"], "");
        assert!(parse_labels("novalue").is_err());
    }
}
