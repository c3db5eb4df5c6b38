//! The serving side of an endpoint: accept connections, identify the caller from its
//! certificate, and answer each stream (authorization, faults, correlation, tap).

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use quinn::{RecvStream, SendStream};

use super::wire::{self, RequestKind, Response, Writer};
use super::{join, peer_identity, tls, EpInner, RpcError, Timing};
use crate::codec::FrameError;
use crate::fault::{FaultDirection, Verdict};
use crate::pki::{PeerIdentity, ORG_NODES};
use crate::trace::{with_correlation, CorrelationId, Direction};

/// Longest time a request swallowed by a fault is held unanswered.
const HOLD_MAX: Duration = Duration::from_secs(600);

/// Who is on the other end of one connection.
struct ConnInfo {
    peer: Option<PeerIdentity>,
    remote: SocketAddr,
    /// CN, or "unauthenticated".
    label: String,
}

/// What to tell an operator whose peer presented a certificate of another CA: the usual cause
/// is masters started with `--initial-cluster` that each made their own CA.
fn foreign_ca_hint(error: &str) -> &'static str {
    if error.contains("BadSignature") || error.contains("UnknownIssuer") {
        "the peer's certificate is not from this cluster's CA: masters must share one CA \
         (navctl pki-init and --ca-dir) or join with --join and the first master's server token"
    } else {
        ""
    }
}

pub(super) async fn accept_loop(ep: Arc<EpInner>) {
    while let Some(incoming) = ep.quinn.accept().await {
        tokio::spawn(serve_connection(ep.clone(), incoming));
    }
    tracing::debug!(name = %ep.name, "accept loop ended");
}

async fn serve_connection(ep: Arc<EpInner>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            match ep.handshake_log.admit(std::time::Instant::now()) {
                Some(suppressed) => {
                    let hint = foreign_ca_hint(&e.to_string());
                    tracing::warn!(name = %ep.name, %remote, error = %e, suppressed, hint, "handshake failed")
                }
                None => tracing::debug!(name = %ep.name, %remote, error = %e, "handshake failed"),
            }
            return;
        }
    };
    let peer = match peer_identity(&conn) {
        Ok(p) => p,
        Err(reason) => {
            tracing::warn!(name = %ep.name, %remote, %reason, "cannot read the peer certificate; closing");
            conn.close(wire::CODE_BAD_REQUEST, b"unreadable certificate");
            return;
        }
    };
    // Nodes (and anonymous joiners) keep the small stream limit every connection starts
    // with; masters, members and admins get the large one.
    if peer
        .as_ref()
        .is_some_and(|p| !p.organizations.iter().any(|o| o == ORG_NODES))
    {
        conn.set_max_concurrent_bi_streams(quinn::VarInt::from_u32(tls::MAX_BIDI_STREAMS));
    }
    let label = peer
        .as_ref()
        .map(|p| p.common_name.clone())
        .unwrap_or_else(|| "unauthenticated".to_string());
    tracing::debug!(name = %ep.name, %remote, peer = %label, "connection accepted");
    let info = Arc::new(ConnInfo {
        peer,
        remote,
        label,
    });
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(serve_stream(ep.clone(), info.clone(), send, recv));
            }
            Err(e) => {
                tracing::debug!(name = %ep.name, %remote, peer = %info.label, error = %e, "connection ended");
                break;
            }
        }
    }
}

/// Keeps a request unanswered until the caller gives up (or the connection dies), then
/// resets the stream.
async fn hold_unanswered(w: &mut Writer) {
    let stopped = w.get_ref().stopped();
    let _ = tokio::time::timeout(HOLD_MAX, stopped).await;
    let _ = w.get_mut().reset(wire::CODE_CUT);
}

async fn serve_stream(ep: Arc<EpInner>, info: Arc<ConnInfo>, send: SendStream, recv: RecvStream) {
    let timing = Timing::start();
    let max = ep.max_frame;
    let (mut w, mut r) = wire::framed(send, recv, max);

    let first = r.next().await;
    let frame = match first {
        None => return,
        Some(Err(FrameError::TooLarge { size, max })) => {
            let err = RpcError::FrameTooLarge { size, max };
            tracing::warn!(name = %ep.name, remote = %info.remote, peer = %info.label, size, max, "request frame too large; refusing this stream");
            let _ = wire::send_response(&mut w, Response::Err(err.clone()), max).await;
            let _ = w.get_mut().finish();
            let _ = r.get_mut().stop(wire::CODE_TOO_LARGE);
            ep.record::<()>(
                Direction::Inbound,
                &info.label,
                "<unknown>",
                size,
                &timing,
                &Err(err),
                None,
            );
            return;
        }
        Some(Err(FrameError::Io(e))) => {
            tracing::debug!(name = %ep.name, remote = %info.remote, error = %e, "request read failed");
            return;
        }
        Some(Ok(f)) => f,
    };
    let size = frame.len();
    let (header, body) = match wire::decode_request(frame) {
        Ok(x) => x,
        Err(err) => {
            tracing::warn!(name = %ep.name, remote = %info.remote, peer = %info.label, error = %err, "undecodable request");
            let _ = wire::send_response(&mut w, Response::Err(err.clone()), max).await;
            let _ = w.get_mut().finish();
            ep.record::<()>(
                Direction::Inbound,
                &info.label,
                "<unknown>",
                size,
                &timing,
                &Err(err),
                None,
            );
            return;
        }
    };
    // A duplex call's input follows its request; every other caller has finished its side.
    let input = (header.kind == RequestKind::Duplex).then(|| wire::input_stream(r));
    let method = header.method;
    let correlation = header.correlation;

    match ep.faults.verdict(&info.label, FaultDirection::Inbound) {
        Verdict::Pass => {}
        Verdict::Delay(d) => tokio::time::sleep(d).await,
        v @ (Verdict::Cut | Verdict::Drop) => {
            tracing::debug!(name = %ep.name, peer = %info.label, %method, verdict = ?v, "inbound request swallowed by fault injection");
            ep.record::<()>(
                Direction::Inbound,
                &info.label,
                &method,
                size,
                &timing,
                &Err(RpcError::Unreachable(
                    "dropped by fault injection".to_string(),
                )),
                correlation,
            );
            hold_unanswered(&mut w).await;
            return;
        }
    }

    let anonymous_ok = method == join::JOIN_METHOD || method == join::MASTER_JOIN_METHOD;
    if info.peer.is_none() && !anonymous_ok {
        let err = RpcError::Refused(format!("method {method} requires a client certificate"));
        match ep.anonymous_log.admit(std::time::Instant::now()) {
            Some(suppressed) => {
                tracing::warn!(name = %ep.name, remote = %info.remote, method = ?method, suppressed, "refused a call without a client certificate")
            }
            None => {
                tracing::debug!(name = %ep.name, remote = %info.remote, method = ?method, "refused a call without a client certificate")
            }
        }
        let _ = wire::send_response(&mut w, Response::Err(err.clone()), max).await;
        let _ = w.get_mut().finish();
        ep.record::<()>(
            Direction::Inbound,
            &info.label,
            &method,
            size,
            &timing,
            &Err(err),
            correlation,
        );
        return;
    }

    let ctx = super::CallContext {
        peer: info.peer.clone(),
        remote: info.remote,
        correlation,
    };

    match header.kind {
        RequestKind::Call => {
            let result = if method == join::JOIN_METHOD {
                join::serve_join(&ep, &ctx, body).await
            } else if method == join::MASTER_JOIN_METHOD {
                join::serve_master_join(&ep, &ctx, body).await
            } else {
                run_call(&ep, ctx, method.clone(), body).await
            };
            ep.record(
                Direction::Inbound,
                &info.label,
                &method,
                size,
                &timing,
                &result,
                correlation,
            );
            let resp = match result {
                Ok(b) => Response::Ok(b),
                Err(e) => Response::Err(e),
            };
            if let Err(e) = wire::send_response(&mut w, resp, max).await {
                tracing::debug!(name = %ep.name, peer = %info.label, %method, error = %e, "answer not delivered");
            }
            let _ = w.get_mut().finish();
        }
        RequestKind::Stream | RequestKind::Duplex => {
            let work = serve_server_stream(
                ep.clone(),
                info.clone(),
                w,
                method,
                size,
                timing,
                ctx,
                body,
                input,
            );
            match correlation {
                Some(id) => with_correlation(id, work).await,
                None => work.await,
            }
        }
    }
}

async fn in_scope<F: std::future::Future>(id: Option<CorrelationId>, f: F) -> F::Output {
    match id {
        Some(id) => with_correlation(id, f).await,
        None => f.await,
    }
}

/// The service mounted for `method`'s prefix.
fn route(ep: &EpInner, method: &str) -> Result<Arc<dyn super::Service>, RpcError> {
    match &ep.router {
        Some(router) => router.route(method, &ep.name),
        None => Err(RpcError::Unsupported(format!(
            "endpoint {} serves no methods",
            ep.name
        ))),
    }
}

async fn run_call(
    ep: &EpInner,
    ctx: super::CallContext,
    method: String,
    body: Bytes,
) -> Result<Bytes, RpcError> {
    let service = route(ep, &method)?;
    let correlation = ctx.correlation;
    let m = method.clone();
    let fut = AssertUnwindSafe(async move { service.call(ctx, m, body).await }).catch_unwind();
    match in_scope(correlation, fut).await {
        Ok(r) => r,
        Err(_) => {
            tracing::error!(name = %ep.name, %method, "handler panicked");
            Err(RpcError::Remote(format!("handler for {method} panicked")))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_server_stream(
    ep: Arc<EpInner>,
    info: Arc<ConnInfo>,
    mut w: Writer,
    method: String,
    size: usize,
    timing: Timing,
    ctx: super::CallContext,
    body: Bytes,
    input: Option<BoxStream<'static, Result<Bytes, RpcError>>>,
) {
    let max = ep.max_frame;
    let correlation = ctx.correlation;
    let opened: Result<BoxStream<'static, Result<Bytes, RpcError>>, RpcError> =
        match route(&ep, &method) {
            Err(e) => Err(e),
            Ok(service) => {
                let m = method.clone();
                let open = async move {
                    match input {
                        Some(input) => service.duplex(ctx, m, body, input).await,
                        None => service.stream(ctx, m, body).await,
                    }
                };
                match AssertUnwindSafe(open).catch_unwind().await {
                    Ok(r) => r,
                    Err(_) => {
                        tracing::error!(name = %ep.name, %method, "stream handler panicked");
                        Err(RpcError::Remote(format!("handler for {method} panicked")))
                    }
                }
            }
        };
    ep.record(
        Direction::Inbound,
        &info.label,
        &method,
        size,
        &timing,
        &opened,
        correlation,
    );
    let mut items = match opened {
        Ok(s) => s,
        Err(e) => {
            let _ = wire::send_response(&mut w, Response::Err(e), max).await;
            let _ = w.get_mut().finish();
            return;
        }
    };
    if wire::send_response(&mut w, Response::Ok(Bytes::new()), max)
        .await
        .is_err()
    {
        return;
    }
    let mut fault_rx = ep.faults.subscribe();
    let stopped = w.get_ref().stopped();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            item = AssertUnwindSafe(items.next()).catch_unwind() => {
                let resp = match item {
                    Ok(Some(Ok(b))) => Response::Item(b),
                    Ok(Some(Err(e))) => Response::Err(e),
                    Ok(None) => {
                        let _ = wire::send_response(&mut w, Response::End, max).await;
                        let _ = w.get_mut().finish();
                        tracing::debug!(name = %ep.name, peer = %info.label, %method, "stream finished");
                        return;
                    }
                    Err(_) => {
                        tracing::error!(name = %ep.name, %method, "stream handler panicked");
                        let _ = wire::send_response(&mut w, Response::Err(RpcError::Remote(format!("handler for {method} panicked"))), max).await;
                        let _ = w.get_mut().finish();
                        return;
                    }
                };
                if let Err(e) = wire::send_response(&mut w, resp, max).await {
                    tracing::debug!(name = %ep.name, peer = %info.label, %method, error = %e, "stream item not delivered; ending stream");
                    return;
                }
            }
            _ = &mut stopped => {
                tracing::debug!(name = %ep.name, peer = %info.label, %method, "caller stopped the stream");
                return;
            }
            changed = fault_rx.changed() => {
                if changed.is_err() || ep.faults.is_cut(&info.label, FaultDirection::Inbound) {
                    tracing::debug!(name = %ep.name, peer = %info.label, %method, "stream cut by fault injection");
                    let _ = w.get_mut().reset(wire::CODE_CUT);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::foreign_ca_hint;

    #[test]
    fn a_certificate_of_another_ca_gets_a_hint() {
        let hint = foreign_ca_hint(
            "the cryptographic handshake failed: error 42: invalid peer certificate: BadSignature",
        );
        assert!(hint.contains("--join"), "{hint}");
        assert!(foreign_ca_hint("invalid peer certificate: UnknownIssuer").contains("share one CA"));
        assert_eq!(foreign_ca_hint("timed out"), "");
    }
}
