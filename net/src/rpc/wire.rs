//! The request/response frame layout on one QUIC stream, and the error mapping from quinn.
//!
//! Request frame: `[FORMAT_VERSION][u32 BE header length][bincode RequestHeader][raw body]`.
//! Response frame: `[FORMAT_VERSION][tag][payload]`, tags: 0 ok (raw body, or empty when a
//! stream is accepted), 1 error (bincode `RpcError`), 2 stream item (raw), 3 end of stream.
//! A duplex call's caller keeps its side open after the request and sends input frames,
//! `[FORMAT_VERSION][raw input]`, finishing its side when its input ends.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use quinn::{RecvStream, SendStream, VarInt};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use super::RpcError;
use crate::codec::{self, FrameDecoder, FrameError, FORMAT_VERSION};
use crate::trace::CorrelationId;

/// Stream error codes (STOP_SENDING / RESET_STREAM).
pub(crate) const CODE_DONE: VarInt = VarInt::from_u32(0);
pub(crate) const CODE_TOO_LARGE: VarInt = VarInt::from_u32(1);
pub(crate) const CODE_CUT: VarInt = VarInt::from_u32(2);
pub(crate) const CODE_BAD_REQUEST: VarInt = VarInt::from_u32(3);
/// Connection close code: the server is not the peer the client expected.
pub(crate) const CODE_WRONG_PEER: VarInt = VarInt::from_u32(4);

const TAG_OK: u8 = 0;
const TAG_ERR: u8 = 1;
const TAG_ITEM: u8 = 2;
const TAG_END: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RequestKind {
    Call,
    Stream,
    /// A server stream whose caller streams input to it too.
    Duplex,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RequestHeader {
    pub kind: RequestKind,
    pub method: String,
    pub correlation: Option<CorrelationId>,
}

#[derive(Debug)]
pub(crate) enum Response {
    Ok(Bytes),
    Err(RpcError),
    Item(Bytes),
    End,
}

pub(crate) type Writer = FramedWrite<SendStream, LengthDelimitedCodec>;
pub(crate) type Reader = FramedRead<RecvStream, FrameDecoder>;

pub(crate) fn framed(send: SendStream, recv: RecvStream, max: usize) -> (Writer, Reader) {
    (
        FramedWrite::new(send, codec::length_delimited(max)),
        FramedRead::new(recv, FrameDecoder::new(max)),
    )
}

pub(crate) fn encode_request(header: &RequestHeader, body: &[u8]) -> Result<Bytes, RpcError> {
    let h = codec::encode(header).map_err(|e| RpcError::Decode(e.to_string()))?;
    let hlen = u32::try_from(h.len())
        .map_err(|_| RpcError::Decode(format!("request header of {} bytes", h.len())))?;
    let mut b = BytesMut::with_capacity(1 + 4 + h.len() + body.len());
    b.put_u8(FORMAT_VERSION);
    b.put_u32(hlen);
    b.put_slice(&h);
    b.put_slice(body);
    Ok(b.freeze())
}

pub(crate) fn decode_request(frame: BytesMut) -> Result<(RequestHeader, Bytes), RpcError> {
    let payload = codec::open_frame(&frame).map_err(|e| RpcError::Decode(e.to_string()))?;
    if payload.len() < 4 {
        return Err(RpcError::Decode(format!(
            "request frame of {} bytes is too short",
            frame.len()
        )));
    }
    let hlen = (&payload[..4]).get_u32() as usize;
    let rest = &payload[4..];
    if hlen > rest.len() {
        return Err(RpcError::Decode(format!(
            "request header length {hlen} exceeds the {} bytes left in the frame",
            rest.len()
        )));
    }
    let header: RequestHeader = codec::decode(&rest[..hlen])
        .map_err(|e| RpcError::Decode(format!("request header: {e}")))?;
    let body_at = 1 + 4 + hlen;
    let body = frame.freeze().slice(body_at..);
    Ok((header, body))
}

fn encode_response(resp: &Response) -> Bytes {
    let (tag, payload): (u8, Bytes) = match resp {
        Response::Ok(b) => (TAG_OK, b.clone()),
        Response::Item(b) => (TAG_ITEM, b.clone()),
        Response::End => (TAG_END, Bytes::new()),
        Response::Err(e) => (
            TAG_ERR,
            codec::encode(e)
                .map(Bytes::from)
                .unwrap_or_else(|_| Bytes::new()),
        ),
    };
    let mut b = BytesMut::with_capacity(2 + payload.len());
    b.put_u8(FORMAT_VERSION);
    b.put_u8(tag);
    b.put_slice(&payload);
    b.freeze()
}

pub(crate) fn decode_response(frame: BytesMut) -> Result<Response, RpcError> {
    let payload = codec::open_frame(&frame).map_err(|e| RpcError::Decode(e.to_string()))?;
    let Some((&tag, _)) = payload.split_first() else {
        return Err(RpcError::Decode("response frame without a tag".to_string()));
    };
    let body = frame.freeze().slice(2..);
    match tag {
        TAG_OK => Ok(Response::Ok(body)),
        TAG_ITEM => Ok(Response::Item(body)),
        TAG_END => Ok(Response::End),
        TAG_ERR => codec::decode::<RpcError>(&body)
            .map(Response::Err)
            .map_err(|e| RpcError::Decode(format!("error response: {e}"))),
        other => Err(RpcError::Decode(format!("unknown response tag {other}"))),
    }
}

/// Sends one response frame; one over `max` is replaced by a `FrameTooLarge` error.
pub(crate) async fn send_response(
    w: &mut Writer,
    resp: Response,
    max: usize,
) -> Result<(), std::io::Error> {
    let mut frame = encode_response(&resp);
    if frame.len() > max {
        tracing::warn!(
            size = frame.len(),
            max,
            "response frame too large; sending an error instead"
        );
        frame = encode_response(&Response::Err(RpcError::FrameTooLarge {
            size: frame.len(),
            max,
        }));
    }
    w.send(frame).await
}

/// Reads the next response frame.
pub(crate) async fn read_response(r: &mut Reader) -> Result<Response, RpcError> {
    match r.next().await {
        None => Err(RpcError::Closed),
        Some(Err(e)) => Err(map_frame_err(e)),
        Some(Ok(frame)) => decode_response(frame),
    }
}

pub(crate) fn map_frame_err(e: FrameError) -> RpcError {
    match e {
        FrameError::TooLarge { size, max } => RpcError::FrameTooLarge { size, max },
        FrameError::Io(e) => map_io(e),
    }
}

fn map_code(code: VarInt, what: &str) -> RpcError {
    if code == CODE_CUT {
        RpcError::Unreachable(format!("{what} cut by fault injection"))
    } else if code == CODE_TOO_LARGE {
        RpcError::Refused(format!("{what} refused by the peer: frame too large"))
    } else if code == CODE_BAD_REQUEST {
        RpcError::Refused(format!("{what} refused by the peer: bad request"))
    } else {
        RpcError::Closed
    }
}

/// Maps an i/o error from a quinn stream back to the quinn error it wraps.
pub(crate) fn map_io(e: std::io::Error) -> RpcError {
    if let Some(inner) = e.get_ref() {
        if let Some(re) = inner.downcast_ref::<quinn::ReadError>() {
            return match re {
                quinn::ReadError::Reset(code) => map_code(*code, "stream"),
                quinn::ReadError::ConnectionLost(ce) => map_conn_err(ce.clone()),
                other => RpcError::Unreachable(format!("stream read failed: {other}")),
            };
        }
        if let Some(we) = inner.downcast_ref::<quinn::WriteError>() {
            return match we {
                quinn::WriteError::Stopped(code) => map_code(*code, "request"),
                quinn::WriteError::ConnectionLost(ce) => map_conn_err(ce.clone()),
                other => RpcError::Unreachable(format!("stream write failed: {other}")),
            };
        }
    }
    RpcError::Unreachable(format!("stream i/o failed: {e}"))
}

pub(crate) fn map_conn_err(e: quinn::ConnectionError) -> RpcError {
    use quinn::ConnectionError as C;
    match e {
        C::LocallyClosed => RpcError::Closed,
        C::TimedOut => RpcError::Unreachable("connection timed out".to_string()),
        C::TransportError(t) if is_crypto(t.code) => {
            RpcError::Refused(format!("tls handshake failed: {t}"))
        }
        C::ConnectionClosed(c) if is_crypto(c.error_code) => {
            RpcError::Refused(format!("peer refused the tls handshake: {c}"))
        }
        other => RpcError::Unreachable(other.to_string()),
    }
}

fn is_crypto(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

/// One input frame of a duplex call.
pub(crate) fn encode_input(input: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(1 + input.len());
    b.put_u8(FORMAT_VERSION);
    b.put_slice(input);
    b.freeze()
}

/// The caller's input of a duplex call, frame by frame, until the caller finishes its side.
pub(crate) fn input_stream(
    r: Reader,
) -> futures::stream::BoxStream<'static, Result<Bytes, RpcError>> {
    r.map(|frame| {
        let frame = frame.map_err(map_frame_err)?;
        codec::open_frame(&frame).map_err(|e| RpcError::Decode(e.to_string()))?;
        Ok(frame.freeze().slice(1..))
    })
    .boxed()
}

/// Opens a stream and sends `frame`, keeping our side open (a duplex call's input follows).
pub(crate) async fn open_and_keep(
    conn: &quinn::Connection,
    frame: Bytes,
    max: usize,
) -> Result<(Writer, Reader), RpcError> {
    let (send, recv) = conn.open_bi().await.map_err(map_conn_err)?;
    let (mut w, r) = framed(send, recv, max);
    w.send(frame).await.map_err(map_io)?;
    Ok((w, r))
}

/// Opens a stream, sends `frame` and finishes our side. A write failure is returned with the
/// streams so that the caller can still read the peer's explanation.
pub(crate) async fn open_and_send(
    conn: &quinn::Connection,
    frame: Bytes,
    max: usize,
) -> Result<(Reader, Option<std::io::Error>), RpcError> {
    let (send, recv) = conn.open_bi().await.map_err(map_conn_err)?;
    let (mut w, r) = framed(send, recv, max);
    let write = w.send(frame).await.err();
    let _ = w.get_mut().finish();
    Ok((r, write))
}

/// One unary exchange on a fresh stream.
pub(crate) async fn exchange_call(
    conn: &quinn::Connection,
    frame: Bytes,
    max: usize,
) -> Result<Bytes, RpcError> {
    let (mut r, write_err) = open_and_send(conn, frame, max).await?;
    match read_response(&mut r).await {
        Ok(Response::Ok(b)) => Ok(b),
        Ok(Response::Err(e)) => Err(e),
        Ok(other) => Err(RpcError::Decode(format!(
            "unexpected {} frame in answer to a call",
            response_name(&other)
        ))),
        Err(read_err) => match write_err {
            Some(w) => Err(map_io(w)),
            None => Err(read_err),
        },
    }
}

pub(crate) fn response_name(r: &Response) -> &'static str {
    match r {
        Response::Ok(_) => "ok",
        Response::Err(_) => "error",
        Response::Item(_) => "item",
        Response::End => "end",
    }
}
