//! The namespace controller's decisions (Kubernetes' `namespacedResourcesDeleter`, in pure
//! form): a deleted namespace that still carries the `kubernetes` finalizer has its content
//! deleted kind by kind (normal deletions: pods get their grace period), its status
//! conditions say what is left and why, and once nothing is left the finalizer is removed
//! through the `finalize` subresource; the API server then removes the namespace.
//!
//! One pass of the controller: list every kind of [`deletable_kinds`] in the namespace (live
//! reads: the finalizer must not go while a cache lags behind), summarize each list with
//! [`Left::of`], ask [`plan`], delete the kinds the plan names, list again and carry out the
//! second plan's status and [`Next`] step. That is Kubernetes' pass (a deletecollection of
//! each resource, then a list of what remains), with the deletes skipped for kinds that
//! have nothing left to delete.
//!
//! Properties kept:
//! - the finalizer is removed only after a pass that listed every kind without an error
//!   and found nothing;
//! - the five conditions are always set, `False` with Kubernetes' "ok" reasons when nothing
//!   is wrong, and a condition's `lastTransitionTime` moves only when its status does;
//! - while content remains, the controller looks again: after the pods' grace period, or
//!   after [`FINALIZER_ESTIMATE_SECONDS`] for objects held by finalizers, or with backoff
//!   ([`retry_after`]) when something failed or is stuck.

use std::collections::BTreeMap;

use navarch_model::kinds::{self, Kind};
use serde_json::{json, Value};

use crate::meta;

/// The namespace controller's entry in a Namespace's `spec.finalizers`.
pub const FINALIZER: &str = "kubernetes";
/// How long objects held by finalizers are given before the next look (Kubernetes'
/// `finalizerEstimateSeconds`).
pub const FINALIZER_ESTIMATE_SECONDS: i64 = 15;
/// The longest wait between two looks at a namespace whose emptying fails.
pub const MAX_RETRY_SECONDS: i64 = 60;
/// A pod's grace period when its spec does not say (Kubernetes' default).
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// The conditions the controller keeps on a terminating namespace, in Kubernetes' order.
pub const DISCOVERY_FAILURE: &str = "NamespaceDeletionDiscoveryFailure";
pub const GROUP_VERSION_PARSING_FAILURE: &str = "NamespaceDeletionGroupVersionParsingFailure";
pub const CONTENT_FAILURE: &str = "NamespaceDeletionContentFailure";
pub const CONTENT_REMAINING: &str = "NamespaceContentRemaining";
pub const FINALIZERS_REMAINING: &str = "NamespaceFinalizersRemaining";
const CONDITION_TYPES: [&str; 5] = [
    DISCOVERY_FAILURE,
    GROUP_VERSION_PARSING_FAILURE,
    CONTENT_FAILURE,
    CONTENT_REMAINING,
    FINALIZERS_REMAINING,
];

/// The `False` ("nothing wrong") reason and message of each condition, as Kubernetes words
/// them.
fn ok_condition(type_: &str) -> (&'static str, &'static str) {
    match type_ {
        DISCOVERY_FAILURE => (
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        GROUP_VERSION_PARSING_FAILURE => (
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        CONTENT_FAILURE => (
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        _ => ("ContentRemoved", "All content successfully removed"),
    }
}

/// The kinds a namespace is emptied of: every stored namespaced kind that can be listed and
/// deleted (what Kubernetes finds by discovery; navarch's kinds are its table).
pub fn deletable_kinds() -> impl Iterator<Item = &'static Kind> {
    kinds::KINDS
        .iter()
        .filter(|k| k.namespaced && k.stored && k.serves("list") && k.serves("delete"))
}

/// Whether `ns` is the controller's to empty: deleted, and still carrying its finalizer.
pub fn needs_emptying(ns: &Value) -> bool {
    meta::is_deleting(ns) && spec_finalizers(ns).contains(&FINALIZER)
}

/// Whether the controller has anything to do for `ns`: empty it, or (a namespace deleted
/// without its phase following, as an older server may have left it) mark it `Terminating`.
pub fn needs_work(ns: &Value) -> bool {
    needs_emptying(ns) || (meta::is_deleting(ns) && phase(ns) != "Terminating")
}

fn spec_finalizers(ns: &Value) -> Vec<&str> {
    ns["spec"]["finalizers"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn object_or_empty(v: &Value) -> Value {
    if v.is_object() {
        v.clone()
    } else {
        json!({})
    }
}

fn phase(ns: &Value) -> &str {
    ns["status"]["phase"].as_str().unwrap_or("")
}

/// What is left of one kind in the namespace, as one list found it.
#[derive(Clone, Debug, PartialEq)]
pub struct Left {
    pub kind: &'static Kind,
    /// Objects still there, those being deleted included.
    pub count: usize,
    /// Objects not being deleted yet.
    pub live: usize,
    /// Each finalizer the objects carry, with how many carry it.
    pub finalizers: BTreeMap<String, usize>,
    /// Pods only: the longest `terminationGracePeriodSeconds` of the pods that have not
    /// ended (Kubernetes' estimate of their graceful termination).
    pub grace_seconds: i64,
    /// Why the kind could not be listed or deleted.
    pub error: Option<String>,
}

impl Left {
    /// Summarizes the objects of `kind` a list returned.
    pub fn of(kind: &'static Kind, objects: &[Value]) -> Left {
        let mut finalizers = BTreeMap::new();
        for o in objects {
            for f in o["metadata"]["finalizers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                *finalizers.entry(f.to_string()).or_insert(0) += 1;
            }
        }
        let grace_seconds = if kind.kind == "Pod" {
            objects
                .iter()
                .filter(|p| !meta::pod_terminated(p))
                .map(|p| {
                    p["spec"]["terminationGracePeriodSeconds"]
                        .as_i64()
                        .unwrap_or(DEFAULT_GRACE_SECONDS)
                })
                .max()
                .unwrap_or(0)
        } else {
            0
        };
        Left {
            kind,
            count: objects.len(),
            live: objects.iter().filter(|o| !meta::is_deleting(o)).count(),
            finalizers,
            grace_seconds,
            error: None,
        }
    }

    /// A kind that could not be listed (or deleted): `error` says why.
    pub fn failed(kind: &'static Kind, error: impl Into<String>) -> Left {
        Left {
            kind,
            count: 0,
            live: 0,
            finalizers: BTreeMap::new(),
            grace_seconds: 0,
            error: Some(error.into()),
        }
    }
}

/// What one pass found in the namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Content {
    /// Why the kinds to empty could not all be found (Kubernetes' discovery). navarch's
    /// kinds are its own table, so its controller never reports one; the condition is kept
    /// as Kubernetes has it.
    pub discovery_failure: Option<String>,
    /// Group versions that could not be parsed (as above: never, with navarch's table).
    pub group_version_failures: Vec<String>,
    /// What is left of each kind.
    pub kinds: Vec<Left>,
}

/// What the controller does after a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing: the namespace is not this controller's to empty.
    Nothing,
    /// Content remains that is going away: look again after this many seconds.
    LookAgain(i64),
    /// Something failed or is stuck: look again with backoff ([`retry_after`]).
    Retry,
    /// Nothing is left: `PUT finalize` with these `spec.finalizers` (the controller's own
    /// removed).
    Finalize(Vec<String>),
}

/// The decisions of one pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Kinds with objects not yet being deleted (or that could not be listed): delete
    /// them, as a deletecollection with default options.
    pub delete: Vec<&'static Kind>,
    /// The namespace's new `status` (phase `Terminating`, the five conditions), when it
    /// differs from what it has.
    pub status: Option<Value>,
    pub next: Next,
}

/// `group/version, Resource=plural`, as Go prints a GroupVersionResource.
fn gvr(kind: &Kind) -> String {
    format!("{}/{}, Resource={}", kind.group, kind.version, kind.plural)
}

/// Decides a pass over `ns` on what was found, at `now` (Unix seconds).
pub fn plan(ns: &Value, content: &Content, now: i64) -> Plan {
    if !needs_work(ns) {
        return Plan {
            delete: Vec::new(),
            status: None,
            next: Next::Nothing,
        };
    }
    if !needs_emptying(ns) {
        // Deleted and finalized by others already: only the phase is ours to fix.
        let mut status = object_or_empty(&ns["status"]);
        status["phase"] = json!("Terminating");
        return Plan {
            delete: Vec::new(),
            status: Some(status),
            next: Next::Nothing,
        };
    }
    let name = meta::name(ns);
    let deleted_at = ns["metadata"]["deletionTimestamp"]
        .as_str()
        .and_then(meta::parse_rfc3339)
        .unwrap_or(now);
    let mut errors: Vec<String> = Vec::new();
    let mut remaining: Vec<String> = Vec::new();
    let mut finalizers: BTreeMap<&str, usize> = BTreeMap::new();
    let mut look_again = 0i64;
    let mut delete = Vec::new();
    for left in &content.kinds {
        if let Some(e) = &left.error {
            errors.push(e.clone());
        }
        if left.live > 0 || left.error.is_some() {
            delete.push(left.kind);
        }
        if left.count == 0 {
            continue;
        }
        remaining.push(format!(
            "{}.{} has {} resource instances",
            left.kind.plural, left.kind.group, left.count
        ));
        for (f, n) in &left.finalizers {
            *finalizers.entry(f.as_str()).or_insert(0) += n;
        }
        // Pods still within their grace period are going: look again when it has passed.
        let grace_left = deleted_at + left.grace_seconds - now;
        if grace_left > 0 {
            look_again = look_again.max(grace_left);
        } else if !left.finalizers.is_empty() {
            look_again = look_again.max(FINALIZER_ESTIMATE_SECONDS);
        } else {
            errors.push(format!(
                "unexpected items still remain in namespace: {name} for gvr: {}",
                gvr(left.kind)
            ));
        }
    }
    remaining.sort();
    errors.sort();
    let mut failing: Vec<(&str, &str, String)> = Vec::new();
    if let Some(e) = &content.discovery_failure {
        failing.push((DISCOVERY_FAILURE, "DiscoveryFailed", e.clone()));
    }
    if !content.group_version_failures.is_empty() {
        failing.push((
            GROUP_VERSION_PARSING_FAILURE,
            "GroupVersionParsingFailed",
            content.group_version_failures.join(", "),
        ));
    }
    if !errors.is_empty() {
        failing.push((
            CONTENT_FAILURE,
            "ContentDeletionFailed",
            format!(
                "Failed to delete all resource types, {} remaining: {}",
                errors.len(),
                errors.join(", ")
            ),
        ));
    }
    if !remaining.is_empty() {
        failing.push((
            CONTENT_REMAINING,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", remaining.join(", ")),
        ));
    }
    if !finalizers.is_empty() {
        let list: Vec<String> = finalizers
            .iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        failing.push((
            FINALIZERS_REMAINING,
            "SomeFinalizerRemain",
            format!("Some finalizers are remaining: {}", list.join(", ")),
        ));
    }
    let status = conditions_status(ns, &failing, now);
    let failed = content.discovery_failure.is_some()
        || !content.group_version_failures.is_empty()
        || !errors.is_empty();
    let next = if failed {
        Next::Retry
    } else if !remaining.is_empty() {
        Next::LookAgain(look_again.max(1))
    } else {
        let mut rest: Vec<String> = spec_finalizers(ns)
            .into_iter()
            .filter(|f| *f != FINALIZER)
            .map(str::to_string)
            .collect();
        rest.sort();
        rest.dedup();
        Next::Finalize(rest)
    };
    Plan {
        delete,
        status,
        next,
    }
}

/// The namespace's status with phase `Terminating` and the five conditions set (`failing`:
/// type, reason, message of those that are `True`), or `None` when that is what it has
/// (Kubernetes' `updateConditions`).
fn conditions_status(ns: &Value, failing: &[(&str, &str, String)], now: i64) -> Option<Value> {
    let mut status = object_or_empty(&ns["status"]);
    let now_s = meta::format_rfc3339(now);
    let mut changed = phase(ns) != "Terminating";
    status["phase"] = json!("Terminating");
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let list = status["conditions"]
        .as_array_mut()
        .expect("made an array above");
    for type_ in CONDITION_TYPES {
        let (state, reason, message) = match failing.iter().find(|(t, _, _)| *t == type_) {
            Some((_, reason, message)) => ("True", *reason, message.clone()),
            None => {
                let (reason, message) = ok_condition(type_);
                ("False", reason, message.to_string())
            }
        };
        match list.iter_mut().find(|c| c["type"] == type_) {
            None => {
                list.push(json!({
                    "type": type_,
                    "status": state,
                    "lastTransitionTime": now_s,
                    "reason": reason,
                    "message": message,
                }));
                changed = true;
            }
            Some(c) => {
                if c["status"] != state || c["reason"] != reason || c["message"] != message {
                    if c["status"] != state {
                        c["lastTransitionTime"] = json!(now_s);
                    }
                    c["status"] = json!(state);
                    c["reason"] = json!(reason);
                    c["message"] = json!(message);
                    changed = true;
                }
            }
        }
    }
    changed.then_some(status)
}

/// Seconds to wait before the next look at a namespace whose emptying failed `failures`
/// times in a row (1, 2, 4, ... up to [`MAX_RETRY_SECONDS`]), as Kubernetes' work queue
/// backs off.
pub fn retry_after(failures: u32) -> i64 {
    1i64.checked_shl(failures.min(16))
        .unwrap_or(MAX_RETRY_SECONDS)
        .min(MAX_RETRY_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000;

    fn k(plural: &str) -> &'static Kind {
        kinds::KINDS
            .iter()
            .find(|k| k.plural == plural)
            .expect("a served kind")
    }

    fn ns(deleted: Option<i64>, finalizers: &[&str], phase: &str) -> Value {
        let mut n = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "shop", "uid": "u1"},
            "spec": {"finalizers": finalizers},
            "status": {"phase": phase},
        });
        if let Some(t) = deleted {
            n["metadata"]["deletionTimestamp"] = json!(meta::format_rfc3339(t));
        }
        n
    }

    fn terminating() -> Value {
        ns(Some(T0), &["kubernetes"], "Terminating")
    }

    fn pod(name: &str, deleting: bool, phase: &str, grace: Option<i64>) -> Value {
        let mut p = json!({"metadata": {"name": name, "namespace": "shop"},
                           "spec": {"nodeName": "n1"}, "status": {"phase": phase}});
        if deleting {
            p["metadata"]["deletionTimestamp"] = json!(meta::format_rfc3339(T0));
        }
        if let Some(g) = grace {
            p["spec"]["terminationGracePeriodSeconds"] = json!(g);
        }
        p
    }

    fn with_finalizers(name: &str, finalizers: &[&str]) -> Value {
        json!({"metadata": {"name": name, "namespace": "shop", "finalizers": finalizers,
                            "deletionTimestamp": meta::format_rfc3339(T0)}})
    }

    fn content(kinds: Vec<Left>) -> Content {
        Content {
            kinds,
            ..Content::default()
        }
    }

    fn condition<'a>(status: &'a Value, type_: &str) -> (&'a str, &'a str, &'a str) {
        let c = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == type_)
            .unwrap_or_else(|| panic!("no {type_} in {status}"));
        (
            c["status"].as_str().unwrap(),
            c["reason"].as_str().unwrap(),
            c["message"].as_str().unwrap(),
        )
    }

    #[test]
    fn the_kinds_emptied_are_the_namespaced_stored_ones() {
        let plurals: Vec<&str> = deletable_kinds().map(|k| k.plural).collect();
        for p in [
            "pods",
            "services",
            "deployments",
            "replicasets",
            "events",
            "leases",
        ] {
            assert!(plurals.contains(&p), "{p}: {plurals:?}");
        }
        for p in [
            "namespaces",
            "nodes",
            "clusterroles",
            "selfsubjectaccessreviews",
        ] {
            assert!(!plurals.contains(&p), "{p}");
        }
    }

    #[test]
    fn lists_are_summarized_per_kind() {
        let pods = [
            pod("a", false, "Running", Some(10)),
            pod("b", true, "Running", None),
            pod("c", false, "Succeeded", Some(600)),
        ];
        let l = Left::of(k("pods"), &pods);
        assert_eq!((l.count, l.live, l.grace_seconds), (3, 2, 30));
        assert!(l.finalizers.is_empty() && l.error.is_none());
        let held = [
            with_finalizers("x", &["example.com/a", "example.com/b"]),
            with_finalizers("y", &["example.com/a"]),
        ];
        let l = Left::of(k("services"), &held);
        assert_eq!((l.count, l.live, l.grace_seconds), (2, 0, 0));
        assert_eq!(
            l.finalizers,
            BTreeMap::from([("example.com/a".into(), 2), ("example.com/b".into(), 1)])
        );
        assert_eq!(Left::of(k("pods"), &[]).grace_seconds, 0);
    }

    #[test]
    fn namespaces_not_terminating_are_left_alone() {
        let empty = content(vec![]);
        let cases = [
            ("active", ns(None, &["kubernetes"], "Active")),
            ("finalized", ns(Some(T0), &[], "Terminating")),
            (
                "someone else's",
                ns(Some(T0), &["example.com/x"], "Terminating"),
            ),
        ];
        for (what, n) in cases {
            let p = plan(&n, &empty, T0);
            assert_eq!(p.next, Next::Nothing, "{what}");
            assert!(p.delete.is_empty() && p.status.is_none(), "{what}");
            assert!(!needs_work(&n), "{what}");
        }
        // Deleted but not marked Terminating: only the phase is fixed.
        let n = ns(Some(T0), &[], "Active");
        assert!(needs_work(&n) && !needs_emptying(&n));
        let p = plan(&n, &empty, T0);
        assert_eq!(p.next, Next::Nothing);
        assert_eq!(p.status.unwrap()["phase"], "Terminating");
    }

    /// One row: what was found, then what is deleted, which conditions are True (with
    /// their message, for those named), and what comes next.
    struct Row {
        what: &'static str,
        found: Vec<Left>,
        now: i64,
        delete: Vec<&'static str>,
        true_conditions: Vec<(&'static str, &'static str)>,
        next: Next,
    }

    #[test]
    fn a_pass_decides_on_what_is_left() {
        let pods_live = Left::of(
            k("pods"),
            &[
                pod("a", false, "Running", None),
                pod("b", false, "Running", None),
            ],
        );
        let pods_going = Left::of(
            k("pods"),
            &[
                pod("a", true, "Running", None),
                pod("b", true, "Running", None),
            ],
        );
        let services_held = Left::of(
            k("services"),
            &[with_finalizers("hold", &["example.com/hold"])],
        );
        let none = |plural| Left::of(k(plural), &[]);
        let rows = vec![
            Row {
                what: "nothing left: finalize",
                found: vec![none("pods"), none("services")],
                now: T0 + 1,
                delete: vec![],
                true_conditions: vec![],
                next: Next::Finalize(vec![]),
            },
            Row {
                what: "live objects are deleted",
                found: vec![
                    pods_live.clone(),
                    Left::of(
                        k("services"),
                        &[json!({"metadata": {"name": "c", "namespace": "shop"}})],
                    ),
                    none("services"),
                ],
                now: T0 + 1,
                delete: vec!["pods", "services"],
                true_conditions: vec![
                    (
                        CONTENT_FAILURE,
                        "Failed to delete all resource types, 1 remaining: unexpected items still remain in namespace: shop for gvr: /v1, Resource=services",
                    ),
                    (CONTENT_REMAINING, ""),
                ],
                // The config map should have gone: an error until the next look.
                next: Next::Retry,
            },
            Row {
                what: "pods in their grace period: look again when it is over",
                found: vec![pods_going.clone(), none("services")],
                now: T0 + 5,
                delete: vec![],
                true_conditions: vec![(
                    CONTENT_REMAINING,
                    "Some resources are remaining: pods. has 2 resource instances",
                )],
                next: Next::LookAgain(25),
            },
            Row {
                what: "pods past their grace period are stuck",
                found: vec![pods_going.clone()],
                now: T0 + 31,
                delete: vec![],
                true_conditions: vec![
                    (
                        CONTENT_FAILURE,
                        "Failed to delete all resource types, 1 remaining: unexpected items still remain in namespace: shop for gvr: /v1, Resource=pods",
                    ),
                    (CONTENT_REMAINING, ""),
                ],
                next: Next::Retry,
            },
            Row {
                what: "objects held by finalizers",
                found: vec![none("pods"), services_held.clone()],
                now: T0 + 1,
                delete: vec![],
                true_conditions: vec![
                    (
                        CONTENT_REMAINING,
                        "Some resources are remaining: services. has 1 resource instances",
                    ),
                    (
                        FINALIZERS_REMAINING,
                        "Some finalizers are remaining: example.com/hold in 1 resource instances",
                    ),
                ],
                next: Next::LookAgain(FINALIZER_ESTIMATE_SECONDS),
            },
            Row {
                what: "a kind that could not be listed is retried and deleted blindly",
                found: vec![
                    none("pods"),
                    Left::failed(k("services"), "services is forbidden"),
                ],
                now: T0 + 1,
                delete: vec!["services"],
                true_conditions: vec![(
                    CONTENT_FAILURE,
                    "Failed to delete all resource types, 1 remaining: services is forbidden",
                )],
                next: Next::Retry,
            },
            Row {
                what: "the longest wait wins, remaining kinds sorted",
                found: vec![
                    services_held.clone(),
                    pods_going.clone(),
                    Left::of(
                        k("deployments"),
                        &[with_finalizers("web", &["foregroundDeletion"])],
                    ),
                ],
                now: T0 + 1,
                delete: vec![],
                true_conditions: vec![
                    (
                        CONTENT_REMAINING,
                        "Some resources are remaining: deployments.apps has 1 resource instances, pods. has 2 resource instances, services. has 1 resource instances",
                    ),
                    (
                        FINALIZERS_REMAINING,
                        "Some finalizers are remaining: example.com/hold in 1 resource instances, foregroundDeletion in 1 resource instances",
                    ),
                ],
                next: Next::LookAgain(29),
            },
        ];
        for row in rows {
            let p = plan(&terminating(), &content(row.found), row.now);
            let deleted: Vec<&str> = p.delete.iter().map(|k| k.plural).collect();
            assert_eq!(deleted, row.delete, "{}", row.what);
            assert_eq!(p.next, row.next, "{}", row.what);
            let status = p.status.expect("the first pass sets the conditions");
            assert_eq!(status["phase"], "Terminating", "{}", row.what);
            assert_eq!(
                status["conditions"].as_array().unwrap().len(),
                5,
                "{}",
                row.what
            );
            for type_ in CONDITION_TYPES {
                let (state, reason, message) = condition(&status, type_);
                match row.true_conditions.iter().find(|(t, _)| *t == type_) {
                    Some((_, want)) => {
                        assert_eq!(state, "True", "{}: {type_}", row.what);
                        if !want.is_empty() {
                            assert_eq!(message, *want, "{}: {type_}", row.what);
                        }
                    }
                    None => {
                        assert_eq!(state, "False", "{}: {type_}", row.what);
                        assert_eq!((reason, message), ok_condition(type_), "{}", row.what);
                    }
                }
            }
        }
    }

    #[test]
    fn conditions_change_only_when_what_they_say_changes() {
        let found = content(vec![Left::of(
            k("pods"),
            &[pod("a", true, "Running", None)],
        )]);
        let first = plan(&terminating(), &found, T0 + 1).status.unwrap();
        let mut n = terminating();
        n["status"] = first.clone();
        // The same findings later: nothing to write.
        assert_eq!(plan(&n, &found, T0 + 2).status, None);
        // Fewer pods: the message changes, the transition time does not.
        let found2 = content(vec![Left::of(k("pods"), &[])]);
        let p = plan(&n, &found2, T0 + 9);
        let second = p.status.unwrap();
        let (state, reason, _) = condition(&second, CONTENT_REMAINING);
        assert_eq!((state, reason), ("False", "ContentRemoved"));
        let time = |s: &Value, t: &str| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap()["lastTransitionTime"]
                .clone()
        };
        assert_eq!(
            time(&second, CONTENT_REMAINING),
            json!(meta::format_rfc3339(T0 + 9))
        );
        assert_eq!(
            time(&second, DISCOVERY_FAILURE),
            time(&first, DISCOVERY_FAILURE)
        );
        assert_eq!(p.next, Next::Finalize(vec![]));
    }

    #[test]
    fn finalizing_keeps_the_other_finalizers() {
        let n = ns(
            Some(T0),
            &[
                "example.com/z",
                "kubernetes",
                "example.com/a",
                "example.com/z",
            ],
            "Terminating",
        );
        let p = plan(&n, &content(vec![]), T0);
        assert_eq!(
            p.next,
            Next::Finalize(vec!["example.com/a".into(), "example.com/z".into()])
        );
    }

    #[test]
    fn discovery_and_group_version_failures_are_reported_and_retried() {
        let c = Content {
            discovery_failure: Some("Discovery failed for some groups, 1 failing: x".into()),
            group_version_failures: vec!["bad group version \"a/b/c\"".into()],
            kinds: vec![],
        };
        let p = plan(&terminating(), &c, T0);
        assert_eq!(p.next, Next::Retry);
        let s = p.status.unwrap();
        assert_eq!(
            condition(&s, DISCOVERY_FAILURE),
            (
                "True",
                "DiscoveryFailed",
                "Discovery failed for some groups, 1 failing: x"
            )
        );
        assert_eq!(
            condition(&s, GROUP_VERSION_PARSING_FAILURE).1,
            "GroupVersionParsingFailed"
        );
    }

    #[test]
    fn retries_back_off_to_a_minute() {
        let waits: Vec<i64> = (0..9).map(retry_after).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retry_after(u32::MAX), MAX_RETRY_SECONDS);
    }
}
