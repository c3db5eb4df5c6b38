//! Reads of the local state machine: one object, or a range from one point-in-time view.
//! Callers decide consistency first (`Member::get` and `Member::list` wait for a read index
//! or a revision); these only read RocksDB.

use navarch_net::codec;
use rocksdb::DB;

use crate::rocks::{cf, CF_OBJECTS, CF_SM};
use crate::types::{KeyRange, ListResult, Object, ObjectKey, Revision, StoredRecord};
use crate::StoreError;

pub(crate) fn read_object(db: &DB, key: &ObjectKey) -> Result<Option<Object>, StoreError> {
    let raw = db
        .get_cf(cf(db, CF_OBJECTS), key.encode())
        .map_err(|e| StoreError::Storage(e.to_string()))?;
    raw.map(|raw| {
        let rec: StoredRecord =
            codec::decode(&raw).map_err(|e| StoreError::Storage(e.to_string()))?;
        Ok(Object {
            key: key.clone(),
            value: rec.value,
            create_revision: rec.create_revision,
            mod_revision: rec.mod_revision,
        })
    })
    .transpose()
}

/// Lists `range` from one point-in-time view, with the revision of that view.
pub(crate) fn read_range(db: &DB, range: &KeyRange) -> Result<ListResult, StoreError> {
    let snap = db.snapshot();
    let err = |e: rocksdb::Error| StoreError::Storage(e.to_string());
    let revision = snap
        .get_cf(cf(db, CF_SM), b"revision")
        .map_err(err)?
        .map(|r| codec::decode::<u64>(&r))
        .transpose()
        .map_err(|e| StoreError::Storage(e.to_string()))?
        .unwrap_or(0);
    let prefix = range.prefix();
    let mut it = snap.raw_iterator_cf(cf(db, CF_OBJECTS));
    it.seek(&prefix);
    let mut objects = Vec::new();
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        if !k.starts_with(&prefix) {
            break;
        }
        let key =
            ObjectKey::decode(k).ok_or_else(|| StoreError::Storage("undecodable key".into()))?;
        let rec: StoredRecord = codec::decode(v).map_err(|e| StoreError::Storage(e.to_string()))?;
        objects.push(Object {
            key,
            value: rec.value,
            create_revision: rec.create_revision,
            mod_revision: rec.mod_revision,
        });
        it.next();
    }
    it.status().map_err(err)?;
    Ok(ListResult {
        objects,
        revision: Revision(revision),
    })
}
