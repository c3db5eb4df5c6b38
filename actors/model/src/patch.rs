//! Patches as Kubernetes applies them: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
//! strategic merge patch with the merge keys of our kinds.
//!
//! Strategic merge patch follows apimachinery's `strategicpatch` semantics: maps merge
//! recursively (a `null` deletes a key), lists with a merge key merge element by element,
//! primitive lists with the merge strategy are unioned, every other list is replaced whole.
//! The directives `$patch` (`replace`, `delete`, `merge`), `$retainKeys`,
//! `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>` are honoured and never
//! appear in the result.

use serde_json::{Map, Value};

/// The patch formats, by their content type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply)
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type` header value (parameters such as `charset` ignored).
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        [
            PatchType::Json,
            PatchType::Merge,
            PatchType::StrategicMerge,
            PatchType::Apply,
        ]
        .into_iter()
        .find(|ty| ty.content_type().eq_ignore_ascii_case(essence))
    }

    /// The content type of this patch format (as listed in an `Accept-Patch` header).
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Why a patch could not be applied (the API answers 400 or 422).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself is malformed (400).
    #[error("{0}")]
    Malformed(String),
    /// The patch is well-formed but cannot apply to this object, e.g. a failed JSON patch
    /// `test` or a path that does not exist (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The patch would make the object, or the work of applying it, larger than the server
    /// allows (413).
    #[error("{0}")]
    TooLarge(String),
}

impl From<PatchError> for crate::ApiError {
    fn from(e: PatchError) -> Self {
        match e {
            PatchError::Malformed(m) => crate::ApiError::bad_request(m),
            PatchError::Unprocessable(m) => crate::ApiError::new(422, "Invalid", m),
            PatchError::TooLarge(m) => crate::ApiError::too_large(m),
        }
    }
}

fn malformed(message: impl Into<String>) -> PatchError {
    PatchError::Malformed(message.into())
}

fn unprocessable(message: impl Into<String>) -> PatchError {
    PatchError::Unprocessable(message.into())
}

/// Applies `patch` of type `ty` to `original`, an object of kind `kind` (e.g. `Deployment`),
/// and returns the patched object. `Apply` is not handled here.
pub fn apply(
    kind: &str,
    original: &Value,
    patch: &Value,
    ty: PatchType,
) -> Result<Value, PatchError> {
    match ty {
        PatchType::Merge => Ok(merge_patch(original, patch)),
        PatchType::Json => json_patch(original, patch),
        PatchType::StrategicMerge => strategic_merge_patch(kind, original, patch),
        PatchType::Apply => Err(unprocessable(
            "server-side apply is not supported; use client-side kubectl apply",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON merge patch (RFC 7386)

/// Applies a JSON merge patch (RFC 7386): objects merge recursively, `null` deletes a key,
/// anything else (including a non-object patch) replaces.
pub fn merge_patch(original: &Value, patch: &Value) -> Value {
    let mut target = original.clone();
    merge_into(&mut target, patch);
    target
}

fn merge_into(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_into(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON patch (RFC 6902)

enum Op {
    Add(Pointer, Value),
    Remove(Pointer),
    Replace(Pointer, Value),
    Move { from: Pointer, path: Pointer },
    Copy { from: Pointer, path: Pointer },
    Test(Pointer, Value),
}

/// A parsed JSON pointer (RFC 6901): its text (for messages) and its unescaped tokens.
struct Pointer {
    text: String,
    tokens: Vec<String>,
}

impl Pointer {
    fn parse(text: &str) -> Result<Pointer, PatchError> {
        if text.is_empty() {
            return Ok(Pointer {
                text: String::new(),
                tokens: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(malformed(format!(
                "invalid JSON pointer {text:?}: must be empty or start with '/'"
            )));
        };
        let tokens = rest
            .split('/')
            .map(|token| unescape_pointer_token(text, token))
            .collect::<Result<_, _>>()?;
        Ok(Pointer {
            text: text.to_string(),
            tokens,
        })
    }

    fn missing(&self) -> PatchError {
        unprocessable(format!("doc is missing path: {:?}", self.text))
    }

    /// Whether `self` is a proper prefix of `other` (moving a value into its own child).
    fn is_proper_prefix_of(&self, other: &Pointer) -> bool {
        self.tokens.len() < other.tokens.len()
            && other.tokens[..self.tokens.len()] == self.tokens[..]
    }
}

fn unescape_pointer_token(pointer: &str, token: &str) -> Result<String, PatchError> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('~'),
            Some('1') => out.push('/'),
            _ => {
                return Err(malformed(format!(
                    "invalid JSON pointer {pointer:?}: '~' must be followed by '0' or '1'"
                )))
            }
        }
    }
    Ok(out)
}

fn parse_json_patch(patch: &Value) -> Result<Vec<Op>, PatchError> {
    let Value::Array(ops) = patch else {
        return Err(malformed("a JSON patch must be a JSON array of operations"));
    };
    ops.iter()
        .enumerate()
        .map(|(i, op)| parse_op(i, op))
        .collect()
}

fn parse_op(i: usize, op: &Value) -> Result<Op, PatchError> {
    let Value::Object(op) = op else {
        return Err(malformed(format!(
            "JSON patch operation {i} is not an object"
        )));
    };
    let string = |field: &str| -> Result<&str, PatchError> {
        match op.get(field) {
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(malformed(format!(
                "JSON patch operation {i}: {field:?} must be a string"
            ))),
            None => Err(malformed(format!(
                "JSON patch operation {i}: missing {field:?}"
            ))),
        }
    };
    let pointer = |field: &str| string(field).and_then(Pointer::parse);
    let value = || {
        op.get("value")
            .cloned()
            .ok_or_else(|| malformed(format!("JSON patch operation {i}: missing \"value\"")))
    };
    Ok(match string("op")? {
        "add" => Op::Add(pointer("path")?, value()?),
        "remove" => Op::Remove(pointer("path")?),
        "replace" => Op::Replace(pointer("path")?, value()?),
        "move" => Op::Move {
            from: pointer("from")?,
            path: pointer("path")?,
        },
        "copy" => Op::Copy {
            from: pointer("from")?,
            path: pointer("path")?,
        },
        "test" => Op::Test(pointer("path")?, value()?),
        other => {
            return Err(malformed(format!(
                "JSON patch operation {i}: unexpected op {other:?}"
            )))
        }
    })
}

/// The largest object a patch may produce, in (estimated) JSON bytes: the request body
/// limit, since the result is stored and sent back like a body.
pub const MAX_PATCHED_BYTES: usize = 3 * 1024 * 1024;
/// At most this many JSON patch operations (Kubernetes' limit).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;
/// The values a JSON patch may copy, add, replace and test, in all, in bytes: applying a
/// patch costs at most a few times the largest object.
const MAX_JSON_PATCH_WORK: usize = 4 * MAX_PATCHED_BYTES;

/// The length of `v` as compact JSON, counted up to `cap` (anything past it reads as
/// `cap + 1`), so measuring costs at most `cap` steps.
pub fn json_size(v: &Value, cap: usize) -> usize {
    fn walk(v: &Value, cap: usize, n: &mut usize) {
        if *n > cap {
            return;
        }
        match v {
            Value::Null => *n += 4,
            Value::Bool(b) => *n += if *b { 4 } else { 5 },
            Value::Number(x) => *n += x.to_string().len(),
            Value::String(s) => *n += s.len() + 2,
            Value::Array(a) => {
                *n += 2 + a.len().saturating_sub(1);
                for x in a {
                    walk(x, cap, n);
                    if *n > cap {
                        return;
                    }
                }
            }
            Value::Object(m) => {
                *n += 2 + m.len().saturating_sub(1);
                for (k, x) in m {
                    *n += k.len() + 3;
                    walk(x, cap, n);
                    if *n > cap {
                        return;
                    }
                }
            }
        }
    }
    let mut n = 0;
    walk(v, cap, &mut n);
    n.min(cap.saturating_add(1))
}

/// The size and work accounting of one JSON patch application.
struct Budget {
    size: usize,
    work: usize,
}

impl Budget {
    fn spend(&mut self, v: &Value) -> Result<usize, PatchError> {
        let n = json_size(v, MAX_PATCHED_BYTES);
        self.work += n;
        if self.work > MAX_JSON_PATCH_WORK {
            return Err(PatchError::TooLarge(format!(
                "the JSON patch copies, adds or tests more than {MAX_JSON_PATCH_WORK} bytes of values in all"
            )));
        }
        Ok(n)
    }

    fn grow(&mut self, by: usize, shrink: usize) -> Result<(), PatchError> {
        self.size = (self.size + by).saturating_sub(shrink);
        if self.size > MAX_PATCHED_BYTES {
            return Err(PatchError::TooLarge(format!(
                "the patched object would be larger than {MAX_PATCHED_BYTES} bytes"
            )));
        }
        Ok(())
    }
}

/// Applies a JSON patch (RFC 6902). All operations apply or none does. The object the
/// patch builds may not outgrow [`MAX_PATCHED_BYTES`], nor the values it moves around
/// a few times that, whatever the patch's own size (repeated `copy` operations double a
/// document at every step).
pub fn json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = parse_json_patch(patch)?;
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooLarge(format!(
            "the JSON patch has {} operations; at most {MAX_JSON_PATCH_OPERATIONS} are allowed",
            ops.len()
        )));
    }
    let mut budget = Budget {
        size: json_size(original, MAX_PATCHED_BYTES),
        work: 0,
    };
    let mut doc = original.clone();
    for op in ops {
        match op {
            Op::Add(path, value) => {
                let n = budget.spend(&value)?;
                budget.grow(n, 0)?;
                add(&mut doc, &path, value)?
            }
            Op::Remove(path) => {
                let gone = remove(&mut doc, &path)?;
                budget.grow(0, json_size(&gone, MAX_PATCHED_BYTES))?;
            }
            Op::Replace(path, value) => {
                let n = budget.spend(&value)?;
                match get_mut(&mut doc, &path.tokens) {
                    Some(slot) => {
                        let old = json_size(slot, MAX_PATCHED_BYTES);
                        budget.grow(n, old)?;
                        *slot = value;
                    }
                    // Kubernetes' JSON patch (evanphx/json-patch v4) replaces a member an
                    // object lacks by adding it; `kubectl rollout undo` relies on it for
                    // `/metadata/annotations`. A missing list index or parent stays an error.
                    None => match path.tokens.split_last() {
                        Some((last, parent)) => match get_mut(&mut doc, parent) {
                            Some(Value::Object(map)) => {
                                budget.grow(n, 0)?;
                                map.insert(last.clone(), value);
                            }
                            _ => return Err(path.missing()),
                        },
                        None => return Err(path.missing()),
                    },
                }
            }
            Op::Move { from, path } => {
                if from.tokens == path.tokens {
                    // Moving onto itself is a no-op, but the location must exist.
                    get_mut(&mut doc, &from.tokens).ok_or_else(|| from.missing())?;
                    continue;
                }
                if from.is_proper_prefix_of(&path) {
                    return Err(unprocessable(format!(
                        "cannot move {:?} into its own child {:?}",
                        from.text, path.text
                    )));
                }
                let value = remove(&mut doc, &from)?;
                add(&mut doc, &path, value)?;
            }
            Op::Copy { from, path } => {
                let source = get_mut(&mut doc, &from.tokens).ok_or_else(|| from.missing())?;
                // Measured (and refused) before it is cloned.
                let n = budget.spend(source)?;
                budget.grow(n, 0)?;
                let value = source.clone();
                add(&mut doc, &path, value)?;
            }
            Op::Test(path, value) => {
                budget.spend(&value)?;
                let found = get_mut(&mut doc, &path.tokens).ok_or_else(|| path.missing())?;
                if *found != value {
                    return Err(unprocessable(format!("testing value {} failed", path.text)));
                }
            }
        }
    }
    Ok(doc)
}

/// An array index token: `0` or digits without a leading zero.
fn array_index(token: &str) -> Option<usize> {
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    if valid {
        token.parse().ok()
    } else {
        None
    }
}

/// The value at `tokens`, if there is one.
fn get_mut<'v>(doc: &'v mut Value, tokens: &[String]) -> Option<&'v mut Value> {
    let mut current = doc;
    for token in tokens {
        current = match current {
            Value::Object(map) => map.get_mut(token)?,
            Value::Array(list) => {
                let index = array_index(token)?;
                list.get_mut(index)?
            }
            _ => return None,
        };
    }
    Some(current)
}

fn add(doc: &mut Value, path: &Pointer, value: Value) -> Result<(), PatchError> {
    let Some((last, parent)) = path.tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parent).ok_or_else(|| path.missing())? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(list) => {
            if last == "-" {
                list.push(value);
                return Ok(());
            }
            match array_index(last) {
                Some(index) if index <= list.len() => {
                    list.insert(index, value);
                    Ok(())
                }
                _ => Err(unprocessable(format!(
                    "add operation does not apply: index {last:?} is out of bounds in {:?}",
                    path.text
                ))),
            }
        }
        _ => Err(path.missing()),
    }
}

fn remove(doc: &mut Value, path: &Pointer) -> Result<Value, PatchError> {
    let Some((last, parent)) = path.tokens.split_last() else {
        return Err(unprocessable("cannot remove the whole document"));
    };
    match get_mut(doc, parent).ok_or_else(|| path.missing())? {
        Value::Object(map) => map.remove(last).ok_or_else(|| path.missing()),
        Value::Array(list) => match array_index(last) {
            Some(index) if index < list.len() => Ok(list.remove(index)),
            _ => Err(path.missing()),
        },
        _ => Err(path.missing()),
    }
}

// ---------------------------------------------------------------------------------------------
// Strategic merge patch

/// How a list field merges under a strategic merge patch. A list without a strategy is
/// atomic: the patch's list replaces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// A list of objects merged by the named key (`patchMergeKey`).
    MergeByKey(&'static str),
    /// A list of scalars merged as a set union (e.g. `metadata.finalizers`).
    MergePrimitive,
}

/// The strategy of the list at `path` (field names from the object's root, list indices
/// left out) in an object of `kind`; `None` for an atomic list.
pub fn list_strategy(kind: &str, path: &[&str]) -> Option<ListStrategy> {
    use ListStrategy::{MergeByKey, MergePrimitive};
    let templated = matches!(kind, "Deployment" | "ReplicaSet");
    match path {
        ["spec", rest @ ..] if kind == "Pod" => return pod_spec_list(rest),
        ["spec", "template", "spec", rest @ ..] if templated => return pod_spec_list(rest),
        ["metadata", rest @ ..] => return object_meta_list(rest),
        ["spec", "template", "metadata", rest @ ..] if templated => return object_meta_list(rest),
        _ => {}
    }
    match (kind, path) {
        (
            "Pod"
            | "Node"
            | "Deployment"
            | "ReplicaSet"
            | "Namespace"
            | "Service"
            | "PodDisruptionBudget",
            ["status", "conditions"],
        ) => Some(MergeByKey("type")),
        ("Pod", ["status", "podIPs" | "hostIPs"]) => Some(MergeByKey("ip")),
        ("Pod", ["status", "resourceClaimStatuses"]) => Some(MergeByKey("name")),
        ("Node", ["status", "addresses"]) => Some(MergeByKey("type")),
        ("Node", ["spec", "podCIDRs"]) => Some(MergePrimitive),
        ("Service", ["spec", "ports"]) => Some(MergeByKey("port")),
        _ => None,
    }
}

fn object_meta_list(path: &[&str]) -> Option<ListStrategy> {
    match path {
        ["ownerReferences"] => Some(ListStrategy::MergeByKey("uid")),
        ["finalizers"] => Some(ListStrategy::MergePrimitive),
        _ => None,
    }
}

fn pod_spec_list(path: &[&str]) -> Option<ListStrategy> {
    use ListStrategy::MergeByKey;
    match path {
        ["containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates"] => Some(MergeByKey("name")),
        ["hostAliases"] => Some(MergeByKey("ip")),
        ["topologySpreadConstraints"] => Some(MergeByKey("topologyKey")),
        ["containers" | "initContainers" | "ephemeralContainers", field] => match *field {
            "ports" => Some(MergeByKey("containerPort")),
            "env" => Some(MergeByKey("name")),
            "volumeMounts" => Some(MergeByKey("mountPath")),
            "volumeDevices" => Some(MergeByKey("devicePath")),
            _ => None,
        },
        _ => None,
    }
}

const PATCH_DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

fn is_directive(key: &str) -> bool {
    key == PATCH_DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

fn dotted(path: &[&str]) -> String {
    if path.is_empty() {
        "<root>".to_string()
    } else {
        path.join(".")
    }
}

/// Applies a strategic merge patch to an object of `kind`.
pub fn strategic_merge_patch(
    kind: &str,
    original: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(malformed("a strategic merge patch must be a JSON object"));
    };
    let original = match original {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    match merge_map(kind, original, patch, &mut Vec::new())? {
        Some(merged) => Ok(Value::Object(merged)),
        None => Err(unprocessable(
            "$patch: delete cannot delete the whole object",
        )),
    }
}

/// Merges `patch` into `original`; `None` when the patch deletes the map (`$patch: delete`).
fn merge_map<'p>(
    kind: &str,
    original: Map<String, Value>,
    patch: &'p Map<String, Value>,
    path: &mut Vec<&'p str>,
) -> Result<Option<Map<String, Value>>, PatchError> {
    match patch.get(PATCH_DIRECTIVE) {
        None => merge_map_fields(kind, original, patch, path).map(Some),
        Some(Value::String(directive)) => match directive.as_str() {
            "replace" => merge_map_fields(kind, Map::new(), patch, path).map(Some),
            "delete" => Ok(None),
            "merge" => merge_map_fields(kind, original, patch, path).map(Some),
            other => Err(malformed(format!(
                "unknown patch type {other:?} in map at {}",
                dotted(path)
            ))),
        },
        Some(other) => Err(malformed(format!(
            "unknown patch type {other} in map at {}",
            dotted(path)
        ))),
    }
}

fn merge_map_fields<'p>(
    kind: &str,
    mut original: Map<String, Value>,
    patch: &'p Map<String, Value>,
    path: &mut Vec<&'p str>,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keys = retain_keys(retain, path)?;
        if let Some((key, _)) = patch
            .iter()
            .find(|(k, v)| !is_directive(k) && !v.is_null() && !keys.contains(&k.as_str()))
        {
            // Kubernetes answers this one (ErrPatchContentNotMatchRetainKeys) with 422.
            return Err(unprocessable(format!(
                "the key {key:?} at {} is not present in the $retainKeys list {retain}",
                dotted(path)
            )));
        }
        original.retain(|k, _| keys.contains(&k.as_str()));
    }

    for (key, doomed) in patch {
        let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) else {
            continue;
        };
        let Value::Array(doomed) = doomed else {
            return Err(malformed(format!(
                "{key} at {} must be a list",
                dotted(path)
            )));
        };
        if let Some(Value::Array(list)) = original.get_mut(field) {
            list.retain(|item| !doomed.contains(item));
        }
    }

    for (key, value) in patch {
        if is_directive(key) {
            continue;
        }
        let order = patch.get(&format!("{SET_ELEMENT_ORDER}{key}"));
        let current = original.get_mut(key).map(Value::take);
        path.push(key);
        let merged = merge_value(kind, current, value, order, path);
        path.pop();
        match merged? {
            Some(merged) => {
                original.insert(key.clone(), merged);
            }
            None => {
                original.remove(key);
            }
        }
    }

    // `$setElementOrder` for a list the patch does not otherwise touch: reorder only.
    for (key, order) in patch {
        let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        if patch.contains_key(field) {
            continue;
        }
        if let Some(Value::Array(list)) = original.get_mut(field) {
            path.push(field);
            let merged = merge_list(kind, std::mem::take(list), &[], Some(order), path);
            path.pop();
            *list = merged?;
        }
    }
    Ok(original)
}

fn retain_keys<'v>(retain: &'v Value, path: &[&str]) -> Result<Vec<&'v str>, PatchError> {
    let error = || {
        malformed(format!(
            "$retainKeys at {} must be a list of strings, not {retain}",
            dotted(path)
        ))
    };
    let Value::Array(keys) = retain else {
        return Err(error());
    };
    keys.iter().map(|k| k.as_str().ok_or_else(error)).collect()
}

/// Merges one patch value into the current value (absent when `None`); `None` as a result
/// removes the field (or list element).
fn merge_value<'p>(
    kind: &str,
    current: Option<Value>,
    patch: &'p Value,
    order: Option<&'p Value>,
    path: &mut Vec<&'p str>,
) -> Result<Option<Value>, PatchError> {
    match patch {
        Value::Null => Ok(None),
        Value::Object(patch) => {
            let current = match current {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            Ok(merge_map(kind, current, patch, path)?.map(Value::Object))
        }
        Value::Array(patch) => {
            let current = match current {
                Some(Value::Array(list)) => list,
                _ => Vec::new(),
            };
            merge_list(kind, current, patch, order, path).map(|list| Some(Value::Array(list)))
        }
        scalar => Ok(Some(scalar.clone())),
    }
}

/// A list element's identity under a strategy: its merge key's value, or itself.
fn element_id<'v>(item: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match key {
        Some(key) => item.get(key),
        None => Some(item),
    }
}

fn merge_list<'p>(
    kind: &str,
    mut original: Vec<Value>,
    patch: &'p [Value],
    order: Option<&'p Value>,
    path: &mut Vec<&'p str>,
) -> Result<Vec<Value>, PatchError> {
    let Some(strategy) = list_strategy(kind, path) else {
        // Atomic: the patch's list (its elements cleaned of directives) replaces the original.
        return fresh_elements(kind, patch.iter(), path);
    };
    let merge_key = match strategy {
        ListStrategy::MergeByKey(key) => Some(key),
        ListStrategy::MergePrimitive => None,
    };

    let mut replace = false;
    let mut items = Vec::with_capacity(patch.len());
    for item in patch {
        let Some(directive) = item.get(PATCH_DIRECTIVE) else {
            items.push(item);
            continue;
        };
        match directive.as_str() {
            Some("replace") => replace = true,
            Some("merge") => {}
            Some("delete") => {
                let Some(key) = merge_key else {
                    return Err(malformed(format!(
                        "$patch: delete is not allowed in the primitive list {}; use {DELETE_FROM_PRIMITIVE_LIST}",
                        dotted(path)
                    )));
                };
                let Some(doomed) = item.get(key) else {
                    return Err(malformed(format!(
                        "delete patch type with no merge key defined: {item} in {} (merge key {key:?})",
                        dotted(path)
                    )));
                };
                original.retain(|o| o.get(key) != Some(doomed));
            }
            _ => {
                return Err(malformed(format!(
                    "unknown patch type {directive} in list {}",
                    dotted(path)
                )))
            }
        }
    }
    if replace {
        return fresh_elements(kind, items.into_iter(), path);
    }

    let server_order: Vec<Value> = original
        .iter()
        .filter_map(|item| element_id(item, merge_key).cloned())
        .collect();
    let mut merged = original;
    match merge_key {
        None => {
            for item in items {
                if !merged.contains(item) {
                    merged.push(item.clone());
                }
            }
            let mut unique: Vec<Value> = Vec::with_capacity(merged.len());
            for item in merged {
                if !unique.contains(&item) {
                    unique.push(item);
                }
            }
            merged = unique;
        }
        Some(key) => {
            for item in items {
                let Value::Object(fields) = item else {
                    return Err(malformed(format!(
                        "the list {} merges by {key:?} but holds a non-object element: {item}",
                        dotted(path)
                    )));
                };
                let Some(id) = fields.get(key) else {
                    return Err(malformed(format!(
                        "map: {item} does not contain declared merge key: {key} (in {})",
                        dotted(path)
                    )));
                };
                match merged.iter().position(|o| o.get(key) == Some(id)) {
                    Some(at) => {
                        let current = merged[at].take();
                        match merge_value(kind, Some(current), item, None, path)? {
                            Some(value) => merged[at] = value,
                            None => {
                                merged.remove(at);
                            }
                        }
                    }
                    None => {
                        if let Some(value) = merge_value(kind, None, item, None, path)? {
                            merged.push(value);
                        }
                    }
                }
            }
        }
    }

    match order {
        Some(order) => apply_element_order(merged, &server_order, order, merge_key, path),
        None => Ok(merged),
    }
}

/// Patch elements taken as they are, cleaned of directives (merged into nothing).
fn fresh_elements<'p>(
    kind: &str,
    items: impl Iterator<Item = &'p Value>,
    path: &mut Vec<&'p str>,
) -> Result<Vec<Value>, PatchError> {
    let mut out = Vec::new();
    for item in items {
        if let Some(value) = merge_value(kind, None, item, None, path)? {
            out.push(value);
        }
    }
    Ok(out)
}

/// Orders a merged list by `$setElementOrder`, as Kubernetes does: the elements it names come
/// in its order; the others (only on the server) keep their relative order and are placed
/// before a named element only when both were in the original list and the server-only one
/// came first there.
fn apply_element_order(
    merged: Vec<Value>,
    server_order: &[Value],
    order: &Value,
    merge_key: Option<&str>,
    path: &[&str],
) -> Result<Vec<Value>, PatchError> {
    let Value::Array(order) = order else {
        return Err(malformed(format!(
            "{SET_ELEMENT_ORDER}{} must be a list",
            path.last().unwrap_or(&"")
        )));
    };
    let wanted = order
        .iter()
        .map(|item| {
            element_id(item, merge_key).ok_or_else(|| {
                malformed(format!(
                    "{SET_ELEMENT_ORDER}{}: {item} does not contain the merge key {:?}",
                    path.last().unwrap_or(&""),
                    merge_key.unwrap_or_default()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut named: Vec<(usize, Value)> = Vec::new();
    let mut server_only = Vec::new();
    for item in merged {
        let rank = element_id(&item, merge_key).and_then(|id| wanted.iter().position(|w| *w == id));
        match rank {
            Some(rank) => named.push((rank, item)),
            None => server_only.push(item),
        }
    }
    named.sort_by_key(|(rank, _)| *rank);

    let position = |item: &Value| {
        element_id(item, merge_key).and_then(|id| server_order.iter().position(|s| s == id))
    };
    let mut out = Vec::with_capacity(named.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = named.into_iter().map(|(_, item)| item).peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!((position(l), position(r)), (Some(a), Some(b)) if a < b),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_patch_cannot_grow_a_document_without_bound() {
        // Each copy of the whole document into itself doubles it: 60 steps would need
        // 2^60 times the memory. The budget stops it early with a 413.
        let original = json!({"k": "v".repeat(100)});
        let ops: Vec<Value> = (0..60)
            .map(|i| json!({"op": "copy", "from": "", "path": format!("/c{i}")}))
            .collect();
        let patch = Value::Array(ops);
        assert!(patch.to_string().len() < 3000);
        match json_patch(&original, &patch) {
            Err(PatchError::TooLarge(m)) => assert!(m.contains("larger than"), "{m}"),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // Copying a large value back and forth is bounded by the work budget too.
        let big = json!({"a": "x".repeat(MAX_PATCHED_BYTES / 4), "b": 1});
        let mut churn = Vec::new();
        for _ in 0..20 {
            churn.push(json!({"op": "copy", "from": "/a", "path": "/c"}));
            churn.push(json!({"op": "remove", "path": "/c"}));
        }
        match json_patch(&big, &Value::Array(churn)) {
            Err(PatchError::TooLarge(m)) => assert!(m.contains("in all"), "{m}"),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // Too many operations.
        let many: Vec<Value> = (0..=MAX_JSON_PATCH_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "/b", "value": 1}))
            .collect();
        assert!(matches!(
            json_patch(&big, &Value::Array(many)),
            Err(PatchError::TooLarge(_))
        ));
        // Ordinary patches are unaffected.
        let ok = json_patch(
            &json!({"a": [1]}),
            &json!([{"op": "copy", "from": "/a", "path": "/b"}]),
        )
        .unwrap();
        assert_eq!(ok, json!({"a": [1], "b": [1]}));
    }

    #[test]
    fn json_sizes_match_compact_json_and_stop_at_the_cap() {
        let v = json!({"a": [1, true, null, "xy"], "b": {"c": -2.5}});
        assert_eq!(json_size(&v, 1 << 20), v.to_string().len());
        assert_eq!(json_size(&v, 5), 6);
    }
    use serde_json::json;

    fn smp(kind: &str, original: Value, patch: Value) -> Value {
        let out = apply(kind, &original, &patch, PatchType::StrategicMerge).unwrap();
        assert_no_directives(&out);
        out
    }

    fn assert_no_directives(value: &Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    assert!(!k.starts_with('$'), "directive {k} leaked into {value}");
                    assert_no_directives(v);
                }
            }
            Value::Array(list) => list.iter().for_each(assert_no_directives),
            _ => {}
        }
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "finalizers": ["a", "b"]},
            "spec": {
                "replicas": 2,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
                },
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {"name": "nginx", "image": "nginx:1.26",
                             "env": [{"name": "A", "value": "0"}, {"name": "B", "value": "b"}],
                             "ports": [{"containerPort": 80}]},
                            {"name": "sidecar", "image": "busybox"}
                        ],
                        "tolerations": [{"key": "x", "operator": "Exists"}]
                    }
                }
            }
        })
    }

    #[test]
    fn content_types() {
        let cases = [
            ("application/json-patch+json", Some(PatchType::Json)),
            ("application/merge-patch+json", Some(PatchType::Merge)),
            (
                "application/strategic-merge-patch+json",
                Some(PatchType::StrategicMerge),
            ),
            ("application/apply-patch+yaml", Some(PatchType::Apply)),
            (
                " Application/Merge-Patch+JSON ; charset=utf-8",
                Some(PatchType::Merge),
            ),
            ("application/apply-patch+json", None),
            ("application/apply-patch+cbor", None),
            ("application/json", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(PatchType::from_content_type(header), want, "{header}");
        }
        for ty in [
            PatchType::Json,
            PatchType::Merge,
            PatchType::StrategicMerge,
            PatchType::Apply,
        ] {
            assert_eq!(PatchType::from_content_type(ty.content_type()), Some(ty));
        }
    }

    #[test]
    fn apply_is_refused() {
        let err = apply("Pod", &json!({}), &json!({}), PatchType::Apply).unwrap_err();
        assert!(matches!(err, PatchError::Unprocessable(m) if m.contains("server-side apply")));
    }

    #[test]
    fn merge_patch_rfc7386() {
        // The examples of RFC 7386's appendix.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (original, patch, want) in cases {
            let got = apply("Pod", &original, &patch, PatchType::Merge).unwrap();
            assert_eq!(got, want, "{original} + {patch}");
        }
    }

    #[test]
    fn merge_patch_replaces_lists_whole() {
        let got = apply(
            "Deployment",
            &deployment(),
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "only"}]}}}}),
            PatchType::Merge,
        )
        .unwrap();
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only"}])
        );
        assert_eq!(got["spec"]["replicas"], json!(2));
    }

    fn jp(original: Value, patch: Value) -> Result<Value, PatchError> {
        apply("Pod", &original, &patch, PatchType::Json)
    }

    #[test]
    fn json_patch_operations() {
        let doc = json!({"spec": {"replicas": 1, "list": ["a", "b"], "m": {"x": 1}}});
        let got = jp(
            doc,
            json!([
                {"op": "test", "path": "/spec/replicas", "value": 1},
                {"op": "replace", "path": "/spec/replicas", "value": 3},
                {"op": "add", "path": "/spec/list/1", "value": "z"},
                {"op": "add", "path": "/spec/list/-", "value": "end"},
                {"op": "add", "path": "/spec/new", "value": {"k": "v"}},
                {"op": "remove", "path": "/spec/list/0"},
                {"op": "copy", "from": "/spec/m", "path": "/spec/m2"},
                {"op": "move", "from": "/spec/m/x", "path": "/spec/moved"},
                {"op": "add", "path": "/metadata", "value": {}},
                {"op": "add", "path": "/metadata/labels", "value": {"a/b": "1", "c~d": "2"}},
                {"op": "replace", "path": "/metadata/labels/a~1b", "value": "one"},
                {"op": "remove", "path": "/metadata/labels/c~0d"}
            ]),
        )
        .unwrap();
        assert_eq!(
            got,
            json!({
                "metadata": {"labels": {"a/b": "one"}},
                "spec": {
                    "replicas": 3,
                    "list": ["z", "b", "end"],
                    "m": {},
                    "m2": {"x": 1},
                    "moved": 1,
                    "new": {"k": "v"}
                }
            })
        );
    }

    #[test]
    fn json_patch_root_and_append_index() {
        assert_eq!(
            jp(
                json!({"a": 1}),
                json!([{"op": "replace", "path": "", "value": {"b": 2}}])
            )
            .unwrap(),
            json!({"b": 2})
        );
        assert_eq!(
            jp(
                json!({"l": [1]}),
                json!([{"op": "add", "path": "/l/1", "value": 2}])
            )
            .unwrap(),
            json!({"l": [1, 2]})
        );
        assert!(matches!(
            jp(
                json!({"l": [1]}),
                json!([{"op": "add", "path": "/l/3", "value": 2}])
            ),
            Err(PatchError::Unprocessable(_))
        ));
        assert!(matches!(
            jp(
                json!({"l": [1]}),
                json!([{"op": "remove", "path": "/l/01"}])
            ),
            Err(PatchError::Unprocessable(_))
        ));
        assert!(matches!(
            jp(json!({"a": 1}), json!([{"op": "remove", "path": ""}])),
            Err(PatchError::Unprocessable(_))
        ));
    }

    #[test]
    fn json_patch_test_failure_is_a_conflict() {
        let err = jp(
            json!({"spec": {"replicas": 1}}),
            json!([
                {"op": "replace", "path": "/spec/replicas", "value": 5},
                {"op": "test", "path": "/spec/replicas", "value": 1}
            ]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PatchError::Unprocessable("testing value /spec/replicas failed".into())
        );
    }

    #[test]
    fn json_patch_missing_paths() {
        let doc = json!({"spec": {"replicas": 1}});
        for op in [
            json!({"op": "remove", "path": "/spec/foo"}),
            json!({"op": "test", "path": "/spec/foo", "value": 1}),
            json!({"op": "move", "from": "/spec/foo", "path": "/spec/bar"}),
            json!({"op": "copy", "from": "/spec/foo", "path": "/spec/bar"}),
        ] {
            let err = jp(doc.clone(), json!([op])).unwrap_err();
            assert_eq!(
                err,
                PatchError::Unprocessable("doc is missing path: \"/spec/foo\"".into()),
                "{op}"
            );
        }
        let err = jp(
            doc.clone(),
            json!([{"op": "add", "path": "/status/phase", "value": "x"}]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PatchError::Unprocessable("doc is missing path: \"/status/phase\"".into())
        );
        // As in Kubernetes, replacing a member an object lacks adds it (what
        // `kubectl rollout undo` sends for `/metadata/annotations`); a missing list index
        // stays an error.
        assert_eq!(
            jp(
                doc.clone(),
                json!([{"op": "replace", "path": "/spec/foo", "value": 1}])
            )
            .unwrap(),
            json!({"spec": {"replicas": 1, "foo": 1}})
        );
        assert_eq!(
            jp(
                doc.clone(),
                json!([{"op": "replace", "path": "/spec/foo/bar", "value": 1}])
            )
            .unwrap_err(),
            PatchError::Unprocessable("doc is missing path: \"/spec/foo/bar\"".into())
        );
        let list = json!({"spec": {"ports": [1]}});
        assert!(jp(
            list,
            json!([{"op": "replace", "path": "/spec/ports/1", "value": 2}])
        )
        .is_err());
    }

    #[test]
    fn json_patch_move_into_child() {
        let err = jp(
            json!({"a": {"b": {}}}),
            json!([{"op": "move", "from": "/a", "path": "/a/b/c"}]),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::Unprocessable(_)));
        assert_eq!(
            jp(
                json!({"a": 1}),
                json!([{"op": "move", "from": "/a", "path": "/a"}])
            )
            .unwrap(),
            json!({"a": 1})
        );
    }

    #[test]
    fn json_patch_malformed() {
        for patch in [
            json!({"op": "add"}),
            json!([1]),
            json!([{"path": "/a", "value": 1}]),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add", "path": "/a"}]),
            json!([{"op": "add", "path": "a", "value": 1}]),
            json!([{"op": "add", "path": "/a~2", "value": 1}]),
            json!([{"op": "move", "path": "/a"}]),
            json!([{"op": "remove", "path": 5}]),
        ] {
            assert!(
                matches!(
                    jp(json!({"a": 1}), patch.clone()),
                    Err(PatchError::Malformed(_))
                ),
                "{patch}"
            );
        }
    }

    #[test]
    fn smp_kubectl_apply_set_element_order() {
        let mut original = deployment();
        original["metadata"]["annotations"] = json!({"other": "x"});
        let got = smp(
            "Deployment",
            original,
            json!({"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}"}},
                   "spec":{"template":{"spec":{
                       "$setElementOrder/containers":[{"name":"nginx"},{"name":"sidecar"}],
                       "containers":[{"image":"nginx:1.27","name":"nginx"}]}}}}),
        );
        assert_eq!(
            got["metadata"]["annotations"],
            json!({"other": "x", "kubectl.kubernetes.io/last-applied-configuration": "{}"})
        );
        let containers = &got["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["name"], "nginx");
        assert_eq!(containers[0]["image"], "nginx:1.27");
        assert_eq!(containers[0]["env"][1], json!({"name": "B", "value": "b"}));
        assert_eq!(
            containers[1],
            json!({"name": "sidecar", "image": "busybox"})
        );
        assert_eq!(containers.as_array().unwrap().len(), 2);
    }

    #[test]
    fn smp_kubectl_retain_keys() {
        let got = smp(
            "Deployment",
            deployment(),
            json!({"spec":{"strategy":{"$retainKeys":["rollingUpdate","type"],
                                       "rollingUpdate":{"maxSurge":1},"type":"RollingUpdate"}}}),
        );
        assert_eq!(
            got["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}})
        );

        // Switching to Recreate drops rollingUpdate even though the patch does not null it.
        let got = smp(
            "Deployment",
            deployment(),
            json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}),
        );
        assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));

        // kubectl also sends the dropped key as null.
        let got = smp(
            "Deployment",
            deployment(),
            json!({"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":null,"type":"Recreate"}}}),
        );
        assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn smp_retain_keys_must_list_patched_keys() {
        let err = apply(
            "Deployment",
            &deployment(),
            &json!({"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":{"maxSurge":1}}}}),
            PatchType::StrategicMerge,
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::Unprocessable(m) if m.contains("$retainKeys")));
        let err = apply(
            "Deployment",
            &deployment(),
            &json!({"spec":{"strategy":{"$retainKeys":"type"}}}),
            PatchType::StrategicMerge,
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::Malformed(_)));
    }

    #[test]
    fn smp_kubectl_delete_element_and_nested_env() {
        let got = smp(
            "Deployment",
            deployment(),
            json!({"spec":{"template":{"spec":{
                "$setElementOrder/containers":[{"name":"nginx"}],
                "containers":[{"env":[{"name":"A","value":"1"}],"name":"nginx"},
                              {"$patch":"delete","name":"sidecar"}]}}}}),
        );
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"],
            json!([{"name": "nginx", "image": "nginx:1.26",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "b"}],
                    "ports": [{"containerPort": 80}]}])
        );
    }

    #[test]
    fn smp_list_in_list_merges_by_both_keys() {
        let got = smp(
            "Deployment",
            deployment(),
            json!({"spec":{"template":{"spec":{"containers":[
                {"name":"nginx","env":[{"name":"B","value":null,"valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}},
                                       {"name":"C","value":"c"}],
                 "ports":[{"containerPort":443}]},
                {"name":"new","image":"redis","env":[{"name":"X","value":"x"}]}
            ]}}}}),
        );
        let containers = &got["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "A", "value": "0"},
                   {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                   {"name": "C", "value": "c"}])
        );
        assert_eq!(
            containers[0]["ports"],
            json!([{"containerPort": 80}, {"containerPort": 443}])
        );
        assert_eq!(containers[1]["name"], "sidecar");
        assert_eq!(
            containers[2],
            json!({"name": "new", "image": "redis", "env": [{"name": "X", "value": "x"}]})
        );
    }

    #[test]
    fn smp_maps_merge_and_null_deletes() {
        let got = smp(
            "Pod",
            json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}, "spec": {"nodeName": "n1"}}),
            json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"nodeName": null}}),
        );
        assert_eq!(
            got,
            json!({"metadata": {"name": "p", "labels": {"b": "2", "c": "3"}}, "spec": {}})
        );
    }

    #[test]
    fn smp_atomic_lists_are_replaced() {
        let got = smp(
            "Deployment",
            deployment(),
            json!({"spec":{"template":{"spec":{"tolerations":[{"key":"y","operator":"Equal","value":"v"}]}}}}),
        );
        assert_eq!(
            got["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "y", "operator": "Equal", "value": "v"}])
        );
        let got = smp(
            "Node",
            json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}}),
            json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}}),
        );
        assert_eq!(
            got["spec"]["taints"],
            json!([{"key": "b", "effect": "NoExecute"}])
        );
        let got = smp(
            "Endpoints",
            json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}),
            json!({"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]}),
        );
        assert_eq!(got["subsets"], json!([{"addresses": [{"ip": "10.0.0.2"}]}]));
    }

    #[test]
    fn smp_primitive_merge_lists() {
        let got = smp(
            "Deployment",
            deployment(),
            json!({"metadata": {"finalizers": ["b", "c", "c"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["a", "b", "c"]));

        let got = smp(
            "Deployment",
            deployment(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["d"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["b", "d"]));

        let got = smp(
            "Deployment",
            deployment(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "b"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!([]));

        let got = smp(
            "Deployment",
            deployment(),
            json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"], "finalizers": ["c"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["c", "b", "a"]));

        let got = smp(
            "Deployment",
            deployment(),
            json!({"metadata": {"finalizers": [{"$patch": "replace"}, "z"]}}),
        );
        assert_eq!(got["metadata"]["finalizers"], json!(["z"]));

        // Template metadata has the same table.
        let got = smp(
            "ReplicaSet",
            json!({"spec": {"template": {"metadata": {"finalizers": ["x"]}}}}),
            json!({"spec": {"template": {"metadata": {"finalizers": ["y"]}}}}),
        );
        assert_eq!(
            got["spec"]["template"]["metadata"]["finalizers"],
            json!(["x", "y"])
        );
    }

    #[test]
    fn smp_owner_references_and_conditions() {
        let got = smp(
            "Pod",
            json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "rs-a"}]},
                   "status": {"conditions": [{"type": "Ready", "status": "False"},
                                             {"type": "PodScheduled", "status": "True"}],
                              "containerStatuses": [{"name": "a", "ready": true}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "rs-b"}]},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}],
                              "containerStatuses": [{"name": "b", "ready": false}]}}),
        );
        assert_eq!(
            got["metadata"]["ownerReferences"],
            json!([{"uid": "1", "name": "rs-a"}, {"uid": "2", "name": "rs-b"}])
        );
        assert_eq!(
            got["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}])
        );
        assert_eq!(
            got["status"]["containerStatuses"],
            json!([{"name": "b", "ready": false}])
        );
    }

    #[test]
    fn smp_service_ports_and_node_addresses() {
        let got = smp(
            "Service",
            json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}),
            json!({"spec": {"ports": [{"port": 443, "targetPort": 8443}, {"port": 8080}]}}),
        );
        assert_eq!(
            got["spec"]["ports"],
            json!([{"port": 80, "name": "http"},
                   {"port": 443, "name": "https", "targetPort": 8443},
                   {"port": 8080}])
        );
        let got = smp(
            "Node",
            json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                              "images": [{"names": ["a"]}]}}),
            json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}],
                              "images": [{"names": ["b"]}]}}),
        );
        assert_eq!(
            got["status"]["addresses"],
            json!([{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}])
        );
        assert_eq!(got["status"]["images"], json!([{"names": ["b"]}]));
    }

    #[test]
    fn smp_patch_replace_directive() {
        // In a map: the map becomes the patch's map.
        let got = smp(
            "Deployment",
            deployment(),
            json!({"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}}),
        );
        assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));

        // As a list element: the list becomes the other elements.
        let got = smp(
            "Deployment",
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "solo", "image": "x", "env": [{"$patch": "delete", "name": "gone"}, {"name": "K", "value": "v"}]},
                {"$patch": "replace"}
            ]}}}}),
        );
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"],
            json!([{"name": "solo", "image": "x", "env": [{"name": "K", "value": "v"}]}])
        );
    }

    #[test]
    fn smp_patch_delete_directive() {
        let got = smp(
            "Deployment",
            deployment(),
            json!({"spec": {"strategy": {"$patch": "delete"}, "replicas": 4}}),
        );
        assert!(got["spec"].get("strategy").is_none());
        assert_eq!(got["spec"]["replicas"], 4);

        let got = smp(
            "Service",
            json!({"spec": {"ports": [{"port": 80}, {"port": 443}]}}),
            json!({"spec": {"ports": [{"$patch": "delete", "port": 80}]}}),
        );
        assert_eq!(got["spec"]["ports"], json!([{"port": 443}]));

        let err = apply(
            "Service",
            &json!({"spec": {"ports": [{"port": 80}]}}),
            &json!({"spec": {"ports": [{"$patch": "delete", "name": "http"}]}}),
            PatchType::StrategicMerge,
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::Malformed(_)));

        let err = apply(
            "Pod",
            &json!({"a": 1}),
            &json!({"$patch": "delete"}),
            PatchType::StrategicMerge,
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::Unprocessable(_)));
    }

    #[test]
    fn smp_patch_merge_directive() {
        let got = smp(
            "Deployment",
            deployment(),
            json!({"spec": {"strategy": {"$patch": "merge", "type": "RollingUpdate"},
                            "template": {"spec": {"containers": [{"$patch": "merge"}, {"name": "sidecar", "image": "alpine"}]}}}}),
        );
        assert_eq!(got["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let containers = &got["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().unwrap().len(), 2);
        assert_eq!(containers[1]["image"], "alpine");
    }

    #[test]
    fn smp_bad_directives() {
        for patch in [
            json!({"spec": {"strategy": {"$patch": "explode"}}}),
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "explode", "name": "x"}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": ["nginx"]}}}}),
            json!({"metadata": {"finalizers": [{"$patch": "delete"}]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"image": "x"}]}}}}),
            json!({"spec": {"template": {"spec": {"$setElementOrder/containers": {"name": "x"}}}}}),
            json!(["not", "an", "object"]),
        ] {
            let got = apply(
                "Deployment",
                &deployment(),
                &patch,
                PatchType::StrategicMerge,
            );
            assert!(
                matches!(got, Err(PatchError::Malformed(_))),
                "{patch}: {got:?}"
            );
        }
    }

    #[test]
    fn smp_set_element_order_interleaves_server_only_items() {
        // Server has a, x (server-only, e.g. injected), b; the patch orders b before a and adds c.
        // x stays ahead of b, which it preceded on the server (Kubernetes' interleaving).
        let original =
            json!({"spec": {"containers": [{"name": "a"}, {"name": "x"}, {"name": "b"}]}});
        let got = smp(
            "Pod",
            original.clone(),
            json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}, {"name": "c"}],
                            "containers": [{"name": "c"}]}}),
        );
        assert_eq!(
            got["spec"]["containers"],
            json!([{"name": "x"}, {"name": "b"}, {"name": "a"}, {"name": "c"}])
        );
        // Order only, without a list in the patch.
        let got = smp(
            "Pod",
            original,
            json!({"spec": {"$setElementOrder/containers": [{"name": "x"}, {"name": "a"}]}}),
        );
        assert_eq!(
            got["spec"]["containers"],
            json!([{"name": "x"}, {"name": "a"}, {"name": "b"}])
        );
    }

    #[test]
    fn smp_directives_never_leak_into_new_fields() {
        // None of these fields exist in the original: the patch's values are taken, cleaned.
        let got = smp(
            "Pod",
            json!({"metadata": {"name": "p"}}),
            json!({
                "metadata": {"labels": {"$patch": "replace", "a": "1", "gone": null},
                             "$deleteFromPrimitiveList/finalizers": ["x"],
                             "$setElementOrder/finalizers": ["y"],
                             "finalizers": ["y"]},
                "spec": {
                    "$setElementOrder/containers": [{"name": "c"}],
                    "containers": [{"name": "c", "env": [{"$patch": "delete", "name": "E"}, {"name": "F", "value": "f"}],
                                    "resources": {"$patch": "merge", "limits": {"cpu": "1"}}},
                                   {"$patch": "delete", "name": "d"}],
                    "tolerations": [{"key": "k", "$patch": "merge"}],
                    "affinity": {"$retainKeys": ["nodeAffinity"], "nodeAffinity": {}},
                    "securityContext": {"$patch": "delete"}
                }
            }),
        );
        assert_eq!(
            got,
            json!({
                "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["y"]},
                "spec": {
                    "containers": [{"name": "c", "env": [{"name": "F", "value": "f"}],
                                    "resources": {"limits": {"cpu": "1"}}}],
                    "tolerations": [{"key": "k"}],
                    "affinity": {"nodeAffinity": {}}
                }
            })
        );
    }

    #[test]
    fn smp_type_changes_replace() {
        let got = smp(
            "Pod",
            json!({"spec": {"a": [1], "b": {"c": 1}, "d": "s"}}),
            json!({"spec": {"a": {"x": 1, "y": null}, "b": "str", "d": [{"$patch": "delete", "k": 1}, 2]}}),
        );
        assert_eq!(got, json!({"spec": {"a": {"x": 1}, "b": "str", "d": [2]}}));
    }

    #[test]
    fn strategies_table() {
        use ListStrategy::*;
        let cases: &[(&str, &[&str], Option<ListStrategy>)] = &[
            ("Pod", &["spec", "containers"], Some(MergeByKey("name"))),
            (
                "Pod",
                &["spec", "initContainers", "env"],
                Some(MergeByKey("name")),
            ),
            (
                "Pod",
                &["spec", "ephemeralContainers", "volumeMounts"],
                Some(MergeByKey("mountPath")),
            ),
            (
                "Pod",
                &["spec", "containers", "volumeDevices"],
                Some(MergeByKey("devicePath")),
            ),
            ("Pod", &["spec", "containers", "resizePolicy"], None),
            ("Pod", &["spec", "containers", "args"], None),
            ("Pod", &["spec", "volumes"], Some(MergeByKey("name"))),
            (
                "Pod",
                &["spec", "imagePullSecrets"],
                Some(MergeByKey("name")),
            ),
            ("Pod", &["spec", "hostAliases"], Some(MergeByKey("ip"))),
            (
                "Pod",
                &["spec", "topologySpreadConstraints"],
                Some(MergeByKey("topologyKey")),
            ),
            ("Pod", &["spec", "tolerations"], None),
            ("Pod", &["status", "conditions"], Some(MergeByKey("type"))),
            ("Pod", &["status", "containerStatuses"], None),
            ("Pod", &["status", "initContainerStatuses"], None),
            ("Pod", &["spec", "template", "spec", "containers"], None),
            (
                "Deployment",
                &["spec", "template", "spec", "containers", "ports"],
                Some(MergeByKey("containerPort")),
            ),
            (
                "ReplicaSet",
                &["spec", "template", "metadata", "ownerReferences"],
                Some(MergeByKey("uid")),
            ),
            ("Deployment", &["spec", "containers"], None),
            (
                "Deployment",
                &["status", "conditions"],
                Some(MergeByKey("type")),
            ),
            (
                "ReplicaSet",
                &["status", "conditions"],
                Some(MergeByKey("type")),
            ),
            (
                "Namespace",
                &["status", "conditions"],
                Some(MergeByKey("type")),
            ),
            ("Namespace", &["spec", "finalizers"], None),
            ("Node", &["status", "conditions"], Some(MergeByKey("type"))),
            ("Node", &["status", "addresses"], Some(MergeByKey("type"))),
            ("Node", &["status", "images"], None),
            ("Node", &["spec", "taints"], None),
            ("Service", &["spec", "ports"], Some(MergeByKey("port"))),
            ("Endpoints", &["subsets"], None),
            ("Event", &["metadata", "finalizers"], Some(MergePrimitive)),
            (
                "Lease",
                &["metadata", "ownerReferences"],
                Some(MergeByKey("uid")),
            ),
            ("Scale", &["metadata", "finalizers"], Some(MergePrimitive)),
            ("Scale", &["metadata", "managedFields"], None),
        ];
        for (kind, path, want) in cases {
            assert_eq!(list_strategy(kind, path), *want, "{kind} {path:?}");
        }
    }
}
