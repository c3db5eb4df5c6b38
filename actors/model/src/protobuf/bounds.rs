//! The bounds on decoding: one pass over the wire bytes, before prost allocates anything,
//! that walks the message tree with the generated shapes and refuses a body that nests too
//! deep, would allocate too much, or sets a field our protobuf types do not know.
//!
//! Why a pass of our own: prost limits nesting (to 100) but not memory. An empty element of
//! a repeated message field costs two bytes on the wire and a whole struct in memory (a
//! `Container` is several hundred bytes), then a JSON object; a 3 MiB body of them would
//! allocate gigabytes. Here every element of a repeated field or a map is charged twice its
//! struct size (a `Vec` may double while it grows; a singular message lives inside its
//! parent's struct and costs nothing more), every message the JSON object it becomes, every
//! field a fixed overhead, every string or bytes value three times its length (the prost
//! copy, the JSON copy, slack), and every embedded value with its own JSON form (`FieldsV1`,
//! `RawExtension`, times, quantities) 32 times its length (a JSON value per two bytes). The
//! estimate must stay under [`super::MAX_DECODED_BYTES`].
//!
//! Unknown fields: prost skips them silently. A field our k8s-pb release does not know but
//! a newer client sets to its zero value (Go writes every non-pointer field) is harmless and
//! skipped too; one carrying data is refused, since dropping it would silently lose what the
//! client asked for.

use super::{ProtobufError, MAX_DECODED_BYTES, MAX_DEPTH};

/// The wire layout of one message, generated for every converted message.
#[derive(Debug)]
pub(crate) struct Shape {
    pub name: &'static str,
    /// `size_of` the k8s-pb struct.
    pub size: usize,
    /// `(tag, JSON name, repeated, what the field holds)`; the JSON name is empty for
    /// inline structs.
    pub fields: &'static [(u32, &'static str, bool, Sub)],
}

#[derive(Debug)]
pub(crate) enum Sub {
    /// A string, bytes or number (repeated or not).
    Scalar,
    Message(&'static Shape),
    /// A message with its own JSON form (`Time`, `Quantity`, ...) of this struct size.
    Special(usize),
    /// A map entry (key 1, value 2) whose value is this message.
    MapOf(&'static Shape),
    MapOfSpecial(usize),
    MapOfScalar,
}

const MESSAGE_COST: usize = 96;
const FIELD_COST: usize = 64;
const EMBEDDED_JSON_FACTOR: usize = 32;

struct Walk {
    left: usize,
    path: Vec<&'static str>,
}

impl Walk {
    fn charge(&mut self, bytes: usize) -> Result<(), ProtobufError> {
        match self.left.checked_sub(bytes) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(ProtobufError::TooComplex {
                limit: MAX_DECODED_BYTES,
            }),
        }
    }

    fn path(&self) -> String {
        let p: Vec<&str> = self
            .path
            .iter()
            .copied()
            .filter(|s| !s.is_empty())
            .collect();
        p.join(".")
    }
}

/// Checks `buf`, a message of `shape`, against the bounds.
pub(crate) fn check(buf: &[u8], shape: &'static Shape) -> Result<(), ProtobufError> {
    let mut walk = Walk {
        left: MAX_DECODED_BYTES,
        path: Vec::new(),
    };
    walk.charge(shape.size)?;
    message(buf, shape, 1, &mut walk)
}

fn malformed(what: &str) -> ProtobufError {
    ProtobufError::Malformed(what.to_string())
}

fn varint(buf: &mut &[u8]) -> Result<u64, ProtobufError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = buf
            .split_first()
            .ok_or_else(|| malformed("truncated varint"))?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(malformed("varint longer than 10 bytes"))
}

fn take<'a>(buf: &mut &'a [u8], n: u64) -> Result<&'a [u8], ProtobufError> {
    let n = usize::try_from(n).map_err(|_| malformed("length out of range"))?;
    if n > buf.len() {
        return Err(malformed("field runs past the end of its message"));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

/// One field from the wire: its tag and, for length-delimited fields, the payload.
enum Value<'a> {
    Number(u64),
    Bytes(&'a [u8]),
}

fn next_field<'a>(buf: &mut &'a [u8]) -> Result<(u32, Value<'a>), ProtobufError> {
    let key = varint(buf)?;
    let tag = u32::try_from(key >> 3).map_err(|_| malformed("field tag out of range"))?;
    if tag == 0 {
        return Err(malformed("field tag 0"));
    }
    let value = match key & 7 {
        0 => Value::Number(varint(buf)?),
        1 => Value::Number(u64::from_le_bytes(
            take(buf, 8)?.try_into().unwrap_or_default(),
        )),
        5 => Value::Number(u64::from(u32::from_le_bytes(
            take(buf, 4)?.try_into().unwrap_or_default(),
        ))),
        2 => {
            let len = varint(buf)?;
            Value::Bytes(take(buf, len)?)
        }
        other => return Err(malformed(&format!("unsupported wire type {other}"))),
    };
    Ok((tag, value))
}

fn message(
    mut buf: &[u8],
    shape: &'static Shape,
    depth: usize,
    walk: &mut Walk,
) -> Result<(), ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep {
            path: walk.path(),
            limit: MAX_DEPTH,
        });
    }
    walk.charge(MESSAGE_COST)?;
    while !buf.is_empty() {
        let (tag, value) = next_field(&mut buf)?;
        walk.charge(FIELD_COST)?;
        let Some((_, name, repeated, sub)) = shape.fields.iter().find(|(t, ..)| *t == tag) else {
            let zero = match value {
                Value::Number(n) => n == 0,
                Value::Bytes(b) => b.is_empty(),
            };
            if zero {
                continue;
            }
            return Err(ProtobufError::UnknownProtobufField {
                path: walk.path(),
                message: shape.name,
                tag,
            });
        };
        let payload = match value {
            Value::Bytes(b) => b,
            // Numbers cost nothing beyond the field; prost refuses a number for a message.
            Value::Number(_) => continue,
        };
        // A repeated element or a map value is a new struct; a singular message is inside
        // its parent's.
        let element = |size: usize| if *repeated { 2 * size } else { 0 };
        walk.path.push(name);
        match sub {
            Sub::Scalar | Sub::MapOfScalar => walk.charge(3 * payload.len())?,
            Sub::Message(s) => {
                walk.charge(element(s.size))?;
                message(payload, s, depth + 1, walk)?;
            }
            Sub::Special(size) => {
                walk.charge(element(*size) + MESSAGE_COST + EMBEDDED_JSON_FACTOR * payload.len())?;
            }
            Sub::MapOfSpecial(size) => {
                walk.charge(2 * size + MESSAGE_COST + EMBEDDED_JSON_FACTOR * payload.len())?;
            }
            Sub::MapOf(s) => {
                walk.charge(2 * s.size)?;
                map_entry(payload, s, depth + 1, walk)?;
            }
        }
        walk.path.pop();
    }
    Ok(())
}

fn map_entry(
    mut buf: &[u8],
    value: &'static Shape,
    depth: usize,
    walk: &mut Walk,
) -> Result<(), ProtobufError> {
    walk.charge(MESSAGE_COST)?;
    while !buf.is_empty() {
        let (tag, v) = next_field(&mut buf)?;
        match (tag, v) {
            (1, Value::Bytes(key)) => walk.charge(3 * key.len())?,
            (2, Value::Bytes(b)) => message(b, value, depth, walk)?,
            _ => return Err(malformed("unexpected field in a map entry")),
        }
    }
    Ok(())
}
