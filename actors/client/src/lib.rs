//! How navarch's components reach the API: the [`Client`] trait, which the in-process client
//! (in the API server's crate: the request pipeline run under a component's identity) and the
//! HTTPS client both implement, so the controllers, the scheduler, the node agent and
//! `navctl` are written once against it.
//!
//! Objects travel as Kubernetes JSON (`serde_json::Value`), kinds as the typed entries of
//! `navarch_model::kinds`, errors as `Status`es ([`ApiError`]) whatever the transport.
//!
//! Where to start reading:
//! - [`Client`] (below) and its types;
//! - [`https`]: [`HttpsClient`], the trait over HTTPS, with [`kubeconfig`] loading;
//! - [`link`]: [`LinkClient`], the trait over a node's QUIC link to the masters, and the
//!   link's wire types (the API server's `nodelink` serves them);
//! - [`cache`]: shared watch caches ([`SharedCaches`], [`Cache`]), what controllers read;
//! - [`testing`]: an in-memory [`testing::FakeClient`] and a fault-injecting decorator;
//! - `contract` (feature `contract`): the scenarios every `Client` must pass.
//!
//! Architecture invariant: this crate knows nothing of the store or of the API server's
//! insides; it depends on the object model, and on `navarch-net` for the node link's QUIC.

pub mod cache;
#[cfg(feature = "contract")]
pub mod contract;
pub mod https;
pub mod kubeconfig;
pub mod kubelet;
pub mod link;
pub mod testing;

pub use cache::{Cache, CacheConfig, CacheEvent, Scope, SharedCaches, Subscription};
pub use https::{HttpsClient, HttpsConfig};
pub use kubeconfig::Kubeconfig;
pub use link::LinkClient;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use navarch_model::kinds::Kind;
use navarch_model::options::{
    DeleteOptions, GetOptions, ListOptions, Patch, WatchOptions, WriteOptions,
};
use navarch_model::watch::WatchEvent;
use navarch_model::ApiError;
use serde_json::Value;

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The API answered with a `Status` (403, 404, 409, 422, ...): the request was refused
    /// (or, for 5xx, failed) and, unless it says otherwise, changed nothing.
    #[error("{0}")]
    Api(ApiError),
    /// The request could not be carried (connection refused or lost, timeout). For a write
    /// the outcome is unknown: read before retrying.
    #[error("transport: {0}")]
    Transport(String),
    /// The answer could not be understood.
    #[error("undecodable response: {0}")]
    Decode(String),
}

impl ClientError {
    /// The HTTP code of an API error (`None` for transport and decode errors).
    pub fn code(&self) -> Option<u16> {
        match self {
            ClientError::Api(e) => Some(e.code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }

    pub fn is_forbidden(&self) -> bool {
        self.code() == Some(403)
    }

    /// The call could not be carried; for a write the outcome is unknown.
    pub fn is_transport(&self) -> bool {
        matches!(self, ClientError::Transport(_))
    }

    /// 410: the requested revision is compacted; a watcher must list again.
    pub fn is_gone(&self) -> bool {
        self.code() == Some(410)
    }
}

impl From<ApiError> for ClientError {
    fn from(e: ApiError) -> Self {
        ClientError::Api(e)
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// One page of a list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectList {
    pub items: Vec<Value>,
    /// The revision the list was read at (its `metadata.resourceVersion`).
    pub resource_version: String,
    /// Set when more items follow (`limit` was reached).
    pub continue_token: Option<String>,
    pub remaining_item_count: Option<u64>,
}

/// Events of one watch, in order. The stream ends (`None`) when the server ends the watch;
/// an `ERROR` event (e.g. 410 for a compacted revision) is the last one; a connection that
/// breaks ends it with `Err(ClientError::Transport)` (resume from the last revision seen).
pub type WatchStream = BoxStream<'static, Result<WatchEvent>>;

/// What a write returns: the object as stored (or as it would be with `dryRun`), and the
/// warnings the server sent (`Warning` headers over HTTP).
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
}

/// A subresource that [`Client::update`] and [`Client::patch`] can address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    Status,
    Scale,
    /// A Namespace's `finalize` (update only): its `spec.finalizers`.
    Finalize,
}

impl Subresource {
    pub fn as_str(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Finalize => "finalize",
        }
    }
}

/// The API, as every navarch component calls it.
///
/// `namespace` is `None` for cluster-scoped kinds and for lists and watches across all
/// namespaces. Every call is authorized, admitted, validated and audited by the API server
/// under the caller's identity, whichever implementation carries it.
///
/// Cancellation: dropping a returned future before it completes may still leave a write
/// done on the server (as with any remote call); reads are side-effect free.
pub trait Client: Send + Sync {
    /// GET one object.
    fn get<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        opts: &'a GetOptions,
    ) -> BoxFuture<'a, Result<Value>>;

    /// LIST objects.
    fn list<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        opts: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ObjectList>>;

    /// WATCH objects: resolves once the server has accepted the watch.
    fn watch<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        opts: &'a WatchOptions,
    ) -> BoxFuture<'a, Result<WatchStream>>;

    /// POST a new object (its namespace is the request's, for namespaced kinds).
    fn create<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        object: Value,
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Written>>;

    /// PUT an object, or its `status`, `scale` or (a Namespace's) `finalize` subresource. A
    /// `resourceVersion` in the body is a precondition (409 if the object moved).
    fn update<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        subresource: Option<Subresource>,
        object: Value,
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Written>>;

    /// PATCH an object, or its `status` or `scale` subresource.
    fn patch<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        subresource: Option<Subresource>,
        patch: Patch,
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Written>>;

    /// DELETE an object; returns it as it was deleted, or, when finalizers or a grace
    /// period hold it, as it is now (with its `deletionTimestamp`).
    fn delete<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        opts: &'a DeleteOptions,
    ) -> BoxFuture<'a, Result<Value>>;

    /// DELETE a collection: every object of `kind` in `namespace` that `list`'s selectors
    /// match, each as [`delete`](Client::delete) with `opts` would; returns the objects
    /// deleted or marked. Not atomic: an error may come after some were deleted.
    ///
    /// The default lists, then deletes one by one (what Kubernetes' namespace controller
    /// falls back to when a resource has no `deletecollection`); clients that can send the
    /// verb override it.
    fn delete_collection<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        list: &'a ListOptions,
        opts: &'a DeleteOptions,
    ) -> BoxFuture<'a, Result<ObjectList>> {
        Box::pin(async move {
            let mut found = self.list(kind, namespace, list).await?;
            let mut deleted = Vec::new();
            for obj in &found.items {
                let name = obj["metadata"]["name"].as_str().unwrap_or("");
                let ns = obj["metadata"]["namespace"].as_str().or(namespace);
                match self.delete(kind, ns, name, opts).await {
                    Ok(v) => deleted.push(v),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            found.items = deleted;
            found.continue_token = None;
            found.remaining_item_count = None;
            Ok(found)
        })
    }

    /// GET the `scale` subresource (an autoscaling/v1 `Scale`).
    fn get_scale<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Value>>;

    /// POST `pods/<pod>/binding`: assigns a pod to a node, once.
    fn bind<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        node: &'a str,
    ) -> BoxFuture<'a, Result<()>>;

    /// POST `serviceaccounts/<name>/token` with a TokenRequest (`spec.audiences`,
    /// `expirationSeconds`, `boundObjectRef`); returns the TokenRequest answered, its token
    /// in `status.token`.
    fn create_token<'a>(
        &'a self,
        namespace: &'a str,
        service_account: &'a str,
        request: Value,
    ) -> BoxFuture<'a, Result<Value>>;
}

/// The kind served under `group`/`version` as `plural` (a convenience over
/// [`navarch_model::kinds::lookup`] for callers that name kinds statically).
///
/// # Panics
/// If navarch does not serve that kind: a programming error, not an input error.
pub fn kind(group: &str, version: &str, plural: &str) -> &'static Kind {
    navarch_model::kinds::lookup(group, version, plural)
        .unwrap_or_else(|| panic!("navarch serves no {plural} in {group}/{version}"))
}
