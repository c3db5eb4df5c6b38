//! Watch events as typed values: what the API server's watches yield to every caller (the
//! HTTP layer encodes them; in-process watchers and watch caches consume them as they are).

use std::fmt;

use serde_json::{json, Value};

use crate::status::ApiError;

/// The annotation on the bookmark that ends the initial events of a watch-list.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// Kubernetes' watch event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
    /// No object changed: the watch has seen everything up to `metadata.resourceVersion`.
    Bookmark,
    /// The watch ends; the object is a `Status`.
    Error,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
            EventType::Bookmark => "BOOKMARK",
            EventType::Error => "ERROR",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        Some(match s {
            "ADDED" => EventType::Added,
            "MODIFIED" => EventType::Modified,
            "DELETED" => EventType::Deleted,
            "BOOKMARK" => EventType::Bookmark,
            "ERROR" => EventType::Error,
            _ => return None,
        })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One watch event: its type and its object (the object as stored, with its
/// `resourceVersion`; a bookmark's object carries only kind, apiVersion and metadata; an
/// error's object is a `Status`).
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    pub event_type: EventType,
    pub object: Value,
}

impl WatchEvent {
    pub fn new(event_type: EventType, object: Value) -> WatchEvent {
        WatchEvent { event_type, object }
    }

    /// A bookmark at `revision` for objects of `api_version`/`kind`; `initial_end` marks the
    /// end of a watch-list's initial events.
    pub fn bookmark(api_version: &str, kind: &str, revision: u64, initial_end: bool) -> Self {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            metadata["annotations"] = json!({INITIAL_EVENTS_END: "true"});
        }
        WatchEvent::new(
            EventType::Bookmark,
            json!({"kind": kind, "apiVersion": api_version, "metadata": metadata}),
        )
    }

    pub fn error(e: &ApiError) -> Self {
        WatchEvent::new(EventType::Error, e.to_status())
    }

    /// The revision this event brings the watcher to (its object's resourceVersion).
    pub fn revision(&self) -> Option<u64> {
        self.object["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|r| r.parse().ok())
    }

    /// Whether this is the bookmark that ends a watch-list's initial events.
    pub fn is_initial_events_end(&self) -> bool {
        self.event_type == EventType::Bookmark
            && self.object["metadata"]["annotations"][INITIAL_EVENTS_END] == "true"
    }

    /// Kubernetes' JSON form, `{"type": ..., "object": ...}`.
    pub fn to_json(&self) -> Value {
        json!({"type": self.event_type.as_str(), "object": self.object})
    }

    /// Reads the JSON form; `None` if it is not a watch event.
    pub fn from_json(v: Value) -> Option<WatchEvent> {
        let Value::Object(mut m) = v else { return None };
        let ty = EventType::parse(m.get("type")?.as_str()?)?;
        let object = m.remove("object")?;
        Some(WatchEvent::new(ty, object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_json_and_know_their_revision() {
        let e = WatchEvent::new(
            EventType::Modified,
            json!({"kind": "Pod", "metadata": {"name": "a", "resourceVersion": "12"}}),
        );
        assert_eq!(e.revision(), Some(12));
        assert_eq!(WatchEvent::from_json(e.to_json()), Some(e));
        let b = WatchEvent::bookmark("v1", "Pod", 40, true);
        assert!(b.is_initial_events_end());
        assert_eq!(b.revision(), Some(40));
        assert!(!WatchEvent::bookmark("v1", "Pod", 41, false).is_initial_events_end());
        assert_eq!(
            WatchEvent::from_json(json!({"type": "NOPE", "object": {}})),
            None
        );
        let err = WatchEvent::error(&ApiError::gone("too old"));
        assert_eq!(err.object["code"], 410);
    }
}
