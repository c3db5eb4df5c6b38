//! Backup files: a consistent copy of every object and the cluster revision, and restore of
//! one into a fresh data dir (the design source: a store backup is enough to restore the
//! cluster).
//!
//! Format: the magic `NAVBKUP1`, a 64-bit FNV-1a checksum of the body (big-endian), then the
//! body: the state payload encoded with `navarch_net::codec`.

use std::path::Path;

use navarch_net::codec;
use rocksdb::WriteBatch;

use crate::rocks;
use crate::state_machine::{replace_state, StatePayload};
use crate::types::Revision;
use crate::StoreError;

const MAGIC: &[u8; 8] = b"NAVBKUP1";

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub(crate) fn encode(payload: &StatePayload) -> Result<Vec<u8>, StoreError> {
    let body = codec::encode(payload).map_err(|e| StoreError::Storage(e.to_string()))?;
    let mut out = Vec::with_capacity(body.len() + 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&fnv1a(&body).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Checks and decodes a backup file's bytes.
pub fn decode(data: &[u8]) -> Result<StatePayload, StoreError> {
    let bad = |why: &str| StoreError::InvalidKey(format!("not a valid navarch backup: {why}"));
    if data.len() < 16 || &data[..8] != MAGIC {
        return Err(bad("missing NAVBKUP1 header"));
    }
    let sum = u64::from_be_bytes(data[8..16].try_into().map_err(|_| bad("short header"))?);
    let body = &data[16..];
    if fnv1a(body) != sum {
        return Err(bad("checksum mismatch (truncated or corrupted)"));
    }
    codec::decode(body).map_err(|e| bad(&e.to_string()))
}

/// What a backup holds, for the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    pub revision: Revision,
    pub objects: usize,
}

pub fn summarize(data: &[u8]) -> Result<BackupSummary, StoreError> {
    let p = decode(data)?;
    Ok(BackupSummary {
        revision: p.revision,
        objects: p.objects.len(),
    })
}

/// Restores `data` into `data_dir`, which must not hold a store yet. Started afterwards with
/// the same initial cluster on every member, the members form a new cluster with the backup's
/// objects and revision.
pub fn restore(data: &[u8], data_dir: &Path) -> Result<BackupSummary, StoreError> {
    let payload = decode(data)?;
    let db_dir = data_dir.join("db");
    if db_dir.exists() {
        return Err(StoreError::InvalidKey(format!(
            "{} already holds a store; restore needs a fresh data dir",
            db_dir.display()
        )));
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| StoreError::Storage(format!("{}: {e}", data_dir.display())))?;
    let db = rocks::open(&db_dir)?;
    let mut batch = WriteBatch::default();
    replace_state(&db, &mut batch, &payload).map_err(|e| StoreError::Storage(e.to_string()))?;
    rocks::write_synced(&db, batch).map_err(|e| StoreError::Storage(e.to_string()))?;
    Ok(BackupSummary {
        revision: payload.revision,
        objects: payload.objects.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupted_backups_are_refused() {
        let p = StatePayload {
            revision: Revision(42),
            objects: vec![(b"k".to_vec(), b"v".to_vec())],
        };
        let mut data = encode(&p).unwrap();
        assert_eq!(decode(&data).unwrap().revision, Revision(42));
        let last = data.len() - 1;
        data[last] ^= 1;
        assert!(decode(&data).is_err());
        assert!(decode(b"garbage").is_err());
    }
}
