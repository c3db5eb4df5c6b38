//! The garbage collector's decisions (Kubernetes' `attemptToDeleteItem`, in pure form): given
//! what became of each owner of an object, delete it, drop the references to owners that are
//! gone, or keep it; and when an owner deleted in the foreground or orphaning may finally go.

use serde_json::Value;

use crate::meta;

/// The finalizer holding an owner until its dependents are gone.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer holding an owner until its dependents no longer name it.
pub const ORPHAN: &str = "orphan";

/// What became of one owner, as the collector found it (in its caches, and by a live read
/// before anything is deleted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// It exists with the referenced uid and is not being deleted.
    Exists,
    /// It is being deleted with the `foregroundDeletion` finalizer: its dependents go first.
    DeletingForeground,
    /// It is being deleted with the `orphan` finalizer: its dependents stay, unowned.
    DeletingOrphan,
    /// No object of that kind and name has the referenced uid (it was deleted, or never
    /// existed).
    Absent,
    /// It could not be told (a kind navarch does not serve, a read that failed): the object
    /// is left alone.
    Unknown,
}

/// What to do with a dependent.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Keep,
    /// Delete it (at its uid), in the background.
    Delete,
    /// Rewrite its `ownerReferences` to these (the references to owners that are gone, or
    /// orphaning it, dropped).
    SetOwners(Value),
}

/// Decides about `obj` given what became of each of its owners, in the order of its
/// `ownerReferences` (`owners[i]` is the fate of reference `i`).
pub fn dependent(obj: &Value, owners: &[Owner]) -> Decision {
    let refs = meta::owner_refs(obj);
    if refs.is_empty() || refs.len() != owners.len() || meta::is_deleting(obj) {
        return Decision::Keep;
    }
    if owners.contains(&Owner::Unknown) {
        return Decision::Keep;
    }
    // Every owner gone, or going first in the foreground: the dependent goes.
    if owners
        .iter()
        .all(|o| matches!(o, Owner::Absent | Owner::DeletingForeground))
    {
        return Decision::Delete;
    }
    // Some owners stay: drop the references to those that are gone or orphan it.
    let keep: Vec<Value> = refs
        .iter()
        .zip(owners)
        .filter(|(_, o)| matches!(o, Owner::Exists | Owner::DeletingForeground))
        .map(|(r, _)| r.clone())
        .collect();
    if keep.len() == refs.len() {
        Decision::Keep
    } else {
        Decision::SetOwners(Value::Array(keep))
    }
}

/// An owner held by a GC finalizer: its `metadata.finalizers` without it once `remaining`
/// dependents (those still naming it) allow, `None` while it must wait.
pub fn release_owner(owner: &Value, remaining: usize) -> Option<Value> {
    if !meta::is_deleting(owner) || remaining > 0 {
        return None;
    }
    let list = owner["metadata"]["finalizers"].as_array()?;
    if !list
        .iter()
        .any(|f| matches!(f.as_str(), Some(FOREGROUND) | Some(ORPHAN)))
    {
        return None;
    }
    Some(Value::Array(
        list.iter()
            .filter(|f| !matches!(f.as_str(), Some(FOREGROUND) | Some(ORPHAN)))
            .cloned()
            .collect(),
    ))
}

/// The fate of an owner read as `found` (`None`: no object of that kind and name) for a
/// reference naming `uid`.
pub fn owner_state(found: Option<&Value>, uid: &str) -> Owner {
    let Some(o) = found else {
        return Owner::Absent;
    };
    if meta::uid(o) != uid {
        return Owner::Absent;
    }
    if !meta::is_deleting(o) {
        return Owner::Exists;
    }
    let has = |f: &str| {
        o["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x.as_str() == Some(f)))
    };
    if has(FOREGROUND) {
        Owner::DeletingForeground
    } else if has(ORPHAN) {
        Owner::DeletingOrphan
    } else {
        // Being deleted in the background: it still exists until it is gone.
        Owner::Exists
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_owners(n: usize) -> Value {
        let refs: Vec<Value> = (0..n)
            .map(|i| json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("o{i}"), "uid": format!("u{i}")}))
            .collect();
        json!({"metadata": {"name": "p", "uid": "p", "ownerReferences": refs}})
    }

    #[test]
    fn decisions_follow_the_owners() {
        use Owner::*;
        let table: &[(&[Owner], &str)] = &[
            (&[Exists], "keep"),
            (&[Absent], "delete"),
            (&[DeletingForeground], "delete"),
            (&[DeletingOrphan], "owners 0"),
            (&[Unknown], "keep"),
            (&[Exists, Absent], "owners 1"),
            (&[Absent, Absent], "delete"),
            (&[Absent, DeletingForeground], "delete"),
            (&[Exists, DeletingOrphan], "owners 1"),
            (&[Absent, Unknown], "keep"),
            (&[Exists, DeletingForeground], "keep"),
        ];
        for (owners, want) in table {
            let got = match dependent(&with_owners(owners.len()), owners) {
                Decision::Keep => "keep".to_string(),
                Decision::Delete => "delete".to_string(),
                Decision::SetOwners(v) => format!("owners {}", v.as_array().unwrap().len()),
            };
            assert_eq!(&got, want, "{owners:?}");
        }
        // No owners, or already deleting: nothing to do.
        assert_eq!(dependent(&json!({"metadata": {}}), &[]), Decision::Keep);
        let mut d = with_owners(1);
        d["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(dependent(&d, &[Absent]), Decision::Keep);
    }

    #[test]
    fn owner_states_and_release() {
        let o = json!({"metadata": {"uid": "u1"}});
        assert_eq!(owner_state(Some(&o), "u1"), Owner::Exists);
        assert_eq!(owner_state(Some(&o), "u2"), Owner::Absent);
        assert_eq!(owner_state(None, "u1"), Owner::Absent);
        let fg = json!({"metadata": {"uid": "u1", "deletionTimestamp": "t",
                        "finalizers": ["foregroundDeletion", "example.com/x"]}});
        assert_eq!(owner_state(Some(&fg), "u1"), Owner::DeletingForeground);
        assert_eq!(release_owner(&fg, 1), None);
        assert_eq!(release_owner(&fg, 0), Some(json!(["example.com/x"])));
        let or =
            json!({"metadata": {"uid": "u1", "deletionTimestamp": "t", "finalizers": ["orphan"]}});
        assert_eq!(owner_state(Some(&or), "u1"), Owner::DeletingOrphan);
        assert_eq!(release_owner(&or, 0), Some(json!([])));
        assert_eq!(release_owner(&o, 0), None);
    }
}
