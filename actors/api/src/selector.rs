//! Label selectors (the full string syntax and `metav1.LabelSelector` objects) and field
//! selectors, parsed once and matched against objects.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

/// A parsed label selector: every requirement must hold. Empty selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    // helper: selector
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),h notin (i),j,!k` (and `==`).
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let _ = s;
        unimplemented!("helper: selector")
    }
    /// From a `metav1.LabelSelector` JSON object (`matchLabels`, `matchExpressions`).
    pub fn from_object(selector: &Value) -> Result<LabelSelector, SelectorError> {
        let _ = selector;
        unimplemented!("helper: selector")
    }
    /// Whether the labels (a JSON object of strings, or `Null` for none) match.
    pub fn matches(&self, labels: &Value) -> bool {
        let _ = labels;
        unimplemented!("helper: selector")
    }
    pub fn is_empty(&self) -> bool {
        unimplemented!("helper: selector")
    }
}

impl std::fmt::Display for LabelSelector {
    /// The canonical string form (as in a Scale's `status.selector`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let _ = f;
        unimplemented!("helper: selector")
    }
}

/// A parsed field selector: `metadata.name=x,spec.nodeName!=y`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    // helper: selector
}

impl FieldSelector {
    /// Parses a field selector for objects of `kind` (e.g. `Pod`). Every kind supports
    /// `metadata.name` and `metadata.namespace`; a field the kind does not support is an error
    /// worded like Kubernetes': `field label not supported: <field>`.
    pub fn parse(kind: &str, s: &str) -> Result<FieldSelector, SelectorError> {
        let _ = (kind, s);
        unimplemented!("helper: selector")
    }
    pub fn matches(&self, object: &Value) -> bool {
        let _ = object;
        unimplemented!("helper: selector")
    }
    /// The value required for `metadata.name` by an `=` term, if any (lets a list be a get).
    pub fn required_name(&self) -> Option<&str> {
        unimplemented!("helper: selector")
    }
}
