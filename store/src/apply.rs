//! Pure transaction evaluation: current records and a transaction in, changes and events out.
//!
//! The state machine feeds it reads from RocksDB and writes what it returns; keeping the
//! decision here lets it be tested without Raft or a database.

use std::collections::HashMap;

use crate::types::{
    Event, EventKind, Object, ObjectKey, Op, Revision, StoredRecord, Txn, TxnFailure, TxnOutcome,
};

/// A change to write: the new record, or a deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Put(ObjectKey, StoredRecord),
    Delete(ObjectKey),
}

/// What applying one transaction produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluated {
    pub outcome: TxnOutcome,
    /// Empty when the transaction was refused.
    pub changes: Vec<Change>,
    pub events: Vec<Event>,
}

/// Evaluates `txn` against the state seen through `lookup`, at `revision` (the revision this
/// transaction gets if it commits). Operations see the effects of earlier operations of the
/// same transaction. Nothing is changed if any operation fails.
pub fn evaluate(
    txn: &Txn,
    revision: Revision,
    mut lookup: impl FnMut(&ObjectKey) -> Option<StoredRecord>,
) -> Evaluated {
    let mut acc = Accumulated::default();

    for (op_index, op) in txn.ops.iter().enumerate() {
        let key = op.key();
        let current = match acc.overlay.get(key) {
            Some(v) => v.clone(),
            None => lookup(key),
        };
        let actual = current.as_ref().map(|r| r.mod_revision);
        let refuse = |failure| Evaluated {
            outcome: TxnOutcome::Refused { op_index, failure },
            changes: Vec::new(),
            events: Vec::new(),
        };
        let check = |expected: Option<Revision>| {
            if expected.is_some() && expected != actual {
                Err(TxnFailure::Conflict {
                    key: key.clone(),
                    expected,
                    actual,
                })
            } else {
                Ok(())
            }
        };
        match op {
            Op::Create { value, .. } => {
                if current.is_some() {
                    return refuse(TxnFailure::AlreadyExists { key: key.clone() });
                }
                let rec = StoredRecord {
                    value: value.clone(),
                    create_revision: revision,
                    mod_revision: revision,
                };
                acc.put(key, rec, EventKind::Created);
            }
            Op::Update {
                value, expected, ..
            } => {
                let Some(cur) = current else {
                    return refuse(TxnFailure::NotFound { key: key.clone() });
                };
                if let Err(f) = check(*expected) {
                    return refuse(f);
                }
                let rec = StoredRecord {
                    value: value.clone(),
                    create_revision: cur.create_revision,
                    mod_revision: revision,
                };
                acc.put(key, rec, EventKind::Updated);
            }
            Op::Put { value, .. } => {
                let (create_revision, kind) = match &current {
                    Some(cur) => (cur.create_revision, EventKind::Updated),
                    None => (revision, EventKind::Created),
                };
                let rec = StoredRecord {
                    value: value.clone(),
                    create_revision,
                    mod_revision: revision,
                };
                acc.put(key, rec, kind);
            }
            Op::Delete { expected, .. } => {
                let Some(cur) = current else {
                    return refuse(TxnFailure::NotFound { key: key.clone() });
                };
                if let Err(f) = check(*expected) {
                    return refuse(f);
                }
                acc.overlay.insert(key.clone(), None);
                acc.changes.push(Change::Delete(key.clone()));
                acc.events.push(Event {
                    revision,
                    kind: EventKind::Deleted,
                    key: key.clone(),
                    value: cur.value,
                    create_revision: cur.create_revision,
                });
                acc.objects.push(None);
            }
            Op::Check { expected, .. } => {
                if *expected != actual {
                    return refuse(TxnFailure::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        actual,
                    });
                }
                acc.objects.push(None);
            }
        }
    }
    Evaluated {
        outcome: TxnOutcome::Committed {
            revision,
            objects: acc.objects,
        },
        changes: acc.changes,
        events: acc.events,
    }
}

/// What a transaction has done so far: its own view of the keys it touched (`None`: deleted
/// by an earlier op), the changes to write, the events and the per-op results.
#[derive(Default)]
struct Accumulated {
    overlay: HashMap<ObjectKey, Option<StoredRecord>>,
    changes: Vec<Change>,
    events: Vec<Event>,
    objects: Vec<Option<Object>>,
}

impl Accumulated {
    fn put(&mut self, key: &ObjectKey, rec: StoredRecord, kind: EventKind) {
        // A key created and then updated in one transaction is still "created" for watchers.
        let kind = match (kind, self.overlay.get(key)) {
            (EventKind::Updated, Some(Some(prev))) if prev.create_revision == rec.mod_revision => {
                EventKind::Created
            }
            (k, _) => k,
        };
        self.events.push(Event {
            revision: rec.mod_revision,
            kind,
            key: key.clone(),
            value: rec.value.clone(),
            create_revision: rec.create_revision,
        });
        self.objects.push(Some(Object {
            key: key.clone(),
            value: rec.value.clone(),
            create_revision: rec.create_revision,
            mod_revision: rec.mod_revision,
        }));
        self.changes.push(Change::Put(key.clone(), rec.clone()));
        self.overlay.insert(key.clone(), Some(rec));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> ObjectKey {
        ObjectKey::new("pods", "default", n)
    }

    fn rec(v: &str, c: u64, m: u64) -> StoredRecord {
        StoredRecord {
            value: v.as_bytes().to_vec(),
            create_revision: Revision(c),
            mod_revision: Revision(m),
        }
    }

    fn state(entries: &[(&str, StoredRecord)]) -> impl FnMut(&ObjectKey) -> Option<StoredRecord> {
        let map: HashMap<ObjectKey, StoredRecord> =
            entries.iter().map(|(n, r)| (key(n), r.clone())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn create_of_existing_key_is_refused_and_changes_nothing() {
        let txn = Txn::new(vec![
            Op::Create {
                key: key("b"),
                value: b"1".to_vec(),
            },
            Op::Create {
                key: key("a"),
                value: b"2".to_vec(),
            },
        ]);
        let ev = evaluate(&txn, Revision(7), state(&[("a", rec("x", 1, 1))]));
        assert_eq!(
            ev.outcome,
            TxnOutcome::Refused {
                op_index: 1,
                failure: TxnFailure::AlreadyExists { key: key("a") }
            }
        );
        assert!(ev.changes.is_empty() && ev.events.is_empty());
    }

    #[test]
    fn update_with_stale_revision_is_a_conflict() {
        let txn = Txn::new(vec![Op::Update {
            key: key("a"),
            value: b"y".to_vec(),
            expected: Some(Revision(2)),
        }]);
        let ev = evaluate(&txn, Revision(9), state(&[("a", rec("x", 1, 3))]));
        assert_eq!(
            ev.outcome,
            TxnOutcome::Refused {
                op_index: 0,
                failure: TxnFailure::Conflict {
                    key: key("a"),
                    expected: Some(Revision(2)),
                    actual: Some(Revision(3))
                }
            }
        );
    }

    #[test]
    fn update_keeps_create_revision_and_sets_mod_revision() {
        let txn = Txn::new(vec![Op::Update {
            key: key("a"),
            value: b"y".to_vec(),
            expected: Some(Revision(3)),
        }]);
        let ev = evaluate(&txn, Revision(9), state(&[("a", rec("x", 1, 3))]));
        assert_eq!(ev.changes, vec![Change::Put(key("a"), rec("y", 1, 9))]);
        assert_eq!(ev.events[0].kind, EventKind::Updated);
    }

    #[test]
    fn ops_see_earlier_ops_of_the_same_transaction() {
        let txn = Txn::new(vec![
            Op::Create {
                key: key("a"),
                value: b"1".to_vec(),
            },
            Op::Update {
                key: key("a"),
                value: b"2".to_vec(),
                expected: Some(Revision(5)),
            },
            Op::Delete {
                key: key("b"),
                expected: None,
            },
            Op::Check {
                key: key("b"),
                expected: None,
            },
        ]);
        let ev = evaluate(&txn, Revision(5), state(&[("b", rec("old", 2, 2))]));
        assert!(matches!(
            ev.outcome,
            TxnOutcome::Committed {
                revision: Revision(5),
                ..
            }
        ));
        assert_eq!(ev.events.len(), 3);
        assert_eq!(
            ev.events[1].kind,
            EventKind::Created,
            "create then update in one txn is a create"
        );
        assert_eq!(ev.events[2].kind, EventKind::Deleted);
        assert_eq!(ev.events[2].value, b"old".to_vec());
    }

    #[test]
    fn delete_of_missing_key_is_not_found() {
        let txn = Txn::new(vec![Op::Delete {
            key: key("a"),
            expected: None,
        }]);
        let ev = evaluate(&txn, Revision(1), state(&[]));
        assert_eq!(
            ev.outcome,
            TxnOutcome::Refused {
                op_index: 0,
                failure: TxnFailure::NotFound { key: key("a") }
            }
        );
    }

    #[test]
    fn check_guards_a_binding() {
        let ok = Txn::new(vec![
            Op::Check {
                key: key("a"),
                expected: Some(Revision(3)),
            },
            Op::Put {
                key: key("n"),
                value: b"bound".to_vec(),
            },
        ]);
        let ev = evaluate(&ok, Revision(4), state(&[("a", rec("x", 1, 3))]));
        assert!(matches!(ev.outcome, TxnOutcome::Committed { .. }));
        let stale = Txn::new(vec![Op::Check {
            key: key("a"),
            expected: Some(Revision(2)),
        }]);
        assert!(matches!(
            evaluate(&stale, Revision(4), state(&[("a", rec("x", 1, 3))])).outcome,
            TxnOutcome::Refused { .. }
        ));
    }
}
