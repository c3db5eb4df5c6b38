//! The state dir's files: JSON written atomically (a temporary file, fsync, rename), so a
//! reader (a restarted agent) sees a whole record or none. Each file has one writer: the
//! runtime writes `spec.json`, `plan.json` and `stop.json`, the shim `started.json` and
//! `exit.json`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::RuntimeError;

pub const SPEC: &str = "spec.json";
pub const CREATED: &str = "created.json";
pub const PLAN: &str = "plan.json";
pub const STARTED: &str = "started.json";
pub const EXIT: &str = "exit.json";
pub const STOP: &str = "stop.json";
pub const SHIM_LOG: &str = "shim.log";
pub const ROOTFS: &str = "rootfs";
pub const UPPER: &str = "upper";
pub const WORK: &str = "work";
pub const HOSTNAME: &str = "hostname";
pub const LOG: &str = "container.log";

/// Writes `value` as JSON to `path` atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RuntimeError> {
    let tmp = tmp_path(path);
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| RuntimeError::CorruptState {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut f = fs::File::create(&tmp).map_err(RuntimeError::io("create", &tmp))?;
    f.write_all(&bytes)
        .map_err(RuntimeError::io("write", &tmp))?;
    f.sync_all().map_err(RuntimeError::io("fsync", &tmp))?;
    fs::rename(&tmp, path).map_err(RuntimeError::io("rename", path))?;
    Ok(())
}

/// Reads a JSON file; `None` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, RuntimeError> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| RuntimeError::CorruptState {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RuntimeError::io("read", path)(e)),
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), None);
        write_json(&p, &vec![1u32, 2]).unwrap();
        assert_eq!(read_json::<Vec<u32>>(&p).unwrap(), Some(vec![1, 2]));
        fs::write(&p, b"{").unwrap();
        assert!(matches!(
            read_json::<Vec<u32>>(&p),
            Err(RuntimeError::CorruptState { .. })
        ));
    }
}
