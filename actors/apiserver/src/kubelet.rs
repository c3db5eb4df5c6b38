//! `pods/log` and `pods/exec`: the API server reaches the kubelet endpoint of the pod's
//! node over QUIC, as its master identity, expecting that node's serving certificate
//! (`ExpectedPeer::Node`), and proxies what it answers. Clients never reach a node.
//!
//! The pod names the node (`spec.nodeName`); the Node names its address (`status.addresses`,
//! InternalIP) and the endpoint's port (`status.daemonEndpoints.kubeletEndpoint.Port`). A
//! pod without a node, a node without an endpoint, and a node that cannot be reached are
//! answered with a `Status` before anything is streamed.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use navarch_client::kubelet::{
    self, ExecInput, ExecItem, ExecRequest, LogsItem, LogsRequest, NodeError,
};
use navarch_model::kinds::{self, Kind};
use navarch_model::status::Cause;
use navarch_model::ApiError;
use navarch_net::pki::ExpectedPeer;
use navarch_net::{Endpoint, PeerClient, RpcError};
use serde_json::Value;

use crate::storage::Storage;

/// How the channel of an exec is set up: what the client attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecStreams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// An exec that passed every check: the node is known and the request built. The HTTP layer
/// upgrades the connection and [`start`](Self::start)s it with the client's input.
pub struct ExecSession {
    pub streams: ExecStreams,
    client: PeerClient,
    request: ExecRequest,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession")
            .field("namespace", &self.request.namespace)
            .field("pod", &self.request.pod)
            .field("streams", &self.streams)
            .finish()
    }
}

impl ExecSession {
    /// Runs the command on the node, `input` (the client's stdin, its closing and its
    /// resizes) sent on as it comes; its items, ending with `Exit` or `Failed`. The end of
    /// `input` is the client gone.
    pub fn start(self, input: BoxStream<'static, ExecInput>) -> BoxStream<'static, ExecItem> {
        let ExecSession {
            client,
            request,
            runtime,
            ..
        } = self;
        let (tx, rx) = tokio::sync::mpsc::channel::<ExecItem>(16);
        runtime.spawn(async move {
            let items = client
                .duplex::<_, _, ExecItem>(kubelet::EXEC, &request, input)
                .await;
            let mut items = match items {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx
                        .send(ExecItem::Failed(unreachable(client.name(), &e)))
                        .await;
                    return;
                }
            };
            while let Some(item) = items.next().await {
                let item =
                    item.unwrap_or_else(|e| ExecItem::Failed(unreachable(client.name(), &e)));
                let last = matches!(item, ExecItem::Exit(_) | ExecItem::Failed(_));
                if tx.send(item).await.is_err() || last {
                    return;
                }
            }
            let _ = tx
                .send(ExecItem::Failed(NodeError {
                    code: 500,
                    reason: "InternalError".into(),
                    message: format!("node {} ended the exec without an exit code", client.name()),
                }))
                .await;
        });
        receiver_stream(rx)
    }
}

/// A channel's receiving end as a stream, ending when every sender is gone.
pub(crate) fn receiver_stream<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> BoxStream<'static, T> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) }).boxed()
}

fn unreachable(node: &str, e: &RpcError) -> NodeError {
    let err = node_unreachable(node, e);
    NodeError {
        code: err.code,
        reason: err.reason.to_string(),
        message: err.message.clone(),
    }
}

fn node_unreachable(node: &str, e: &RpcError) -> ApiError {
    ApiError::new(
        502,
        "BadGateway",
        format!("error dialing the kubelet of node {node:?}: {e}"),
    )
}

/// A node's refusal as the `Status` the client gets.
pub fn node_error(e: NodeError) -> ApiError {
    let reason = match e.code {
        400 => "BadRequest",
        404 => "NotFound",
        _ => "InternalError",
    };
    ApiError::new(e.code, reason, e.message)
}

fn flag(q: &[(String, String)], key: &str) -> bool {
    q.iter()
        .any(|(k, v)| k == key && matches!(v.as_str(), "true" | "1" | "True" | "TRUE"))
}

fn value<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn int(q: &[(String, String)], key: &str) -> Result<Option<i64>, ApiError> {
    match value(q, key) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!("{key}: invalid value {v:?}: not an integer"))
        }),
    }
}

fn invalid_options(field: &str, message: &str) -> ApiError {
    ApiError::invalid(
        "PodLogOptions",
        "",
        "",
        vec![Cause::invalid(field, message)],
    )
}

/// The container a request is for: the one named (which the pod must have), or the pod's
/// only one.
fn container_of(pod: &Value, asked: Option<&str>) -> Result<String, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (containers, init) = (names("containers"), names("initContainers"));
    match asked.filter(|c| !c.is_empty()) {
        Some(c) if containers.iter().chain(&init).any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => {
            let mut m = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !init.is_empty() {
                m.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(m))
        }
    }
}

/// Dials the kubelet of the pod's node.
async fn dial(
    endpoint: Option<&Endpoint>,
    storage: &Storage,
    pod: &Value,
    what: &str,
) -> Result<PeerClient, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let Some(node_name) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let Some(endpoint) = endpoint else {
        return Err(ApiError::unavailable(format!(
            "this API server cannot reach kubelets to serve {what} (no QUIC endpoint)"
        )));
    };
    let kind: &'static Kind = kinds::by_kind("Node").expect("the Node kind is served");
    let node = storage.get(kind, "", node_name, None).await.map_err(|e| {
        if e.code == 404 {
            ApiError::internal(format!(
                "node {node_name:?} of pod {name} is not registered: cannot serve {what}"
            ))
        } else {
            e
        }
    })?;
    dial_node(endpoint, &node, what)
}

/// Dials the kubelet endpoint `node` (a stored Node) reports.
fn dial_node(endpoint: &Endpoint, node: &Value, what: &str) -> Result<PeerClient, ApiError> {
    let node_name = node["metadata"]["name"].as_str().unwrap_or("");
    let addr = kubelet_addr(node).ok_or_else(|| {
        ApiError::internal(format!(
            "node {node_name:?} reports no kubelet endpoint (an InternalIP address and \
             status.daemonEndpoints.kubeletEndpoint.Port): it cannot serve {what}"
        ))
    })?;
    tracing::debug!(node = node_name, %addr, what, "dialing a kubelet");
    Ok(endpoint.peer(node_name, addr, ExpectedPeer::Node(node_name.to_string())))
}

/// One of a node's actor views (`kubelet.debug.actors` or `kubelet.debug.messages` with
/// `request`), as the JSON the node answers.
pub(crate) async fn node_debug<Req: serde::Serialize + Send + Sync + 'static>(
    endpoint: Option<&Endpoint>,
    runtime: &tokio::runtime::Handle,
    storage: &Storage,
    node_name: &str,
    method: &'static str,
    request: Req,
) -> Result<Value, ApiError> {
    let Some(endpoint) = endpoint else {
        return Err(ApiError::unavailable(
            "this API server cannot reach kubelets (no QUIC endpoint)",
        ));
    };
    let kind: &'static Kind = kinds::by_kind("Node").expect("the Node kind is served");
    let node = storage.get(kind, "", node_name, None).await?;
    let client = dial_node(endpoint, &node, "its actor views")?;
    let name = node_name.to_string();
    let text: String = runtime
        .spawn(async move { client.call::<Req, String>(method, &request).await })
        .await
        .map_err(|e| ApiError::internal(format!("kubelet call task failed: {e}")))?
        .map_err(|e| node_unreachable(&name, &e))?;
    serde_json::from_str(&text)
        .map_err(|e| ApiError::internal(format!("node {node_name:?} answered no JSON: {e}")))
}

/// The address of a Node's kubelet endpoint, if it reports one.
pub fn kubelet_addr(node: &Value) -> Option<SocketAddr> {
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64()?;
    let port = u16::try_from(port).ok().filter(|p| *p != 0)?;
    let ip: IpAddr = node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")?["address"]
        .as_str()?
        .parse()
        .ok()?;
    Some(SocketAddr::new(ip, port))
}

/// `GET pods/{name}/log`: the log as a stream of text chunks.
pub(crate) async fn logs(
    endpoint: Option<&Endpoint>,
    runtime: &tokio::runtime::Handle,
    storage: &Storage,
    pod_kind: &'static Kind,
    ns: &str,
    name: &str,
    q: &[(String, String)],
) -> Result<BoxStream<'static, Bytes>, ApiError> {
    let tail_lines = int(q, "tailLines")?;
    let since_seconds = int(q, "sinceSeconds")?;
    let limit_bytes = int(q, "limitBytes")?;
    let since_time = value(q, "sinceTime")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    if tail_lines.is_some_and(|n| n < 0) {
        return Err(invalid_options(
            "tailLines",
            "must be greater than or equal to 0",
        ));
    }
    if since_seconds.is_some_and(|n| n < 1) {
        return Err(invalid_options("sinceSeconds", "must be greater than 0"));
    }
    if limit_bytes.is_some_and(|n| n < 1) {
        return Err(invalid_options("limitBytes", "must be greater than 0"));
    }
    if since_seconds.is_some() && since_time.is_some() {
        return Err(invalid_options(
            "sinceSeconds",
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        ));
    }
    if let Some(t) = &since_time {
        if navarch_model::time::parse_rfc3339(t).is_none() {
            return Err(ApiError::bad_request(format!(
                "sinceTime: invalid value {t:?}: not an RFC 3339 time"
            )));
        }
    }
    let pod = storage.get(pod_kind, ns, name, None).await?;
    let container = container_of(&pod, value(q, "container"))?;
    let client = dial(endpoint, storage, &pod, "pods/log").await?;
    let req = LogsRequest {
        namespace: ns.to_string(),
        pod: name.to_string(),
        container: Some(container),
        follow: flag(q, "follow"),
        previous: flag(q, "previous"),
        timestamps: flag(q, "timestamps"),
        tail_lines,
        since_seconds,
        since_time,
        limit_bytes,
    };
    // The node's stream is read on the server's runtime (where the QUIC endpoint lives) and
    // handed over; the first item says whether the node took the request.
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<Result<(), ApiError>>();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    runtime.spawn(async move {
        let node = client.name().to_string();
        let mut items = match client.stream::<_, LogsItem>(kubelet::LOGS, &req).await {
            Ok(s) => s,
            Err(e) => {
                let _ = first_tx.send(Err(node_unreachable(&node, &e)));
                return;
            }
        };
        match items.next().await {
            Some(Ok(LogsItem::Ready)) => {
                if first_tx.send(Ok(())).is_err() {
                    return;
                }
            }
            Some(Ok(LogsItem::Failed(e))) => {
                let _ = first_tx.send(Err(node_error(e)));
                return;
            }
            Some(Ok(LogsItem::Chunk(_))) | None => {
                let _ = first_tx.send(Err(ApiError::internal(format!(
                    "node {node:?} answered the log request out of order"
                ))));
                return;
            }
            Some(Err(e)) => {
                let _ = first_tx.send(Err(node_unreachable(&node, &e)));
                return;
            }
        }
        loop {
            // A client that went while the node sends nothing still ends the node's stream.
            let item = tokio::select! {
                item = items.next() => item,
                _ = tx.closed() => return,
            };
            let Some(item) = item else { return };
            match item {
                Ok(LogsItem::Chunk(c)) => {
                    if tx.send(Bytes::from(c)).await.is_err() {
                        // The client went: dropping the stream stops the node's.
                        return;
                    }
                }
                Ok(LogsItem::Failed(e)) => {
                    tracing::warn!(node, error = %e.message, "the node failed while streaming a log");
                    return;
                }
                Ok(LogsItem::Ready) => {}
                Err(e) => {
                    tracing::warn!(node, error = %e, "the log stream from the node broke");
                    return;
                }
            }
        }
    });
    match first_rx.await {
        Ok(Ok(())) => Ok(receiver_stream(rx)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::internal("the log stream ended before it started")),
    }
}

/// `pods/{name}/exec` (GET or POST): checks the request, the pod and its node; the session
/// to run once the connection is upgraded.
pub(crate) async fn exec(
    endpoint: Option<&Endpoint>,
    runtime: &tokio::runtime::Handle,
    storage: &Storage,
    pod_kind: &'static Kind,
    ns: &str,
    name: &str,
    q: &[(String, String)],
) -> Result<ExecSession, ApiError> {
    let command: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let streams = ExecStreams {
        stdin: flag(q, "stdin"),
        stdout: flag(q, "stdout"),
        stderr: flag(q, "stderr"),
        tty: flag(q, "tty"),
    };
    if !streams.stdin && !streams.stdout && !streams.stderr {
        return Err(ApiError::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    let pod = storage.get(pod_kind, ns, name, None).await?;
    let container = container_of(&pod, value(q, "container"))?;
    let client = dial(endpoint, storage, &pod, "pods/exec").await?;
    Ok(ExecSession {
        streams: streams.clone(),
        client,
        request: ExecRequest {
            namespace: ns.to_string(),
            pod: name.to_string(),
            container: Some(container),
            command,
            stdin: streams.stdin,
            tty: streams.tty,
        },
        runtime: runtime.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_nodes_kubelet_address() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "127.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
        assert_eq!(
            kubelet_addr(&node),
            Some("127.0.0.5:10250".parse().unwrap())
        );
        let hollow = json!({"status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}}}});
        assert_eq!(kubelet_addr(&hollow), None);
        assert_eq!(kubelet_addr(&json!({})), None);
    }

    #[test]
    fn the_container_is_named_or_the_only_one() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(container_of(&pod, Some("b")).unwrap(), "b");
        assert_eq!(
            container_of(&pod, None).unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(
            container_of(&pod, Some("x")).unwrap_err().message,
            "container x is not valid for pod p"
        );
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(container_of(&one, None).unwrap(), "a");
    }
}
