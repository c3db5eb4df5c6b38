//! Events: what a controller wants recorded about an object, and the recorder's pure rules
//! (Kubernetes' event correlator): repeats of one event are counted on a single Event
//! object, and each source and object gets a token bucket so a hot loop cannot flood the
//! store.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::meta;

/// `Normal` or `Warning`, as `kubectl get events` shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The object an Event is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl ObjectRef {
    /// A reference to `obj`, whose `apiVersion` and `kind` are given (objects from the
    /// watch caches carry them, but callers know them statically).
    pub fn to(obj: &Value, api_version: &str, kind: &str) -> ObjectRef {
        ObjectRef {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            namespace: meta::namespace(obj).to_string(),
            name: meta::name(obj).to_string(),
            uid: meta::uid(obj).to_string(),
        }
    }
}

/// One thing worth telling users about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    pub involved: ObjectRef,
    pub type_: EventType,
    /// `ScalingReplicaSet`, `SuccessfulCreate`, `FailedScheduling`, ...
    pub reason: String,
    pub message: String,
}

impl EventSpec {
    pub fn normal(involved: ObjectRef, reason: &str, message: impl Into<String>) -> EventSpec {
        EventSpec {
            involved,
            type_: EventType::Normal,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    pub fn warning(involved: ObjectRef, reason: &str, message: impl Into<String>) -> EventSpec {
        EventSpec {
            involved,
            type_: EventType::Warning,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// What makes two events the same event (counted, not repeated).
    fn dedup_key(&self) -> (ObjectRef, EventType, String, String) {
        (
            self.involved.clone(),
            self.type_,
            self.reason.clone(),
            self.message.clone(),
        )
    }
}

/// What the recorder should write for one event.
#[derive(Clone, Debug, PartialEq)]
pub enum EventWrite {
    /// A new Event object (a create).
    Create(Value),
    /// A repeat: the Event named `name` in `namespace` now has `count` and `lastTimestamp`
    /// (a patch).
    Bump {
        namespace: String,
        name: String,
        count: u64,
        last_timestamp: String,
    },
    /// Over the rate limit: nothing is written.
    Dropped,
}

/// The recorder's memory: the Events it wrote (to count repeats) and one token bucket per
/// involved object.
#[derive(Debug)]
pub struct Correlator {
    component: String,
    host: String,
    seen: HashMap<(ObjectRef, EventType, String, String), (String, u64)>,
    buckets: HashMap<ObjectRef, (f64, i64)>,
    /// Burst size of each object's bucket.
    pub burst: f64,
    /// Tokens added per second.
    pub refill_per_sec: f64,
    /// How many distinct events are remembered before the oldest memory is dropped.
    pub max_remembered: usize,
}

impl Correlator {
    /// A recorder for `component` (`deployment-controller`) on `host` (the master).
    pub fn new(component: &str, host: &str) -> Correlator {
        Correlator {
            component: component.to_string(),
            host: host.to_string(),
            seen: HashMap::new(),
            buckets: HashMap::new(),
            // client-go's defaults: a burst of 25, then one every 5 minutes per object.
            burst: 25.0,
            refill_per_sec: 1.0 / 300.0,
            max_remembered: 4096,
        }
    }

    /// Decides what to write for `event` at `now`; `suffix` makes a new Event's name unique
    /// (Kubernetes uses the time in nanoseconds, in hex).
    pub fn record(&mut self, event: &EventSpec, now: i64, suffix: &str) -> EventWrite {
        let key = event.dedup_key();
        let ts = meta::format_rfc3339(now);
        if let Some((name, count)) = self.seen.get_mut(&key) {
            // Repeats are counted on the existing Event; they cost no token.
            *count += 1;
            return EventWrite::Bump {
                namespace: event_namespace(&event.involved),
                name: name.clone(),
                count: *count,
                last_timestamp: ts,
            };
        }
        let (tokens, at) = self
            .buckets
            .entry(event.involved.clone())
            .or_insert((self.burst, now));
        let refilled = (*tokens + (now - *at).max(0) as f64 * self.refill_per_sec).min(self.burst);
        if refilled < 1.0 {
            *tokens = refilled;
            *at = now;
            return EventWrite::Dropped;
        }
        *tokens = refilled - 1.0;
        *at = now;
        if self.seen.len() >= self.max_remembered {
            self.seen.clear();
        }
        let name = format!("{}.{}", event.involved.name, suffix);
        self.seen.insert(key, (name.clone(), 1));
        EventWrite::Create(self.event_object(event, &name, &ts))
    }

    fn event_object(&self, e: &EventSpec, name: &str, ts: &str) -> Value {
        let ns = event_namespace(&e.involved);
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "apiVersion": e.involved.api_version,
                "kind": e.involved.kind,
                "namespace": if e.involved.namespace.is_empty() { Value::Null } else { json!(e.involved.namespace) },
                "name": e.involved.name,
                "uid": e.involved.uid,
            },
            "reason": e.reason,
            "message": e.message,
            "type": e.type_.as_str(),
            "source": {"component": self.component, "host": self.host},
            "reportingComponent": self.component,
            "reportingInstance": self.host,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
        })
    }
}

/// Events about cluster-scoped objects (nodes) live in `default`, as in Kubernetes.
fn event_namespace(r: &ObjectRef) -> String {
    if r.namespace.is_empty() {
        "default".to_string()
    } else {
        r.namespace.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            namespace: "default".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        }
    }

    #[test]
    fn repeats_are_counted_on_one_event() {
        let mut c = Correlator::new("replicaset-controller", "m1");
        let e = EventSpec::normal(rs("web-1"), "SuccessfulCreate", "Created pod: web-1-x");
        let EventWrite::Create(obj) = c.record(&e, 100, "a") else {
            panic!("first event is created")
        };
        assert_eq!(obj["metadata"]["name"], "web-1.a");
        assert_eq!(obj["count"], 1);
        assert_eq!(obj["involvedObject"]["kind"], "ReplicaSet");
        assert_eq!(
            c.record(&e, 105, "b"),
            EventWrite::Bump {
                namespace: "default".into(),
                name: "web-1.a".into(),
                count: 2,
                last_timestamp: meta::format_rfc3339(105),
            }
        );
    }

    #[test]
    fn distinct_events_of_one_object_are_rate_limited() {
        let mut c = Correlator::new("x", "m1");
        c.burst = 2.0;
        c.refill_per_sec = 0.5;
        let ev = |i: u32| EventSpec::normal(rs("web"), "R", format!("message {i}"));
        assert!(matches!(c.record(&ev(1), 0, "1"), EventWrite::Create(_)));
        assert!(matches!(c.record(&ev(2), 0, "2"), EventWrite::Create(_)));
        assert_eq!(c.record(&ev(3), 0, "3"), EventWrite::Dropped);
        // Another object has its own bucket.
        let other = EventSpec::normal(rs("api"), "R", "m");
        assert!(matches!(c.record(&other, 0, "4"), EventWrite::Create(_)));
        // Two seconds refill one token.
        assert!(matches!(c.record(&ev(4), 2, "5"), EventWrite::Create(_)));
        assert_eq!(c.record(&ev(5), 2, "6"), EventWrite::Dropped);
    }

    #[test]
    fn node_events_live_in_default() {
        let mut c = Correlator::new("node-controller", "m1");
        let node = ObjectRef {
            api_version: "v1".into(),
            kind: "Node".into(),
            namespace: String::new(),
            name: "n1".into(),
            uid: "u".into(),
        };
        let EventWrite::Create(obj) =
            c.record(&EventSpec::normal(node, "NodeNotReady", "m"), 0, "s")
        else {
            panic!()
        };
        assert_eq!(obj["metadata"]["namespace"], "default");
        assert!(obj["involvedObject"]["namespace"].is_null());
    }
}
