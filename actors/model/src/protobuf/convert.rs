//! The hand-written half of the JSON conversion: JSON paths for errors, the typed readers
//! and writers the generated code calls for every field, and the Kubernetes types whose JSON
//! is not an object of their fields (`Time`, `MicroTime`, `Duration`, `IntOrString`,
//! `Quantity`, `FieldsV1`, `RawExtension`).
//!
//! Writers take `keep_zero`: Go omits a zero scalar or an empty list or map when the field
//! is not a pointer and has `omitempty` (the generator knows which); everything present on the
//! wire is otherwise written. Readers treat an absent key and `null` alike (Go's decoder
//! leaves the field unset for both) and refuse any other value of the wrong type.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as openapi_meta;
use k8s_openapi::jiff::Timestamp;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1::{Duration, FieldsV1, MicroTime, Time};
use k8s_pb::apimachinery::pkg::runtime::RawExtension;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost_k8s::Message;
use serde_json::{Map, Number, Value};

use super::ProtobufError;

// ---------------------------------------------------------------------------------------------
// Paths

/// Where a value sits in the JSON object: `spec.containers[0].ports[1].containerPort`.
/// A chain on the stack, so the success path allocates nothing for it.
#[derive(Clone, Copy)]
pub(crate) struct Pos<'a> {
    parent: Option<&'a Pos<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
    MapKey(&'a str),
}

impl<'a> Pos<'a> {
    pub(crate) const ROOT: Pos<'static> = Pos {
        parent: None,
        seg: Seg::Root,
    };

    pub(crate) fn key(&'a self, key: &'a str) -> Pos<'a> {
        Pos {
            parent: Some(self),
            seg: Seg::Key(key),
        }
    }

    fn index(&'a self, i: usize) -> Pos<'a> {
        Pos {
            parent: Some(self),
            seg: Seg::Index(i),
        }
    }

    fn map_key(&'a self, key: &'a str) -> Pos<'a> {
        Pos {
            parent: Some(self),
            seg: Seg::MapKey(key),
        }
    }
}

impl fmt::Display for Pos<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let root = self.parent.is_none_or(|p| matches!(p.seg, Seg::Root));
        if let Some(p) = self.parent {
            p.fmt(f)?;
        }
        match self.seg {
            Seg::Root => Ok(()),
            Seg::Key(k) if root => write!(f, "{k}"),
            Seg::Key(k) => write!(f, ".{k}"),
            Seg::Index(i) => write!(f, "[{i}]"),
            Seg::MapKey(k) => write!(f, "[{k:?}]"),
        }
    }
}

fn invalid(p: &Pos<'_>, message: impl Into<String>) -> ProtobufError {
    ProtobufError::InvalidJson {
        path: p.to_string(),
        message: message.into(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(p: &Pos<'_>, want: &str, got: &Value) -> ProtobufError {
    invalid(p, format!("expected {want}, got {}", type_name(got)))
}

// ---------------------------------------------------------------------------------------------
// Protobuf → JSON

/// A converter of one value to JSON (scalars, messages, special types alike).
pub(crate) type ToJson<T> = fn(&T, &Pos<'_>) -> Result<Value, ProtobufError>;

pub(crate) fn put_string(o: &mut Map<String, Value>, key: &str, v: Option<&str>, keep_zero: bool) {
    if let Some(v) = v {
        if keep_zero || !v.is_empty() {
            o.insert(key.into(), Value::String(v.into()));
        }
    }
}

// Kept ready for when a reachable message gains a field of this type: no converted
// message has one in this k8s-pb release, but the generator would call it.
#[allow(dead_code)]
pub(crate) fn put_bytes(o: &mut Map<String, Value>, key: &str, v: Option<&[u8]>, keep_zero: bool) {
    if let Some(v) = v {
        if keep_zero || !v.is_empty() {
            o.insert(key.into(), Value::String(base64(v)));
        }
    }
}

pub(crate) fn put_i32(o: &mut Map<String, Value>, key: &str, v: Option<i32>, keep_zero: bool) {
    if let Some(v) = v {
        if keep_zero || v != 0 {
            o.insert(key.into(), Value::from(v));
        }
    }
}

pub(crate) fn put_i64(o: &mut Map<String, Value>, key: &str, v: Option<i64>, keep_zero: bool) {
    if let Some(v) = v {
        if keep_zero || v != 0 {
            o.insert(key.into(), Value::from(v));
        }
    }
}

pub(crate) fn put_bool(o: &mut Map<String, Value>, key: &str, v: Option<bool>, keep_zero: bool) {
    if let Some(v) = v {
        if keep_zero || v {
            o.insert(key.into(), Value::Bool(v));
        }
    }
}

// Kept ready for when a reachable message gains a field of this type: no converted
// message has one in this k8s-pb release, but the generator would call it.
#[allow(dead_code)]
pub(crate) fn put_f64(o: &mut Map<String, Value>, key: &str, v: Option<f64>, keep_zero: bool) {
    if let Some(v) = v {
        if keep_zero || v != 0.0 {
            // NaN and infinities have no JSON form; Go's encoder refuses them too.
            if let Some(n) = Number::from_f64(v) {
                o.insert(key.into(), Value::Number(n));
            }
        }
    }
}

/// A message field: written unless absent (a zero `Time` converts to `null`: omitted).
pub(crate) fn put_message<T>(
    o: &mut Map<String, Value>,
    p: &Pos<'_>,
    key: &str,
    v: Option<&T>,
    f: ToJson<T>,
) -> Result<(), ProtobufError> {
    if let Some(v) = v {
        let j = f(v, &p.key(key))?;
        if !j.is_null() {
            o.insert(key.into(), j);
        }
    }
    Ok(())
}

pub(crate) fn put_list<T>(
    o: &mut Map<String, Value>,
    p: &Pos<'_>,
    key: &str,
    v: &[T],
    f: ToJson<T>,
    keep_zero: bool,
) -> Result<(), ProtobufError> {
    if v.is_empty() && !keep_zero {
        return Ok(());
    }
    let here = p.key(key);
    let items = v
        .iter()
        .enumerate()
        .map(|(i, x)| f(x, &here.index(i)))
        .collect::<Result<Vec<_>, _>>()?;
    o.insert(key.into(), Value::Array(items));
    Ok(())
}

pub(crate) fn put_map<T>(
    o: &mut Map<String, Value>,
    p: &Pos<'_>,
    key: &str,
    v: &BTreeMap<String, T>,
    f: ToJson<T>,
    keep_zero: bool,
) -> Result<(), ProtobufError> {
    if v.is_empty() && !keep_zero {
        return Ok(());
    }
    let here = p.key(key);
    let mut m = Map::new();
    for (k, x) in v {
        m.insert(k.clone(), f(x, &here.map_key(k))?);
    }
    o.insert(key.into(), Value::Object(m));
    Ok(())
}

#[allow(clippy::ptr_arg)] // a `ToJson<String>`: the field's own type
pub(crate) fn string_value(v: &String, _: &Pos<'_>) -> Result<Value, ProtobufError> {
    Ok(Value::String(v.clone()))
}

#[allow(clippy::ptr_arg)] // a `ToJson<Vec<u8>>`
pub(crate) fn bytes_value(v: &Vec<u8>, _: &Pos<'_>) -> Result<Value, ProtobufError> {
    Ok(Value::String(base64(v)))
}

pub(crate) fn i32_value(v: &i32, _: &Pos<'_>) -> Result<Value, ProtobufError> {
    Ok(Value::from(*v))
}

pub(crate) fn i64_value(v: &i64, _: &Pos<'_>) -> Result<Value, ProtobufError> {
    Ok(Value::from(*v))
}

fn base64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

// ---------------------------------------------------------------------------------------------
// JSON → protobuf

/// A converter of one JSON value (never `null`: readers filter it) to a field value.
pub(crate) type FromJson<T> = fn(&Value, &Pos<'_>) -> Result<T, ProtobufError>;

/// `v` as an object whose every key is one of `keys`.
pub(crate) fn object<'v>(
    v: &'v Value,
    p: &Pos<'_>,
    keys: &[&str],
) -> Result<&'v Map<String, Value>, ProtobufError> {
    let Value::Object(o) = v else {
        return Err(wrong_type(p, "an object", v));
    };
    if let Some(k) = o.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(ProtobufError::NoProtobufField {
            path: p.key(k).to_string(),
        });
    }
    Ok(o)
}

/// `apiVersion` and `kind` of an object inside another (a list's items): protobuf has no
/// place for them and Kubernetes drops them, but they must still be strings.
pub(crate) fn type_meta_from(o: &Map<String, Value>, p: &Pos<'_>) -> Result<(), ProtobufError> {
    for key in ["apiVersion", "kind"] {
        match o.get(key) {
            None | Some(Value::Null | Value::String(_)) => {}
            Some(other) => return Err(wrong_type(&p.key(key), "a string", other)),
        }
    }
    Ok(())
}

fn field<'v>(o: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    o.get(key).filter(|v| !v.is_null())
}

fn get<T>(
    o: &Map<String, Value>,
    p: &Pos<'_>,
    key: &str,
    f: FromJson<T>,
) -> Result<Option<T>, ProtobufError> {
    field(o, key).map(|v| f(v, &p.key(key))).transpose()
}

pub(crate) fn get_string(
    o: &Map<String, Value>,
    p: &Pos<'_>,
    key: &str,
) -> Result<Option<String>, ProtobufError> {
    get(o, p, key, string_from)
}

// Kept ready for when a reachable message gains a field of this type: no converted
// message has one in this k8s-pb release, but the generator would call it.
#[allow(dead_code)]
pub(crate) fn get_bytes(
    o: &Map<String, Value>,
    p: &Pos<'_>,
    key: &str,
) -> Result<Option<Vec<u8>>, ProtobufError> {
    get(o, p, key, bytes_from)
}

pub(crate) fn get_i32(
    o: &Map<String, Value>,
    p: &Pos<'_>,
    key: &str,
) -> Result<Option<i32>, ProtobufError> {
    get(o, p, key, i32_from)
}

pub(crate) fn get_i64(
    o: &Map<String, Value>,
    p: &Pos<'_>,
    key: &str,
) -> Result<Option<i64>, ProtobufError> {
    get(o, p, key, i64_from)
}

pub(crate) fn get_bool(
    o: &Map<String, Value>,
    p: &Pos<'_>,
    key: &str,
) -> Result<Option<bool>, ProtobufError> {
    get(o, p, key, bool_from)
}

// Kept ready for when a reachable message gains a field of this type: no converted
// message has one in this k8s-pb release, but the generator would call it.
#[allow(dead_code)]
pub(crate) fn get_f64(
    o: &Map<String, Value>,
    p: &Pos<'_>,
    key: &str,
) -> Result<Option<f64>, ProtobufError> {
    get(o, p, key, f64_from)
}

pub(crate) fn get_message<T>(
    o: &Map<String, Value>,
    p: &Pos<'_>,
    key: &str,
    f: FromJson<T>,
) -> Result<Option<T>, ProtobufError> {
    get(o, p, key, f)
}

pub(crate) fn get_list<T>(
    o: &Map<String, Value>,
    p: &Pos<'_>,
    key: &str,
    f: FromJson<T>,
) -> Result<Vec<T>, ProtobufError> {
    match field(o, key) {
        None => Ok(Vec::new()),
        Some(v) => list_from(v, &p.key(key), f),
    }
}

fn list_from<T>(v: &Value, p: &Pos<'_>, f: FromJson<T>) -> Result<Vec<T>, ProtobufError> {
    let Value::Array(a) = v else {
        return Err(wrong_type(p, "an array", v));
    };
    a.iter()
        .enumerate()
        .map(|(i, x)| {
            let here = p.index(i);
            if x.is_null() {
                Err(wrong_type(&here, "a value", x))
            } else {
                f(x, &here)
            }
        })
        .collect()
}

pub(crate) fn get_map<T>(
    o: &Map<String, Value>,
    p: &Pos<'_>,
    key: &str,
    f: FromJson<T>,
) -> Result<BTreeMap<String, T>, ProtobufError> {
    let Some(v) = field(o, key) else {
        return Ok(BTreeMap::new());
    };
    let here = p.key(key);
    let Value::Object(m) = v else {
        return Err(wrong_type(&here, "an object", v));
    };
    let mut out = BTreeMap::new();
    for (k, x) in m {
        let at = here.map_key(k);
        if x.is_null() {
            return Err(wrong_type(&at, "a value", x));
        }
        out.insert(k.clone(), f(x, &at)?);
    }
    Ok(out)
}

pub(crate) fn string_from(v: &Value, p: &Pos<'_>) -> Result<String, ProtobufError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(wrong_type(p, "a string", other)),
    }
}

/// A named Go slice (`ExtraValue`): the bare JSON array of strings.
pub(crate) fn strings_from(v: &Value, p: &Pos<'_>) -> Result<Vec<String>, ProtobufError> {
    list_from(v, p, string_from)
}

pub(crate) fn bytes_from(v: &Value, p: &Pos<'_>) -> Result<Vec<u8>, ProtobufError> {
    let s = v
        .as_str()
        .ok_or_else(|| wrong_type(p, "a base64 string", v))?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| invalid(p, format!("invalid base64: {e}")))
}

pub(crate) fn i32_from(v: &Value, p: &Pos<'_>) -> Result<i32, ProtobufError> {
    let n = i64_from(v, p)?;
    i32::try_from(n).map_err(|_| invalid(p, format!("{n} does not fit in a 32-bit integer")))
}

pub(crate) fn i64_from(v: &Value, p: &Pos<'_>) -> Result<i64, ProtobufError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| invalid(p, format!("expected a 64-bit integer, got {n}"))),
        other => Err(wrong_type(p, "an integer", other)),
    }
}

pub(crate) fn bool_from(v: &Value, p: &Pos<'_>) -> Result<bool, ProtobufError> {
    v.as_bool().ok_or_else(|| wrong_type(p, "a boolean", v))
}

// Kept ready for when a reachable message gains a field of this type: no converted
// message has one in this k8s-pb release, but the generator would call it.
#[allow(dead_code)]
pub(crate) fn f64_from(v: &Value, p: &Pos<'_>) -> Result<f64, ProtobufError> {
    v.as_f64().ok_or_else(|| wrong_type(p, "a number", v))
}

// ---------------------------------------------------------------------------------------------
// Types with their own JSON form

/// `metav1.Time`: RFC 3339 in whole seconds. An empty message is Go's zero time, which
/// Kubernetes writes as `null` (so the field is omitted). Go keeps only the seconds both ways.
pub(crate) fn time_to_json(t: &Time, p: &Pos<'_>) -> Result<Value, ProtobufError> {
    let Time { seconds, nanos: _ } = t;
    let Some(seconds) = seconds else {
        return Ok(Value::Null);
    };
    let ts = Timestamp::from_second(*seconds)
        .map_err(|e| invalid(p, format!("time out of range: {e}")))?;
    serde_json::to_value(openapi_meta::Time(ts)).map_err(|e| invalid(p, e.to_string()))
}

pub(crate) fn time_from_json(v: &Value, p: &Pos<'_>) -> Result<Time, ProtobufError> {
    let t: openapi_meta::Time =
        serde_json::from_value(v.clone()).map_err(|e| invalid(p, format!("invalid time: {e}")))?;
    Ok(Time {
        seconds: Some(t.0.as_second()),
        nanos: Some(0),
    })
}

/// `metav1.MicroTime`: RFC 3339 with microseconds; Go truncates the nanoseconds to them.
pub(crate) fn micro_time_to_json(t: &MicroTime, p: &Pos<'_>) -> Result<Value, ProtobufError> {
    let MicroTime { seconds, nanos } = t;
    let Some(seconds) = seconds else {
        return Ok(Value::Null);
    };
    let nanos = nanos.unwrap_or(0);
    let ts = Timestamp::new(*seconds, nanos - nanos % 1000)
        .map_err(|e| invalid(p, format!("time out of range: {e}")))?;
    serde_json::to_value(openapi_meta::MicroTime(ts)).map_err(|e| invalid(p, e.to_string()))
}

pub(crate) fn micro_time_from_json(v: &Value, p: &Pos<'_>) -> Result<MicroTime, ProtobufError> {
    let t: openapi_meta::MicroTime =
        serde_json::from_value(v.clone()).map_err(|e| invalid(p, format!("invalid time: {e}")))?;
    let nanos = t.0.subsec_nanosecond();
    Ok(MicroTime {
        seconds: Some(t.0.as_second()),
        nanos: Some(nanos - nanos % 1000),
    })
}

/// `metav1.Duration`: nanoseconds on the wire, Go's `time.Duration` string (`1h2m3.5s`) in
/// JSON.
// Kept ready for when a reachable message gains a field of this type: no converted
// message has one in this k8s-pb release, but the generator would call it.
#[allow(dead_code)]
pub(crate) fn duration_to_json(d: &Duration, _: &Pos<'_>) -> Result<Value, ProtobufError> {
    let Duration { duration } = d;
    Ok(Value::String(go_duration::format(duration.unwrap_or(0))))
}

// Kept ready for when a reachable message gains a field of this type: no converted
// message has one in this k8s-pb release, but the generator would call it.
#[allow(dead_code)]
pub(crate) fn duration_from_json(v: &Value, p: &Pos<'_>) -> Result<Duration, ProtobufError> {
    let s = v
        .as_str()
        .ok_or_else(|| wrong_type(p, "a duration string", v))?;
    let n =
        go_duration::parse(s).map_err(|e| invalid(p, format!("invalid duration {s:?}: {e}")))?;
    Ok(Duration { duration: Some(n) })
}

/// `intstr.IntOrString`: a number or a string in JSON; `type` 0 or 1 on the wire, with both
/// values always written, as Go does.
pub(crate) fn int_or_string_to_json(v: &IntOrString, _: &Pos<'_>) -> Result<Value, ProtobufError> {
    let IntOrString {
        r#type,
        int_val,
        str_val,
    } = v;
    Ok(match r#type {
        Some(1) => Value::String(str_val.clone().unwrap_or_default()),
        _ => Value::from(int_val.unwrap_or(0)),
    })
}

pub(crate) fn int_or_string_from_json(
    v: &Value,
    p: &Pos<'_>,
) -> Result<IntOrString, ProtobufError> {
    match v {
        Value::String(s) => Ok(IntOrString {
            r#type: Some(1),
            int_val: Some(0),
            str_val: Some(s.clone()),
        }),
        Value::Number(_) => Ok(IntOrString {
            r#type: Some(0),
            int_val: Some(i32_from(v, p)?),
            str_val: Some(String::new()),
        }),
        other => Err(wrong_type(p, "an integer or a string", other)),
    }
}

/// `resource.Quantity`: its canonical string, as written (navarch keeps quantities as the
/// strings it was given). A JSON number is accepted as Go's decoder does.
pub(crate) fn quantity_to_json(q: &Quantity, _: &Pos<'_>) -> Result<Value, ProtobufError> {
    let Quantity { string } = q;
    Ok(Value::String(string.clone().unwrap_or_else(|| "0".into())))
}

pub(crate) fn quantity_from_json(v: &Value, p: &Pos<'_>) -> Result<Quantity, ProtobufError> {
    match v {
        Value::String(s) => Ok(Quantity {
            string: Some(s.clone()),
        }),
        Value::Number(n) => Ok(Quantity {
            string: Some(n.to_string()),
        }),
        other => Err(wrong_type(p, "a quantity string", other)),
    }
}

/// `metav1.FieldsV1`: JSON bytes on the wire, the same JSON embedded in JSON.
pub(crate) fn fields_v1_to_json(f: &FieldsV1, p: &Pos<'_>) -> Result<Value, ProtobufError> {
    let FieldsV1 { raw } = f;
    embedded_json(raw.as_deref(), p)
}

pub(crate) fn fields_v1_from_json(v: &Value, _: &Pos<'_>) -> Result<FieldsV1, ProtobufError> {
    Ok(FieldsV1 {
        raw: Some(v.to_string().into_bytes()),
    })
}

/// `runtime.RawExtension` outside a watch event: JSON bytes on the wire, embedded JSON here.
/// (A watch event's object is a protobuf envelope instead; see `super::encode_watch_event`.)
// Kept ready for when a reachable message gains a field of this type: no converted
// message has one in this k8s-pb release, but the generator would call it.
#[allow(dead_code)]
pub(crate) fn raw_extension_to_json(r: &RawExtension, p: &Pos<'_>) -> Result<Value, ProtobufError> {
    let RawExtension { raw } = r;
    if raw.as_deref().is_some_and(|b| b.starts_with(&super::MAGIC)) {
        return Err(invalid(
            p,
            "an embedded protobuf object is not supported here",
        ));
    }
    embedded_json(raw.as_deref(), p)
}

// Kept ready for when a reachable message gains a field of this type: no converted
// message has one in this k8s-pb release, but the generator would call it.
#[allow(dead_code)]
pub(crate) fn raw_extension_from_json(
    v: &Value,
    _: &Pos<'_>,
) -> Result<RawExtension, ProtobufError> {
    Ok(RawExtension {
        raw: Some(v.to_string().into_bytes()),
    })
}

fn embedded_json(raw: Option<&[u8]>, p: &Pos<'_>) -> Result<Value, ProtobufError> {
    match raw {
        None | Some([]) => Ok(Value::Null),
        Some(b) => serde_json::from_slice(b)
            .map_err(|e| invalid(p, format!("embedded JSON is invalid: {e}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Envelope helpers the generated table uses

/// Decodes `raw` as `T` (its size and shape already checked) and converts it to JSON.
pub(crate) fn decode_as<T: Message + Default>(
    raw: &[u8],
    f: ToJson<T>,
) -> Result<Value, ProtobufError> {
    let m = T::decode(raw).map_err(|e| ProtobufError::Malformed(e.to_string()))?;
    f(&m, &Pos::ROOT)
}

/// Converts the JSON object to `T` and encodes it (without the envelope).
pub(crate) fn encode_as<T: Message>(v: &Value, f: FromJson<T>) -> Result<Vec<u8>, ProtobufError> {
    Ok(f(v, &Pos::ROOT)?.encode_to_vec())
}

/// Go's `time.Duration` text: `String()` and `ParseDuration`.
#[allow(dead_code)] // see duration_to_json
pub(crate) mod go_duration {
    const UNITS: &[(&str, u128)] = &[
        ("ns", 1),
        ("us", 1_000),
        ("µs", 1_000),
        ("μs", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
    ];

    /// `time.Duration(n).String()`: `0s`, `1.5µs`, `2m3.000000004s`, `-1h0m0s`.
    pub(crate) fn format(n: i64) -> String {
        if n == 0 {
            return "0s".into();
        }
        let neg = n < 0;
        let u = n.unsigned_abs();
        let mut out = String::new();
        if u < 1_000_000_000 {
            // Below a second: one unit, with a fraction.
            let (unit, scale) = if u < 1_000 {
                ("ns", 1)
            } else if u < 1_000_000 {
                ("µs", 1_000)
            } else {
                ("ms", 1_000_000)
            };
            out.push_str(&fraction(u, scale));
            out.push_str(unit);
        } else {
            let secs = u / 1_000_000_000;
            let sub = u % 1_000_000_000;
            let h = secs / 3600;
            let m = (secs / 60) % 60;
            let s = secs % 60;
            if h > 0 {
                out.push_str(&format!("{h}h{m}m"));
            } else if m > 0 {
                out.push_str(&format!("{m}m"));
            }
            out.push_str(&fraction(s * 1_000_000_000 + sub, 1_000_000_000));
            out.push('s');
        }
        if neg {
            out.insert(0, '-');
        }
        out
    }

    /// `v / scale` with the fraction's trailing zeros removed.
    fn fraction(v: u64, scale: u64) -> String {
        let whole = v / scale;
        let frac = v % scale;
        if frac == 0 {
            return whole.to_string();
        }
        let width = scale.ilog10() as usize;
        let digits = format!("{frac:0width$}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    }

    /// `time.ParseDuration`: a signed sequence of decimal numbers with units.
    pub(crate) fn parse(s: &str) -> Result<i64, String> {
        let (neg, mut rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        if rest == "0" {
            return Ok(0);
        }
        if rest.is_empty() {
            return Err("empty duration".into());
        }
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or("missing unit")?;
            let (num, tail) = rest.split_at(num_end);
            if num.is_empty() || num == "." || num.matches('.').count() > 1 {
                return Err("invalid number".into());
            }
            let unit_end = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, next) = tail.split_at(unit_end);
            let scale = UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|(_, s)| *s)
                .ok_or_else(|| format!("unknown unit {unit:?}"))?;
            let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
            let whole: u128 = if whole.is_empty() {
                0
            } else {
                whole.parse().map_err(|_| "invalid number")?
            };
            let mut value = whole.checked_mul(scale).ok_or("overflow")?;
            let mut f_scale = scale;
            for d in frac.bytes() {
                f_scale /= 10;
                value += u128::from(d - b'0') * f_scale;
                if f_scale == 0 {
                    break;
                }
            }
            total = total.checked_add(value).ok_or("overflow")?;
            rest = next;
        }
        let limit = if neg { 1u128 << 63 } else { (1u128 << 63) - 1 };
        if total > limit {
            return Err("overflow".into());
        }
        let t = total as i128;
        Ok(if neg { -t } else { t } as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_write_like_go() {
        // (nanoseconds, time.Duration.String())
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (1_000_000_000, "1s"),
            (1_500_000_000, "1.5s"),
            (60_000_000_000, "1m0s"),
            (3_723_000_000_000, "1h2m3s"),
            (3_600_000_000_000, "1h0m0s"),
            (-90_000_000_000, "-1m30s"),
            (123_000_000_004, "2m3.000000004s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (n, s) in cases {
            assert_eq!(go_duration::format(*n), *s, "format {n}");
            assert_eq!(go_duration::parse(s), Ok(*n), "parse {s}");
        }
        for (s, n) in [
            ("1h30m", 5_400_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("300ms", 300_000_000),
            ("2us", 2_000),
            ("+5s", 5_000_000_000),
            (".5s", 500_000_000),
        ] {
            assert_eq!(go_duration::parse(s), Ok(n), "{s}");
        }
        for bad in ["", "5", "1x", "1..5s", "h", "3000000h"] {
            assert!(go_duration::parse(bad).is_err(), "{bad}");
        }
        let d = duration_from_json(&Value::from("1m30s"), &Pos::ROOT).unwrap();
        assert_eq!(d.duration, Some(90_000_000_000));
        assert_eq!(
            duration_to_json(&d, &Pos::ROOT).unwrap(),
            Value::from("1m30s")
        );
    }

    #[test]
    fn paths_print_like_kubernetes_field_paths() {
        let root = Pos::ROOT;
        let spec = root.key("spec");
        let containers = spec.key("containers");
        let first = containers.index(0);
        let image = first.key("image");
        assert_eq!(image.to_string(), "spec.containers[0].image");
        let labels = root.key("metadata");
        let labels = labels.key("labels");
        assert_eq!(
            labels.map_key("app.kubernetes.io/name").to_string(),
            "metadata.labels[\"app.kubernetes.io/name\"]"
        );
        assert_eq!(root.to_string(), "");
    }

    #[test]
    fn raw_extensions_embed_json_but_not_protobuf() {
        let r = raw_extension_from_json(&serde_json::json!({"a": [1, 2]}), &Pos::ROOT).unwrap();
        assert_eq!(
            raw_extension_to_json(&r, &Pos::ROOT).unwrap(),
            serde_json::json!({"a": [1, 2]})
        );
        let pb = RawExtension {
            raw: Some(b"k8s\x00\x0a".to_vec()),
        };
        assert!(raw_extension_to_json(&pb, &Pos::ROOT).is_err());
        let bad = FieldsV1 {
            raw: Some(b"{not json".to_vec()),
        };
        assert!(matches!(
            fields_v1_to_json(&bad, &Pos::ROOT),
            Err(ProtobufError::InvalidJson { .. })
        ));
    }
}
