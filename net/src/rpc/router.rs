//! The method router: several services share one endpoint, each mounted on a method prefix
//! (`store.*`, `raft.*`, later `node.*`, `logs.*`), before or after the endpoint is bound.
//!
//! A method is `<prefix>.<name>`; the router hands the whole method to the service mounted on
//! its prefix. A call to a prefix nothing is mounted on (yet) fails with
//! [`RpcError::Unavailable`], which callers may retry: a process mounts its services right
//! after it binds, so early callers only see this for a moment.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use super::{RpcError, Service, JOIN_METHOD, MASTER_JOIN_METHOD};

/// The prefix the endpoint itself serves (`net.join`); nothing may mount on it.
pub const RESERVED_PREFIX: &str = "net";

/// Why a service could not be mounted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    /// The prefix is empty or has characters outside `[a-z0-9_-]`.
    #[error("invalid method prefix {0:?}: expected [a-z0-9_-]+")]
    InvalidPrefix(String),
    /// The prefix belongs to the endpoint (`net.*`).
    #[error("method prefix {0:?} is reserved for the endpoint")]
    Reserved(String),
    /// Another service is mounted on the prefix.
    #[error("method prefix {0:?} is already mounted")]
    AlreadyMounted(String),
}

/// Maps method prefixes to services. Cheap to clone; clones share one table, so the binary
/// can bind an endpoint with a router and mount services on it later.
#[derive(Clone, Default)]
pub struct Router {
    routes: Arc<RwLock<BTreeMap<String, Arc<dyn Service>>>>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("prefixes", &self.prefixes())
            .finish()
    }
}

fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The prefix of `method`: the part before its first '.'.
pub(crate) fn prefix_of(method: &str) -> Option<&str> {
    method
        .split_once('.')
        .map(|(p, _)| p)
        .filter(|p| !p.is_empty())
}

impl Router {
    /// An empty router: every call fails with `Unavailable` until a service is mounted.
    pub fn new() -> Router {
        Router::default()
    }

    /// Serves every method `<prefix>.*` with `service` from now on.
    pub fn mount(&self, prefix: &str, service: Arc<dyn Service>) -> Result<(), MountError> {
        if !valid_prefix(prefix) {
            return Err(MountError::InvalidPrefix(prefix.chars().take(40).collect()));
        }
        if prefix == RESERVED_PREFIX {
            return Err(MountError::Reserved(prefix.to_string()));
        }
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        if routes.contains_key(prefix) {
            return Err(MountError::AlreadyMounted(prefix.to_string()));
        }
        routes.insert(prefix.to_string(), service);
        tracing::debug!(prefix, "service mounted");
        Ok(())
    }

    /// Stops serving `<prefix>.*`; later calls fail with `Unavailable`. Calls already
    /// dispatched finish. Returns the service that was mounted.
    pub fn unmount(&self, prefix: &str) -> Option<Arc<dyn Service>> {
        self.routes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(prefix)
    }

    /// The mounted prefixes, sorted.
    pub fn prefixes(&self) -> Vec<String> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The service for `method`, or the error its caller gets. `endpoint` names this
    /// endpoint in the error.
    pub(crate) fn route(&self, method: &str, endpoint: &str) -> Result<Arc<dyn Service>, RpcError> {
        let Some(prefix) = prefix_of(method) else {
            return Err(RpcError::Unsupported(format!(
                "method {method:?} has no prefix (methods are <prefix>.<name>)"
            )));
        };
        if prefix == RESERVED_PREFIX {
            return Err(RpcError::Unsupported(format!(
                "method {method} is not served (the endpoint serves only {JOIN_METHOD} and {MASTER_JOIN_METHOD} under net.*)"
            )));
        }
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(prefix)
            .cloned()
            .ok_or_else(|| {
                RpcError::Unavailable(format!(
                    "nothing serves {prefix}.* on {endpoint} (yet); retry"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::future::BoxFuture;

    use super::*;
    use crate::CallContext;

    struct Named(&'static str);

    impl Service for Named {
        fn call(
            &self,
            _ctx: CallContext,
            _method: String,
            _body: Bytes,
        ) -> BoxFuture<'static, Result<Bytes, RpcError>> {
            let name = self.0;
            Box::pin(async move { Ok(Bytes::from(name)) })
        }
    }

    #[test]
    fn mounts_validate_their_prefix() {
        let r = Router::new();
        assert_eq!(
            r.mount("", Arc::new(Named("x"))),
            Err(MountError::InvalidPrefix(String::new()))
        );
        assert!(matches!(
            r.mount("Store.", Arc::new(Named("x"))),
            Err(MountError::InvalidPrefix(_))
        ));
        assert_eq!(
            r.mount("net", Arc::new(Named("x"))),
            Err(MountError::Reserved("net".into()))
        );
        r.mount("store", Arc::new(Named("store"))).unwrap();
        assert_eq!(
            r.mount("store", Arc::new(Named("other"))),
            Err(MountError::AlreadyMounted("store".into()))
        );
        r.mount("raft", Arc::new(Named("raft"))).unwrap();
        assert_eq!(r.prefixes(), vec!["raft".to_string(), "store".to_string()]);
    }

    #[test]
    fn routes_by_prefix_and_explains_misses() {
        let r = Router::new();
        let miss = r.route("store.get", "m1").err().unwrap();
        assert!(
            matches!(&miss, RpcError::Unavailable(m) if m.contains("store.*") && m.contains("m1"))
        );
        assert!(miss.is_retryable());
        let clone = r.clone();
        clone.mount("store", Arc::new(Named("store"))).unwrap();
        assert!(r.route("store.get", "m1").is_ok());
        assert!(matches!(
            r.route("nodot", "m1"),
            Err(RpcError::Unsupported(_))
        ));
        assert!(matches!(r.route(".x", "m1"), Err(RpcError::Unsupported(_))));
        assert!(matches!(
            r.route("net.other", "m1"),
            Err(RpcError::Unsupported(_))
        ));
        assert!(r.unmount("store").is_some());
        assert!(matches!(
            r.route("store.get", "m1"),
            Err(RpcError::Unavailable(_))
        ));
    }
}
