//! What comes back over HTTP, decoded without I/O: error bodies into [`ApiError`]s,
//! `Warning` headers into text, list bodies into [`ObjectList`]s, and the newline-delimited
//! watch stream into [`WatchEvent`]s.

use bytes::{Buf, BytesMut};
use navarch_model::watch::WatchEvent;
use navarch_model::ApiError;
use serde_json::Value;

use crate::{ClientError, ObjectList};

/// Kubernetes' reason for an HTTP code, for error bodies that are not a `Status`.
pub fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Gone",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// The error an answer with HTTP `code` and `body` means: the body's `Status` if it is one
/// (its code, if it lacks one, taken from HTTP), else an error carrying the code and text.
pub fn api_error(code: u16, body: &[u8]) -> ApiError {
    if let Ok(mut v) = serde_json::from_slice::<Value>(body) {
        if v["kind"] == "Status" {
            if v["code"].as_u64().is_none() {
                v["code"] = code.into();
            }
            if let Some(e) = ApiError::from_status(&v) {
                return e;
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = if text.is_empty() {
        format!("the server answered {code} with no body")
    } else {
        text.to_string()
    };
    ApiError::new(code, reason_for(code), message)
}

/// The text of a `Warning` header (`299 - "text"`, RFC 7234), or the whole value if it has
/// another shape.
pub fn warning_text(header: &str) -> String {
    let Some(start) = header.find('"') else {
        return header.trim().to_string();
    };
    let mut out = String::new();
    let mut chars = header[start + 1..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            '"' => return out,
            c => out.push(c),
        }
    }
    header.trim().to_string()
}

/// A list body (`{"metadata": {...}, "items": [...]}`).
pub fn object_list(mut v: Value) -> Result<ObjectList, ClientError> {
    let Some(items) = v.get_mut("items").map(Value::take) else {
        return Err(ClientError::Decode("a list without items".into()));
    };
    let items = match items {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        _ => return Err(ClientError::Decode("a list whose items is no array".into())),
    };
    let m = &v["metadata"];
    Ok(ObjectList {
        items,
        resource_version: m["resourceVersion"].as_str().unwrap_or("").to_string(),
        continue_token: m["continue"]
            .as_str()
            .filter(|c| !c.is_empty())
            .map(str::to_string),
        remaining_item_count: m["remainingItemCount"].as_u64(),
    })
}

/// Splits a watch body into events, one JSON document per line, as chunks arrive (a line
/// may span chunks, a chunk may hold several lines).
#[derive(Debug, Default)]
pub struct WatchDecoder {
    buf: BytesMut,
}

impl WatchDecoder {
    /// Feeds one chunk; returns the events it completed (an undecodable line is an error).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Result<WatchEvent, ClientError>> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let line = self.buf.split_to(nl);
            self.buf.advance(1);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            out.push(decode_event(&line));
        }
        out
    }

    /// The stream ended: a last line without its newline is still an event; a partial one
    /// means the connection was cut mid-event.
    pub fn finish(&mut self) -> Option<Result<WatchEvent, ClientError>> {
        let rest = std::mem::take(&mut self.buf);
        if rest.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        match decode_event(&rest) {
            Ok(e) => Some(Ok(e)),
            Err(_) => Some(Err(ClientError::Transport(
                "the watch ended in the middle of an event".into(),
            ))),
        }
    }
}

fn decode_event(line: &[u8]) -> Result<WatchEvent, ClientError> {
    let v: Value = serde_json::from_slice(line)
        .map_err(|e| ClientError::Decode(format!("a watch line is not JSON: {e}")))?;
    WatchEvent::from_json(v).ok_or_else(|| {
        ClientError::Decode(format!(
            "a watch line is not a {{\"type\", \"object\"}} event: {}",
            String::from_utf8_lossy(line)
                .chars()
                .take(200)
                .collect::<String>()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_model::watch::EventType;
    use serde_json::json;

    #[test]
    fn status_bodies_and_plain_text_become_api_errors() {
        let s = ApiError::already_exists("pods", "a").to_status();
        let e = api_error(409, s.to_string().as_bytes());
        assert_eq!((e.code, e.reason), (409, "AlreadyExists"));
        let e = api_error(404, b"404 page not found\n");
        assert_eq!((e.code, e.reason), (404, "NotFound"));
        assert_eq!(e.message, "404 page not found");
        let e = api_error(502, b"");
        assert_eq!(e.message, "the server answered 502 with no body");
        let e = api_error(500, br#"{"kind":"Status","message":"boom"}"#);
        assert_eq!((e.code, e.message.as_str()), (500, "boom"));
        let e = api_error(400, br#"{"kind":"Pod"}"#);
        assert_eq!(e.reason, "BadRequest");
    }

    #[test]
    fn warnings_lose_their_code_and_quotes() {
        assert_eq!(
            warning_text(r#"299 - "unknown field \"spec.foo\"""#),
            r#"unknown field "spec.foo""#
        );
        assert_eq!(warning_text("plain words"), "plain words");
        assert_eq!(
            warning_text(r#"299 - "unterminated"#),
            r#"299 - "unterminated"#
        );
    }

    #[test]
    fn lists_carry_revision_and_continue() {
        let l = object_list(json!({"metadata": {"resourceVersion": "9", "continue": "c", "remainingItemCount": 3}, "items": [{"a": 1}]}))
            .unwrap();
        assert_eq!(l.items.len(), 1);
        assert_eq!(l.resource_version, "9");
        assert_eq!(l.continue_token.as_deref(), Some("c"));
        assert_eq!(l.remaining_item_count, Some(3));
        let l = object_list(json!({"metadata": {"continue": ""}, "items": null})).unwrap();
        assert!(l.items.is_empty() && l.continue_token.is_none());
        assert!(object_list(json!({"kind": "Pod"})).is_err());
    }

    #[test]
    fn watch_lines_split_across_and_within_chunks() {
        let a =
            json!({"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "1"}}})
                .to_string();
        let b = json!({"type": "DELETED", "object": {"metadata": {"name": "a", "resourceVersion": "2"}}})
            .to_string();
        let all = format!("{a}\n\n{b}\n");
        let mut d = WatchDecoder::default();
        let (first, second) = all.as_bytes().split_at(10);
        assert!(d.push(first).is_empty());
        let evs: Vec<_> = d.push(second).into_iter().map(Result::unwrap).collect();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].event_type, EventType::Added);
        assert_eq!(evs[1].revision(), Some(2));
        assert!(d.finish().is_none());

        let mut d = WatchDecoder::default();
        assert!(d.push(a.as_bytes()).is_empty());
        assert_eq!(d.finish().unwrap().unwrap().event_type, EventType::Added);
        let mut d = WatchDecoder::default();
        d.push(&a.as_bytes()[..5]);
        assert!(matches!(d.finish(), Some(Err(ClientError::Transport(_)))));
        let mut d = WatchDecoder::default();
        assert!(matches!(
            d.push(b"{\"kind\": \"Status\"}\n")[0],
            Err(ClientError::Decode(_))
        ));
    }
}
