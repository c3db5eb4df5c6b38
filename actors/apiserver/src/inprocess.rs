//! The in-process [`Client`]: a component of the master (a controller, the scheduler) calls
//! the API through the same pipeline as any HTTPS client, under its own identity,
//! authorized, admitted, validated and audited, without TLS and without encoding objects to
//! bytes. Its requests are bounded by their own limit, not by
//! HTTP's in-flight limits.

use futures::future::BoxFuture;
use futures::StreamExt;
use navarch_client::{Client, ClientError, ObjectList, Result, Subresource, WatchStream, Written};
use navarch_model::authz::User;
use navarch_model::kinds::Kind;
use navarch_model::options::{
    DeleteOptions, GetOptions, ListOptions, Patch, WatchOptions, WriteOptions,
};
use serde_json::{json, Value};

use crate::authn::Credentials;
use crate::request::{Body, Origin, Reply, RequestHead, Target};
use crate::ApiServer;

/// A client of `ApiServer` acting as one identity. Cheap to clone.
#[derive(Clone)]
pub struct InProcessClient {
    api: ApiServer,
    creds: Credentials,
    /// The Raft term this client's writes are fenced to (see [`InProcessClient::fenced`]).
    fence: Option<u64>,
}

impl std::fmt::Debug for InProcessClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.creds {
            Credentials::Component(u) => write!(f, "InProcessClient({})", u.name),
            Credentials::Presented { .. } => f.write_str("InProcessClient"),
        }
    }
}

/// The path an HTTPS request for the same target would have (for the audit record).
pub(crate) fn path_of(
    kind: &Kind,
    ns: Option<&str>,
    name: Option<&str>,
    sub: Option<&str>,
) -> String {
    let mut p = kind.gv_path();
    if let Some(ns) = ns.filter(|_| kind.namespaced) {
        p.push_str(&format!("/namespaces/{ns}"));
    }
    p.push('/');
    p.push_str(kind.plural);
    if let Some(n) = name {
        p.push_str(&format!("/{n}"));
    }
    if let Some(s) = sub {
        p.push_str(&format!("/{s}"));
    }
    p
}

fn unexpected(reply: Reply) -> ClientError {
    ClientError::Decode(format!("unexpected reply {reply:?}"))
}

impl InProcessClient {
    pub(crate) fn new(api: ApiServer, user: User) -> Self {
        InProcessClient {
            api,
            creds: Credentials::Component(user),
            fence: None,
        }
    }

    /// The same client with every store write of its requests fenced to the Raft term
    /// `term`: they commit only while the master that led in that term still leads (the
    /// control plane started for that term), and fail with 409 after a failover.
    pub fn fenced(mut self, term: u64) -> Self {
        self.fence = Some(term);
        self
    }

    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        verb: &'static str,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: Option<&str>,
        subresource: Option<&str>,
        query: Vec<(String, String)>,
        body: Body,
    ) -> Result<Reply> {
        let _permit = self
            .api
            .in_process_permits()
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ClientError::Transport("the API server is shutting down".into()))?;
        let namespace = namespace.filter(|_| kind.namespaced);
        let head = RequestHead {
            verb,
            origin: Origin::in_process(path_of(kind, namespace, name, subresource)),
            target: Target::Resource {
                kind,
                namespace: namespace.map(str::to_string),
                name: name.map(str::to_string),
                subresource: subresource.map(str::to_string),
            },
            query,
        };
        crate::fence::scope(self.fence, self.api.handle(&self.creds, head, body))
            .await
            .map_err(ClientError::Api)
    }

    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        verb: &'static str,
        kind: &'static Kind,
        namespace: Option<&str>,
        name: Option<&str>,
        sub: Option<Subresource>,
        query: Vec<(String, String)>,
        body: Body,
    ) -> Result<Written> {
        match self
            .call(
                verb,
                kind,
                namespace,
                name,
                sub.map(Subresource::as_str),
                query,
                body,
            )
            .await?
        {
            Reply::Object {
                object, warnings, ..
            } => Ok(Written { object, warnings }),
            other => Err(unexpected(other)),
        }
    }
}

impl Client for InProcessClient {
    fn get<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        opts: &'a GetOptions,
    ) -> BoxFuture<'a, Result<Value>> {
        Box::pin(async move {
            match self
                .call(
                    "get",
                    kind,
                    namespace,
                    Some(name),
                    None,
                    opts.to_query(),
                    Body::Empty,
                )
                .await?
            {
                Reply::Object { object, .. } => Ok(object),
                other => Err(unexpected(other)),
            }
        })
    }

    fn list<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        opts: &'a ListOptions,
    ) -> BoxFuture<'a, Result<ObjectList>> {
        Box::pin(async move {
            match self
                .call(
                    "list",
                    kind,
                    namespace,
                    None,
                    None,
                    opts.to_query(),
                    Body::Empty,
                )
                .await?
            {
                Reply::List { list, .. } => Ok(list),
                other => Err(unexpected(other)),
            }
        })
    }

    fn watch<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        opts: &'a WatchOptions,
    ) -> BoxFuture<'a, Result<WatchStream>> {
        Box::pin(async move {
            let mut query = opts.to_query();
            query.retain(|(k, _)| k != "watch");
            match self
                .call("watch", kind, namespace, None, None, query, Body::Empty)
                .await?
            {
                Reply::Watch { events, .. } => Ok(events.map(Ok).boxed()),
                other => Err(unexpected(other)),
            }
        })
    }

    fn create<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        object: Value,
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Written>> {
        Box::pin(self.write(
            "create",
            kind,
            namespace,
            None,
            None,
            opts.to_query(),
            Body::Value(object),
        ))
    }

    fn update<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        subresource: Option<Subresource>,
        object: Value,
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Written>> {
        Box::pin(self.write(
            "update",
            kind,
            namespace,
            Some(name),
            subresource,
            opts.to_query(),
            Body::Value(object),
        ))
    }

    fn patch<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        subresource: Option<Subresource>,
        patch: Patch,
        opts: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Written>> {
        Box::pin(self.write(
            "patch",
            kind,
            namespace,
            Some(name),
            subresource,
            opts.to_query(),
            Body::Patch(patch),
        ))
    }

    fn delete<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        name: &'a str,
        opts: &'a DeleteOptions,
    ) -> BoxFuture<'a, Result<Value>> {
        Box::pin(async move {
            match self
                .call(
                    "delete",
                    kind,
                    namespace,
                    Some(name),
                    None,
                    Vec::new(),
                    Body::Value(opts.to_json()),
                )
                .await?
            {
                Reply::Object { object, .. } => Ok(object),
                other => Err(unexpected(other)),
            }
        })
    }

    fn delete_collection<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: Option<&'a str>,
        list: &'a ListOptions,
        opts: &'a DeleteOptions,
    ) -> BoxFuture<'a, Result<ObjectList>> {
        Box::pin(async move {
            match self
                .call(
                    "deletecollection",
                    kind,
                    namespace,
                    None,
                    None,
                    list.to_query(),
                    Body::Value(opts.to_json()),
                )
                .await?
            {
                Reply::List { list, .. } => Ok(list),
                other => Err(unexpected(other)),
            }
        })
    }

    fn get_scale<'a>(
        &'a self,
        kind: &'static Kind,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Value>> {
        Box::pin(async move {
            match self
                .call(
                    "get",
                    kind,
                    Some(namespace),
                    Some(name),
                    Some("scale"),
                    Vec::new(),
                    Body::Empty,
                )
                .await?
            {
                Reply::Object { object, .. } => Ok(object),
                other => Err(unexpected(other)),
            }
        })
    }

    fn bind<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        node: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let pods = navarch_client::kind("", "v1", "pods");
            let binding = json!({
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": pod, "namespace": namespace},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            });
            self.call(
                "create",
                pods,
                Some(namespace),
                Some(pod),
                Some("binding"),
                Vec::new(),
                Body::Value(binding),
            )
            .await
            .map(|_| ())
        })
    }

    fn create_token<'a>(
        &'a self,
        namespace: &'a str,
        service_account: &'a str,
        request: Value,
    ) -> BoxFuture<'a, Result<Value>> {
        Box::pin(async move {
            match self
                .call(
                    "create",
                    navarch_client::kind("", "v1", "serviceaccounts"),
                    Some(namespace),
                    Some(service_account),
                    Some("token"),
                    Vec::new(),
                    Body::Value(request),
                )
                .await?
            {
                Reply::Object { object, .. } => Ok(object),
                other => Err(unexpected(other)),
            }
        })
    }
}
