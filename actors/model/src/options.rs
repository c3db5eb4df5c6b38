//! The options of API requests (Kubernetes' query parameters and `DeleteOptions`), parsed
//! once and shared by the API server, which reads them from a request, and its clients,
//! which write them into one.
//!
//! Parsing follows kube-apiserver: a value it would refuse is a 400 (or 422 where Kubernetes
//! answers `Invalid`) naming the parameter; parameters it does not know are ignored, as
//! Kubernetes ignores them.

use std::time::Duration;

use serde_json::{json, Value};

use crate::patch::PatchType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::validate::FieldValidation;

/// Query parameters as `(name, value)` pairs, in the order given.
pub type QueryPairs = [(String, String)];

fn get<'a>(q: &'a QueryPairs, name: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn flag(q: &QueryPairs, name: &str) -> Result<Option<bool>, ApiError> {
    match get(q, name) {
        None | Some("") => Ok(None),
        Some("true") | Some("1") => Ok(Some(true)),
        Some("false") | Some("0") => Ok(Some(false)),
        Some(other) => Err(ApiError::bad_request(format!(
            "{name} must be true or false, got {other:?}"
        ))),
    }
}

fn non_empty(q: &QueryPairs, name: &str) -> Option<String> {
    get(q, name).filter(|v| !v.is_empty()).map(str::to_string)
}

/// Options of a get.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetOptions {
    /// `""`/absent: the latest (linearizable); `"0"`: any; `N`: at least revision N.
    pub resource_version: Option<String>,
}

impl GetOptions {
    pub fn from_query(q: &QueryPairs) -> GetOptions {
        GetOptions {
            resource_version: non_empty(q, "resourceVersion"),
        }
    }

    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(rv) = &self.resource_version {
            out.push(("resourceVersion".into(), rv.clone()));
        }
        out
    }
}

/// Options of a list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

fn selectors(kind: &str, q: &QueryPairs) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let label_selector = match get(q, "labelSelector") {
        Some(s) => LabelSelector::parse(s)
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
        None => LabelSelector::default(),
    };
    let field_selector = match get(q, "fieldSelector") {
        Some(s) => FieldSelector::parse(kind, s).map_err(|e| ApiError::bad_request(e.0))?,
        None => FieldSelector::default(),
    };
    Ok((label_selector, field_selector))
}

fn push_selectors(out: &mut Vec<(String, String)>, l: &LabelSelector, f: &FieldSelector) {
    if !l.is_empty() {
        out.push(("labelSelector".into(), l.to_string()));
    }
    if !f.is_empty() {
        out.push(("fieldSelector".into(), f.to_string()));
    }
}

impl ListOptions {
    /// Reads a list's parameters for objects of `kind` (field selectors depend on the kind).
    pub fn from_query(kind: &str, q: &QueryPairs) -> Result<ListOptions, ApiError> {
        let (label_selector, field_selector) = selectors(kind, q)?;
        let limit = match get(q, "limit") {
            None | Some("") => None,
            Some(l) => Some(l.parse::<usize>().map_err(|_| {
                ApiError::bad_request(format!("limit must be a non-negative integer, got {l:?}"))
            })?),
        };
        Ok(ListOptions {
            label_selector,
            field_selector,
            limit,
            continue_token: non_empty(q, "continue"),
            resource_version: get(q, "resourceVersion").map(str::to_string),
            resource_version_match: non_empty(q, "resourceVersionMatch"),
        })
    }

    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        push_selectors(&mut out, &self.label_selector, &self.field_selector);
        if let Some(l) = self.limit {
            out.push(("limit".into(), l.to_string()));
        }
        if let Some(c) = &self.continue_token {
            out.push(("continue".into(), c.clone()));
        }
        if let Some(rv) = &self.resource_version {
            out.push(("resourceVersion".into(), rv.clone()));
        }
        if let Some(m) = &self.resource_version_match {
            out.push(("resourceVersionMatch".into(), m.clone()));
        }
        out
    }
}

/// Options of a watch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchOptions {
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    /// Start after this revision; absent or `"0"` starts with the current objects as ADDED
    /// events (unless `send_initial_events` says otherwise).
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    /// Watch-list: the current objects first, then a bookmark marked as their end.
    pub send_initial_events: Option<bool>,
    pub allow_bookmarks: bool,
    /// The server ends the watch after this long (default: 30-60 minutes, spread).
    pub timeout: Option<Duration>,
}

impl WatchOptions {
    pub fn from_query(kind: &str, q: &QueryPairs) -> Result<WatchOptions, ApiError> {
        let (label_selector, field_selector) = selectors(kind, q)?;
        let timeout = match get(q, "timeoutSeconds") {
            None | Some("") => None,
            Some(t) => Some(Duration::from_secs(t.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("timeoutSeconds must be an integer, got {t:?}"))
            })?)),
        };
        let o = WatchOptions {
            label_selector,
            field_selector,
            resource_version: get(q, "resourceVersion").map(str::to_string),
            resource_version_match: non_empty(q, "resourceVersionMatch"),
            send_initial_events: flag(q, "sendInitialEvents")?,
            allow_bookmarks: flag(q, "allowWatchBookmarks")?.unwrap_or(false),
            timeout,
        };
        o.check()?;
        Ok(o)
    }

    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut out = vec![("watch".to_string(), "true".to_string())];
        push_selectors(&mut out, &self.label_selector, &self.field_selector);
        if let Some(rv) = &self.resource_version {
            out.push(("resourceVersion".into(), rv.clone()));
        }
        if let Some(m) = &self.resource_version_match {
            out.push(("resourceVersionMatch".into(), m.clone()));
        }
        if let Some(s) = self.send_initial_events {
            out.push(("sendInitialEvents".into(), s.to_string()));
        }
        if self.allow_bookmarks {
            out.push(("allowWatchBookmarks".into(), "true".into()));
        }
        if let Some(t) = self.timeout {
            out.push(("timeoutSeconds".into(), t.as_secs().to_string()));
        }
        out
    }

    /// Kubernetes' validation of watch options (a 422 before the stream starts).
    pub fn check(&self) -> Result<(), ApiError> {
        let invalid = |m: &str| ApiError::new(422, "Invalid", m.to_string());
        match (
            self.send_initial_events,
            self.resource_version_match.as_deref(),
        ) {
            (Some(true), Some("NotOlderThan")) if self.allow_bookmarks => Ok(()),
            (Some(true), Some("NotOlderThan")) => Err(invalid(
                "allowWatchBookmarks: Forbidden: allowWatchBookmarks must be true when sendInitialEvents is set",
            )),
            (Some(_), m) if m != Some("NotOlderThan") => Err(invalid(
                "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )),
            (None, Some(_)) => Err(invalid(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            )),
            _ => Ok(()),
        }
    }

    /// The legacy rule: no resourceVersion (or `0`) starts with a synthetic ADDED per object.
    pub fn wants_initial_events(&self) -> bool {
        match self.send_initial_events {
            Some(b) => b,
            None => matches!(
                self.resource_version.as_deref(),
                None | Some("") | Some("0")
            ),
        }
    }
}

/// Options every write takes (create, update, patch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    pub field_validation: FieldValidation,
    pub dry_run: bool,
    /// `fieldManager`: recorded for the audit log; navarch keeps no managedFields.
    pub field_manager: Option<String>,
}

fn dry_run(q: &QueryPairs) -> Result<bool, ApiError> {
    match get(q, "dryRun") {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "dryRun: unsupported value {other:?}, supported values: \"All\""
        ))),
    }
}

impl WriteOptions {
    pub fn from_query(q: &QueryPairs) -> Result<WriteOptions, ApiError> {
        let field_validation = match get(q, "fieldValidation") {
            None | Some("") => FieldValidation::Warn,
            Some(s) => FieldValidation::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "fieldValidation must be one of Ignore, Warn or Strict, got {s:?}"
                ))
            })?,
        };
        Ok(WriteOptions {
            field_validation,
            dry_run: dry_run(q)?,
            field_manager: non_empty(q, "fieldManager"),
        })
    }

    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let fv = match self.field_validation {
            FieldValidation::Ignore => "Ignore",
            FieldValidation::Warn => "Warn",
            FieldValidation::Strict => "Strict",
        };
        out.push(("fieldValidation".into(), fv.into()));
        if self.dry_run {
            out.push(("dryRun".into(), "All".into()));
        }
        if let Some(m) = &self.field_manager {
            out.push(("fieldManager".into(), m.clone()));
        }
        out
    }
}

/// How a delete treats the object's dependents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

impl Propagation {
    pub fn parse(s: &str) -> Result<Propagation, ApiError> {
        match s {
            "Orphan" => Ok(Propagation::Orphan),
            "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            other => Err(ApiError::new(
                422,
                "Invalid",
                format!("DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Orphan => "Orphan",
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
        }
    }
}

/// `DeleteOptions`, as far as navarch honours them (every field Kubernetes has but these is
/// refused, not ignored).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads a `DeleteOptions` JSON body (kind/apiVersion optional, as kubectl sends it).
    pub fn from_json(v: &Value) -> Result<DeleteOptions, ApiError> {
        let Some(obj) = v.as_object() else {
            return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
        };
        let mut o = DeleteOptions::default();
        for (k, val) in obj {
            match k.as_str() {
                "kind" | "apiVersion" => {}
                "gracePeriodSeconds" => {
                    o.grace_period_seconds = match val {
                        Value::Null => None,
                        v => Some(v.as_i64().ok_or_else(|| {
                            ApiError::bad_request("gracePeriodSeconds must be an integer")
                        })?),
                    }
                }
                "propagationPolicy" => {
                    o.propagation_policy = match val {
                        Value::Null => None,
                        Value::String(s) => Some(Propagation::parse(s)?),
                        _ => {
                            return Err(ApiError::bad_request("propagationPolicy must be a string"))
                        }
                    }
                }
                "orphanDependents" => {
                    if val.as_bool() == Some(true) {
                        o.propagation_policy = Some(Propagation::Orphan);
                    }
                }
                "preconditions" => {
                    if !(val.is_object() || val.is_null()) {
                        return Err(ApiError::bad_request("preconditions must be an object"));
                    }
                    o.precondition_uid = val["uid"].as_str().map(str::to_string);
                    o.precondition_resource_version =
                        val["resourceVersion"].as_str().map(str::to_string);
                }
                "dryRun" => o.dry_run = val.as_array().is_some_and(|a| !a.is_empty()),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "DeleteOptions: unknown field {other:?}"
                    )))
                }
            }
        }
        o.check()?;
        Ok(o)
    }

    /// Reads the query parameters of a delete on top of the body's options (the query wins,
    /// as in Kubernetes).
    pub fn with_query(mut self, q: &QueryPairs) -> Result<DeleteOptions, ApiError> {
        if let Some(g) = get(q, "gracePeriodSeconds").filter(|g| !g.is_empty()) {
            self.grace_period_seconds = Some(g.parse().map_err(|_| {
                ApiError::bad_request(format!("gracePeriodSeconds must be an integer, got {g:?}"))
            })?);
        }
        if let Some(p) = get(q, "propagationPolicy").filter(|p| !p.is_empty()) {
            self.propagation_policy = Some(Propagation::parse(p)?);
        }
        if dry_run(q)? {
            self.dry_run = true;
        }
        self.check()?;
        Ok(self)
    }

    pub fn check(&self) -> Result<(), ApiError> {
        if self.grace_period_seconds.is_some_and(|g| g < 0) {
            return Err(ApiError::new(
                422,
                "Invalid",
                "DeleteOptions.meta.k8s.io \"\" is invalid: gracePeriodSeconds: Invalid value: must be >= 0",
            ));
        }
        Ok(())
    }

    /// The JSON body a client sends.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"kind": "DeleteOptions", "apiVersion": "v1"});
        if let Some(g) = self.grace_period_seconds {
            v["gracePeriodSeconds"] = json!(g);
        }
        if let Some(p) = self.propagation_policy {
            v["propagationPolicy"] = json!(p.as_str());
        }
        if self.precondition_uid.is_some() || self.precondition_resource_version.is_some() {
            let mut pre = json!({});
            if let Some(u) = &self.precondition_uid {
                pre["uid"] = json!(u);
            }
            if let Some(r) = &self.precondition_resource_version {
                pre["resourceVersion"] = json!(r);
            }
            v["preconditions"] = pre;
        }
        if self.dry_run {
            v["dryRun"] = json!(["All"]);
        }
        v
    }
}

/// A patch: its format and its document.
#[derive(Clone, Debug, PartialEq)]
pub struct Patch {
    pub ty: PatchType,
    pub body: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn list_options_round_trip_through_the_query() {
        let o = ListOptions::from_query(
            "Pod",
            &q(&[
                ("labelSelector", "app=web,tier!=db"),
                ("fieldSelector", "spec.nodeName=n1"),
                ("limit", "5"),
                ("continue", "abc"),
                ("resourceVersion", "7"),
                ("resourceVersionMatch", "NotOlderThan"),
            ]),
        )
        .unwrap();
        assert_eq!(o.limit, Some(5));
        let back = ListOptions::from_query("Pod", &o.to_query()).unwrap();
        assert_eq!(back, o);
        assert_eq!(
            ListOptions::from_query("Pod", &q(&[("limit", "-1")]))
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            ListOptions::from_query("Pod", &q(&[("fieldSelector", "spec.nope=1")]))
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn watch_list_needs_not_older_than_and_bookmarks() {
        let ok = WatchOptions {
            send_initial_events: Some(true),
            resource_version_match: Some("NotOlderThan".into()),
            allow_bookmarks: true,
            ..WatchOptions::default()
        };
        assert!(ok.check().is_ok());
        assert!(ok.wants_initial_events());
        assert_eq!(WatchOptions::from_query("Pod", &ok.to_query()).unwrap(), ok);
        let no_bookmarks = WatchOptions {
            allow_bookmarks: false,
            ..ok.clone()
        };
        assert_eq!(no_bookmarks.check().unwrap_err().code, 422);
        let no_match = WatchOptions {
            resource_version_match: None,
            ..ok
        };
        assert_eq!(no_match.check().unwrap_err().code, 422);
    }

    #[test]
    fn legacy_watch_from_zero_or_nothing_starts_with_added_events() {
        let mut p = WatchOptions::default();
        assert!(p.wants_initial_events());
        p.resource_version = Some("0".into());
        assert!(p.wants_initial_events());
        p.resource_version = Some("17".into());
        assert!(!p.wants_initial_events());
    }

    #[test]
    fn write_options_refuse_unknown_values() {
        let o = WriteOptions::from_query(&q(&[
            ("fieldValidation", "Strict"),
            ("dryRun", "All"),
            ("fieldManager", "kubectl"),
        ]))
        .unwrap();
        assert_eq!(WriteOptions::from_query(&o.to_query()).unwrap(), o);
        assert_eq!(
            WriteOptions::from_query(&q(&[("fieldValidation", "Loose")]))
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            WriteOptions::from_query(&q(&[("dryRun", "Some")]))
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn delete_options_accept_kubectl_bodies_and_refuse_bad_policies() {
        let o = DeleteOptions::from_json(
            &json!({"propagationPolicy": "Foreground", "gracePeriodSeconds": 5}),
        )
        .unwrap();
        assert_eq!(o.propagation_policy, Some(Propagation::Foreground));
        assert_eq!(o.grace_period_seconds, Some(5));
        assert_eq!(DeleteOptions::from_json(&o.to_json()).unwrap(), o);
        assert_eq!(
            DeleteOptions::from_json(&json!({"propagationPolicy": "Sideways"}))
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            DeleteOptions::from_json(&json!({"gracePeriodSeconds": -1}))
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(DeleteOptions::from_json(&json!([])).unwrap_err().code, 400);
        let q = q(&[("propagationPolicy", "Orphan"), ("gracePeriodSeconds", "0")]);
        let o = DeleteOptions::default().with_query(&q).unwrap();
        assert_eq!(o.propagation_policy, Some(Propagation::Orphan));
        assert_eq!(o.grace_period_seconds, Some(0));
    }
}
