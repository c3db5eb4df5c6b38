//! `pods/exec` over a WebSocket (RFC 6455), as kubectl 1.30+ speaks it first: the
//! `v5.channel.k8s.io` subprotocol (and `v4.channel.k8s.io`), binary messages whose first
//! byte is the channel (0 stdin, 1 stdout, 2 stderr, 3 error: a `Status`, 4 resize; v5 adds
//! 255, closing the channel named by the next byte).
//!
//! The upgrade is actix-web's own: a 101 response with a streaming body, the request's
//! payload carrying the client's frames after the handshake; the framing is ours (small,
//! and the handshake's SHA-1 is ring's). The command starts on the node at once; the
//! client's stdin, its closing (v5's close-channel message) and its terminal's resizes
//! (`{"Width": w, "Height": h}` on channel 4) go to it as they come, while its output, exit
//! status and a close frame come back. A close frame or the end of the connection ends the
//! input: end of file, or with a TTY a hang-up.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use navarch_client::kubelet::{ExecInput, ExecItem, MAX_STDIN};
use serde_json::json;

use crate::kubelet::ExecSession;

/// The subprotocols served, most preferred first.
pub const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
/// A terminal's size: `{"Width": columns, "Height": rows}`.
pub const RESIZE: u8 = 4;
/// v5: `[255, channel]` closes `channel`.
pub const CLOSE: u8 = 255;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
/// The largest message taken from a client.
const MAX_MESSAGE: usize = MAX_STDIN + 1;

fn has_token(req: &HttpRequest, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// The subprotocol of a WebSocket upgrade we serve, if the request is one.
pub fn negotiate(req: &HttpRequest) -> Option<&'static str> {
    if !has_token(req, header::UPGRADE, "websocket")
        || !has_token(req, header::CONNECTION, "upgrade")
        || !req.headers().contains_key(header::SEC_WEBSOCKET_KEY)
    {
        return None;
    }
    let offered: Vec<String> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(',').map(|t| t.trim().to_string()))
        .collect();
    PROTOCOLS
        .iter()
        .copied()
        .find(|p| offered.iter().any(|o| o == p))
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ctx.finish().as_ref())
}

/// One unmasked (server) frame.
pub fn frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 10);
    out.extend_from_slice(&[0x80 | opcode]);
    match payload.len() {
        n if n < 126 => out.extend_from_slice(&[n as u8]),
        n if n <= 0xFFFF => {
            out.extend_from_slice(&[126]);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.extend_from_slice(&[127]);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out.freeze()
}

/// A binary message on `channel`.
pub fn channel_frame(channel: u8, data: &[u8]) -> Bytes {
    let mut payload = Vec::with_capacity(data.len() + 1);
    payload.push(channel);
    payload.extend_from_slice(data);
    frame(OP_BINARY, &payload)
}

/// A whole message from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    Binary(Vec<u8>),
    Text(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    Close,
}

/// Parses a client's (masked) frames into messages, joining fragments.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: BytesMut,
    fragments: Option<(u8, Vec<u8>)>,
}

impl FrameReader {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, String> {
        loop {
            let b = &self.buf[..];
            if b.len() < 2 {
                return Ok(None);
            }
            let (fin, opcode) = (b[0] & 0x80 != 0, b[0] & 0x0F);
            let masked = b[1] & 0x80 != 0;
            let (len, mut at) = match b[1] & 0x7F {
                126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as u64, 4),
                127 if b.len() >= 10 => {
                    let mut n = [0u8; 8];
                    n.copy_from_slice(&b[2..10]);
                    (u64::from_be_bytes(n), 10)
                }
                126 | 127 => return Ok(None),
                n => (n as u64, 2),
            };
            if !masked {
                return Err("a client frame is not masked".into());
            }
            if len > MAX_MESSAGE as u64 {
                return Err(format!("a frame of {len} bytes is over the limit"));
            }
            if b.len() < at + 4 + len as usize {
                return Ok(None);
            }
            let mask = [b[at], b[at + 1], b[at + 2], b[at + 3]];
            at += 4;
            let payload: Vec<u8> = b[at..at + len as usize]
                .iter()
                .enumerate()
                .map(|(i, x)| x ^ mask[i % 4])
                .collect();
            self.buf.advance(at + len as usize);
            let message = match opcode {
                OP_PING => Message::Ping(payload),
                OP_PONG => Message::Pong,
                OP_CLOSE => Message::Close,
                OP_CONTINUATION => {
                    let Some((op, mut data)) = self.fragments.take() else {
                        return Err("a continuation frame without a first frame".into());
                    };
                    data.extend_from_slice(&payload);
                    if data.len() > MAX_MESSAGE {
                        return Err("a fragmented message is over the limit".into());
                    }
                    if !fin {
                        self.fragments = Some((op, data));
                        continue;
                    }
                    whole(op, data)
                }
                OP_TEXT | OP_BINARY if !fin => {
                    self.fragments = Some((opcode, payload));
                    continue;
                }
                OP_TEXT | OP_BINARY => whole(opcode, payload),
                other => return Err(format!("unknown opcode {other:#x}")),
            };
            return Ok(Some(message));
        }
    }
}

fn whole(opcode: u8, data: Vec<u8>) -> Message {
    if opcode == OP_TEXT {
        Message::Text(data)
    } else {
        Message::Binary(data)
    }
}

/// The error channel's `Status` for how the command ended.
pub fn exit_status(code: i32) -> serde_json::Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: exit status {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// Answers an upgraded exec: 101 now, the session on the connection from then on.
pub fn respond(
    req: &HttpRequest,
    payload: web::Payload,
    session: ExecSession,
    protocol: &'static str,
) -> HttpResponse {
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().to_vec())
        .unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    actix_web::rt::spawn(run(payload, session, protocol == PROTOCOLS[0], tx));
    let frames = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, actix_web::Error>(b), rx))
    });
    let mut r = HttpResponse::SwitchingProtocols();
    r.upgrade("websocket");
    if let Ok(v) = HeaderValue::from_str(&accept_key(&key)) {
        r.insert_header((header::SEC_WEBSOCKET_ACCEPT, v));
    }
    r.insert_header((header::SEC_WEBSOCKET_PROTOCOL, protocol));
    r.streaming(frames)
}

/// What one of the client's messages asks of the exec.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientSays {
    Input(ExecInput),
    Pong(Vec<u8>),
    /// The client closed the connection: its input ends.
    Close,
    Nothing,
}

/// Reads one message of the client's. `Err` is a message the exec refuses.
pub fn client_says(m: Message, stdin: bool) -> Result<ClientSays, String> {
    Ok(match m {
        Message::Binary(data) => match data.split_first() {
            Some((&STDIN, rest)) if stdin => {
                if rest.len() > MAX_STDIN {
                    return Err(format!(
                        "a stdin message is over the limit of {MAX_STDIN} bytes"
                    ));
                }
                ClientSays::Input(ExecInput::Stdin(rest.to_vec()))
            }
            Some((&CLOSE, [STDIN, ..])) => ClientSays::Input(ExecInput::CloseStdin),
            Some((&RESIZE, size)) => {
                let v: serde_json::Value = serde_json::from_slice(size)
                    .map_err(|e| format!("a terminal size is not JSON: {e}"))?;
                let dim = |k: &str| {
                    v[k].as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or_else(|| {
                            format!("a terminal size needs {k} as a number of 0 to 65535: {v}")
                        })
                };
                ClientSays::Input(ExecInput::Resize {
                    width: dim("Width")?,
                    height: dim("Height")?,
                })
            }
            _ => ClientSays::Nothing,
        },
        Message::Ping(p) => ClientSays::Pong(p),
        Message::Close => ClientSays::Close,
        Message::Text(_) | Message::Pong => ClientSays::Nothing,
    })
}

fn refusal(message: String) -> Bytes {
    let status = json!({"metadata": {}, "status": "Failure", "message": message, "reason": "BadRequest", "code": 400});
    channel_frame(ERROR, status.to_string().as_bytes())
}

async fn run(
    mut payload: web::Payload,
    session: ExecSession,
    v5: bool,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    let streams = session.streams.clone();
    if streams.stdin && !v5 {
        tracing::debug!("v4 has no way to close stdin: it ends with the connection");
    }
    let (in_tx, in_rx) = tokio::sync::mpsc::channel::<ExecInput>(16);
    let input = crate::kubelet::receiver_stream(in_rx);
    let mut items = session.start(input);
    let mut in_tx = Some(in_tx);
    let mut reader = FrameReader::default();
    loop {
        tokio::select! {
            item = items.next() => {
                let Some(item) = item else { break };
                let f = match item {
                    ExecItem::Ready => continue,
                    ExecItem::Stdout(d) if streams.stdout => channel_frame(STDOUT, &d),
                    ExecItem::Stderr(d) if streams.stderr => channel_frame(STDERR, &d),
                    ExecItem::Stdout(_) | ExecItem::Stderr(_) => continue,
                    ExecItem::Exit(code) => channel_frame(ERROR, exit_status(code).to_string().as_bytes()),
                    ExecItem::Failed(e) => {
                        let status = json!({"metadata": {}, "status": "Failure", "message": e.message, "reason": e.reason, "code": e.code});
                        channel_frame(ERROR, status.to_string().as_bytes())
                    }
                };
                if tx.send(f).await.is_err() {
                    return;
                }
            }
            chunk = payload.next(), if in_tx.is_some() => {
                match chunk {
                    Some(Ok(bytes)) => reader.feed(&bytes),
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "exec connection read failed; its input ends");
                        in_tx = None;
                        continue;
                    }
                    None => {
                        in_tx = None;
                        continue;
                    }
                }
                loop {
                    let said = reader.next_message().and_then(|m| match m {
                        Some(m) => client_says(m, streams.stdin).map(Some),
                        None => Ok(None),
                    });
                    match said {
                        Ok(None) => break,
                        Ok(Some(ClientSays::Input(i))) => {
                            if let Some(t) = &in_tx {
                                if t.send(i).await.is_err() {
                                    in_tx = None;
                                }
                            }
                        }
                        Ok(Some(ClientSays::Pong(p))) => {
                            let _ = tx.send(frame(OP_PONG, &p)).await;
                        }
                        Ok(Some(ClientSays::Close)) => {
                            in_tx = None;
                            break;
                        }
                        Ok(Some(ClientSays::Nothing)) => {}
                        Err(e) => {
                            // Dropping the session's stream ends its input: the command
                            // sees end of file, or its terminal hangs up.
                            let _ = tx.send(refusal(e)).await;
                            let _ = tx.send(frame(OP_CLOSE, &1002u16.to_be_bytes())).await;
                            return;
                        }
                    }
                }
            }
        }
    }
    let _ = tx.send(frame(OP_CLOSE, &1000u16.to_be_bytes())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        if payload.len() < 126 {
            out.push(0x80 | payload.len() as u8);
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn the_handshake_key_of_rfc_6455s_sample_nonce() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn reads_masked_fragmented_frames_in_pieces() {
        let mut r = FrameReader::default();
        let mut wire = masked(OP_BINARY, false, &[STDIN, b'h', b'e']);
        wire.extend(masked(OP_PING, true, b"p"));
        wire.extend(masked(OP_CONTINUATION, true, b"llo"));
        let long = vec![7u8; 300];
        wire.extend(masked(OP_BINARY, true, &long));
        wire.extend(masked(OP_CLOSE, true, &[]));
        for chunk in wire.chunks(5) {
            r.feed(chunk);
        }
        assert_eq!(
            r.next_message().unwrap(),
            Some(Message::Ping(b"p".to_vec()))
        );
        assert_eq!(
            r.next_message().unwrap(),
            Some(Message::Binary(vec![STDIN, b'h', b'e', b'l', b'l', b'o']))
        );
        assert_eq!(r.next_message().unwrap(), Some(Message::Binary(long)));
        assert_eq!(r.next_message().unwrap(), Some(Message::Close));
        assert_eq!(r.next_message().unwrap(), None);
        let mut bad = FrameReader::default();
        bad.feed(&[0x82, 0x01, 0x00]);
        assert!(
            bad.next_message().is_err(),
            "unmasked client frames are refused"
        );
    }

    #[test]
    fn client_messages_become_exec_input() {
        let says = |data: &[u8], stdin: bool| client_says(Message::Binary(data.to_vec()), stdin);
        assert_eq!(
            says(&[STDIN, b'h', b'i'], true).unwrap(),
            ClientSays::Input(ExecInput::Stdin(b"hi".to_vec()))
        );
        assert_eq!(says(&[STDIN, b'h'], false).unwrap(), ClientSays::Nothing);
        assert_eq!(
            says(&[CLOSE, STDIN], true).unwrap(),
            ClientSays::Input(ExecInput::CloseStdin)
        );
        let mut resize = vec![RESIZE];
        resize.extend_from_slice(br#"{"Width":120,"Height":40}"#);
        assert_eq!(
            says(&resize, false).unwrap(),
            ClientSays::Input(ExecInput::Resize {
                width: 120,
                height: 40
            })
        );
        let mut bad = vec![RESIZE];
        bad.extend_from_slice(br#"{"Width":-1,"Height":40}"#);
        assert!(says(&bad, false).unwrap_err().contains("Width"));
        assert!(says(&[RESIZE, b'{'], false)
            .unwrap_err()
            .contains("not JSON"));
        assert_eq!(
            client_says(Message::Ping(b"p".to_vec()), true).unwrap(),
            ClientSays::Pong(b"p".to_vec())
        );
        assert_eq!(
            client_says(Message::Close, true).unwrap(),
            ClientSays::Close
        );
    }

    #[test]
    fn server_frames_and_exit_statuses() {
        assert_eq!(&frame(OP_BINARY, b"ab")[..], &[0x82, 2, b'a', b'b']);
        let f = frame(OP_BINARY, &[0u8; 200]);
        assert_eq!(&f[..4], &[0x82, 126, 0, 200]);
        assert_eq!(exit_status(0)["status"], "Success");
        let s = exit_status(3);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
    }
}
