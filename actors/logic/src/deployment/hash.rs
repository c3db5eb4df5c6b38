//! A pod template's identity: the `pod-template-hash` naming a Deployment's ReplicaSet, and
//! template equality ignoring that label (Kubernetes' `ComputeHash` and `EqualIgnoreHash`).

use serde_json::{Map, Value};

use super::POD_TEMPLATE_HASH;

/// Kubernetes' `rand.SafeEncodeString` alphabet: no vowels (no words) and no look-alikes.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Keys whose values are maps in Kubernetes' types: an empty map there is the same as none.
const MAP_KEYS: &[&str] = &[
    "labels",
    "annotations",
    "nodeSelector",
    "limits",
    "requests",
    "matchLabels",
];

/// The `pod-template-hash` of a pod template: FNV-1a (32 bits) over the template's
/// canonical JSON (keys sorted, nulls, empty lists and empty label maps dropped, the
/// `pod-template-hash` label itself ignored), then `collision_count` as 8 little-endian
/// bytes when set, the decimal hash encoded with Kubernetes' safe alphabet. Equal
/// templates give equal hashes whatever their key order; a new collision count gives a new
/// hash.
pub fn template_hash(template: &Value, collision_count: Option<i64>) -> String {
    let mut text = String::new();
    write_canonical(&canonical(&without_hash_label(template)), &mut text);
    let mut hash = Fnv1a::new();
    hash.write(text.as_bytes());
    if let Some(count) = collision_count {
        // Kubernetes writes the int32 as a uint32 into an 8-byte buffer.
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        hash.write(&bytes);
    }
    safe_encode(&hash.0.to_string())
}

/// Whether two pod templates are the same ignoring the `pod-template-hash` label and the
/// difference between an absent field and an empty list or label map.
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    canonical(&without_hash_label(a)) == canonical(&without_hash_label(b))
}

/// A copy of the template without the `pod-template-hash` label.
pub(super) fn without_hash_label(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove(POD_TEMPLATE_HASH);
    }
    t
}

/// `template` with nulls, empty lists and empty maps under [`MAP_KEYS`] removed.
fn canonical(v: &Value) -> Value {
    fn strip(v: &Value) -> Option<Value> {
        match v {
            Value::Null => None,
            Value::Array(items) if items.is_empty() => None,
            Value::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .map(|i| strip(i).unwrap_or(Value::Null))
                    .collect(),
            )),
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, x) in map {
                    let Some(x) = strip(x) else { continue };
                    let empty_map = x.as_object().is_some_and(Map::is_empty);
                    if empty_map && (MAP_KEYS.contains(&k.as_str()) || k == "metadata") {
                        continue;
                    }
                    out.insert(k.clone(), x);
                }
                Some(Value::Object(out))
            }
            other => Some(other.clone()),
        }
    }
    strip(v).unwrap_or(Value::Null)
}

/// JSON with object keys sorted, whatever order the map keeps them in.
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// 32-bit FNV-1a.
struct Fnv1a(u32);

impl Fnv1a {
    fn new() -> Fnv1a {
        Fnv1a(0x811c_9dc5)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }
}

/// `rand.SafeEncodeString`: each character mapped into the safe alphabet.
fn safe_encode(s: &str) -> String {
    s.chars()
        .map(|c| SAFE_ALPHABET[(c as usize) % SAFE_ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fnv1a_matches_the_reference_values() {
        for (input, want) in [
            ("", 0x811c_9dc5u32),
            ("a", 0xe40c_292c),
            ("foobar", 0xbf9c_f968),
        ] {
            let mut h = Fnv1a::new();
            h.write(input.as_bytes());
            assert_eq!(h.0, want, "{input:?}");
        }
    }

    #[test]
    fn safe_encoding_maps_digits_like_kubernetes() {
        // '0' is 48, 48 % 27 = 21 → '4'; '6' is 54, 54 % 27 = 0 → 'b'.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
        assert_eq!(safe_encode("6"), "b");
    }

    #[test]
    fn canonical_form_ignores_order_nulls_and_empty_maps() {
        let a = json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "x"}},
                       "spec": {"containers": [{"name": "c", "image": "i", "env": []}]}});
        let b = json!({"spec": {"containers": [{"image": "i", "name": "c", "args": null}],
                                "nodeSelector": {}},
                       "metadata": {"labels": {"app": "web"}, "annotations": {}}});
        assert!(equal_ignore_hash(&a, &b));
        assert_eq!(template_hash(&a, None), template_hash(&b, None));
        // An empty struct is not an absent one (emptyDir: {} is a volume source).
        let v1 = json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}});
        let v2 = json!({"spec": {"volumes": [{"name": "v"}]}});
        assert!(!equal_ignore_hash(&v1, &v2));
    }
}
