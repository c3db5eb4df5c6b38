//! Actor paths (`/master/controllers/deployment/default/web`) and object keys (`default/web`).
//!
//! A path is a `/`-separated list of non-empty segments. It is the name an actor is known by in
//! the [`Registry`](crate::Registry), the [`MessageTap`](crate::MessageTap) and the debug
//! endpoints. Paths are cheap to clone (one shared allocation).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Serialize, Serializer};

/// Why a path or key could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A path must start with `/`.
    #[error("actor path {path:?} does not start with '/'")]
    NotAbsolute { path: String },
    /// Segments may not be empty (`//`) nor contain control characters.
    #[error("actor path {path:?} has an empty or invalid segment")]
    BadSegment { path: String },
    /// An object key is `name` or `namespace/name`, each part non-empty without `/`.
    #[error("object key {key:?} is not 'name' or 'namespace/name'")]
    BadKey { key: String },
}

/// The absolute path of an actor, such as `/node/n1/pods/default/web-7d4b9`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActorPath(Arc<str>);

impl ActorPath {
    /// The root path `/`.
    pub fn root() -> Self {
        ActorPath(Arc::from("/"))
    }

    /// Parses and normalises a path (a trailing `/` is dropped).
    pub fn parse(path: &str) -> Result<Self, PathError> {
        if !path.starts_with('/') {
            return Err(PathError::NotAbsolute {
                path: path.to_owned(),
            });
        }
        let trimmed = path.trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok(Self::root());
        }
        if trimmed[1..].split('/').any(|s| !valid_segment(s)) {
            return Err(PathError::BadSegment {
                path: path.to_owned(),
            });
        }
        Ok(ActorPath(Arc::from(trimmed)))
    }

    /// This path with `segment` appended; `segment` may itself contain `/` (as in `ns/name`).
    pub fn join(&self, segment: &str) -> Result<Self, PathError> {
        let segment = segment.trim_matches('/');
        if segment.is_empty() || segment.split('/').any(|s| !valid_segment(s)) {
            return Err(PathError::BadSegment {
                path: format!("{}/{}", self.0, segment),
            });
        }
        if self.is_root() {
            return Ok(ActorPath(Arc::from(format!("/{segment}"))));
        }
        Ok(ActorPath(Arc::from(format!("{}/{}", self.0, segment))))
    }

    /// The path of the actor owning `key` under this (supervisor) path.
    pub fn child(&self, key: &ObjectKey) -> Self {
        // A key's parts are validated when the key is built, so this cannot fail.
        let mut s = String::with_capacity(self.0.len() + key.to_string().len() + 1);
        if !self.is_root() {
            s.push_str(&self.0);
        }
        s.push('/');
        s.push_str(&key.to_string());
        ActorPath(Arc::from(s))
    }

    /// True for `/`.
    pub fn is_root(&self) -> bool {
        &*self.0 == "/"
    }

    /// The path as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared string, for records that keep it.
    pub fn shared(&self) -> Arc<str> {
        self.0.clone()
    }

    /// True if `self` is `prefix` or lies under it, segment-wise: `/a/b` is under `/a`, but
    /// `/a/b2` is not under `/a/b`.
    pub fn starts_with(&self, prefix: &ActorPath) -> bool {
        path_has_prefix(&self.0, &prefix.0)
    }
}

/// Segment-wise prefix test on raw strings (used for filters whose subject may not be an actor
/// path, such as QUIC peers recorded by the tap).
pub fn path_has_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_control() || c == '?' || c == '#')
}

impl fmt::Display for ActorPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ActorPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorPath({})", self.0)
    }
}

impl FromStr for ActorPath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActorPath::parse(s)
    }
}

impl Serialize for ActorPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// The identity of an object within its kind: `namespace/name`, or `name` for cluster-scoped
/// kinds such as Node.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    namespace: Option<String>,
    name: String,
}

impl ObjectKey {
    /// A namespaced key.
    pub fn namespaced(namespace: &str, name: &str) -> Result<Self, PathError> {
        let key = ObjectKey {
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
        };
        key.validate()
    }

    /// A cluster-scoped key.
    pub fn cluster(name: &str) -> Result<Self, PathError> {
        let key = ObjectKey {
            namespace: None,
            name: name.to_owned(),
        };
        key.validate()
    }

    fn validate(self) -> Result<Self, PathError> {
        let ok = |s: &str| valid_segment(s) && !s.contains('/');
        if ok(&self.name) && self.namespace.as_deref().is_none_or(ok) {
            Ok(self)
        } else {
            Err(PathError::BadKey {
                key: self.to_string(),
            })
        }
    }

    /// The namespace, if the kind is namespaced.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectKey({self})")
    }
}

impl FromStr for ObjectKey {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((ns, name)) => ObjectKey::namespaced(ns, name),
            None => ObjectKey::cluster(s),
        }
        .map_err(|_| PathError::BadKey { key: s.to_owned() })
    }
}

impl Serialize for ObjectKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_normalises_and_rejects() {
        assert_eq!(ActorPath::parse("/a/b/").unwrap().as_str(), "/a/b");
        assert!(ActorPath::parse("/").unwrap().is_root());
        assert!(matches!(
            ActorPath::parse("a/b"),
            Err(PathError::NotAbsolute { .. })
        ));
        assert!(matches!(
            ActorPath::parse("/a//b"),
            Err(PathError::BadSegment { .. })
        ));
    }

    #[test]
    fn prefix_is_segment_wise() {
        let p = ActorPath::parse("/master/controllers/deployment/default/web").unwrap();
        for yes in [
            "/",
            "/master",
            "/master/controllers/",
            "/master/controllers/deployment/default/web",
        ] {
            assert!(p.starts_with(&ActorPath::parse(yes).unwrap()), "{yes}");
        }
        for no in [
            "/master/control",
            "/node",
            "/master/controllers/deployment/default/we",
        ] {
            assert!(!p.starts_with(&ActorPath::parse(no).unwrap()), "{no}");
        }
        assert!(path_has_prefix("/a/b", ""));
    }

    #[test]
    fn keys_round_trip_and_build_child_paths() {
        let k: ObjectKey = "default/web".parse().unwrap();
        assert_eq!(k.namespace(), Some("default"));
        let n: ObjectKey = "n1".parse().unwrap();
        assert_eq!(n.namespace(), None);
        assert!("a/b/c".parse::<ObjectKey>().is_err());
        assert!("/x".parse::<ObjectKey>().is_err());
        let sup = ActorPath::parse("/master/controllers/deployment").unwrap();
        assert_eq!(
            sup.child(&k).as_str(),
            "/master/controllers/deployment/default/web"
        );
        assert_eq!(ActorPath::root().child(&n).as_str(), "/n1");
        assert_eq!(
            ActorPath::parse("/node")
                .unwrap()
                .join("n1/pods")
                .unwrap()
                .as_str(),
            "/node/n1/pods"
        );
    }
}
