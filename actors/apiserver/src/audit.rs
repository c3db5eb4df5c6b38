//! The audit log: one JSON line per request, whoever made it (a user over HTTPS or a
//! component in process), in a private (0600) file of the data dir, rotated by size.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

/// One audited request.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record<'a> {
    pub time: &'a str,
    pub user: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub groups: &'a [String],
    pub verb: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub resource: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub subresource: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub namespace: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub name: &'a str,
    pub path: &'a str,
    pub code: u16,
    pub latency_ms: f64,
    pub correlation_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub source_ip: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub user_agent: &'a str,
    /// `https` or `in-process`.
    pub transport: &'a str,
}

/// An append-only JSON-lines file: `audit.log`, rotated to `audit.log.1` ... `.<keep>`.
pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: Mutex<(File, u64)>,
}

impl AuditLog {
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> std::io::Result<AuditLog> {
        let file = open_private(path)?;
        // A log created by an older version may be world-readable.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let size = file.metadata()?.len();
        Ok(AuditLog {
            path: path.to_path_buf(),
            max_bytes: max_bytes.max(1024),
            keep: keep.max(1),
            file: Mutex::new((file, size)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record; a failure is logged, never fatal to the request.
    pub fn write(&self, record: &Record<'_>) {
        let mut line = match serde_json::to_vec(record) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "audit record did not serialize");
                return;
            }
        };
        line.push(b'\n');
        let mut guard = match self.file.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if guard.1 > 0 && guard.1 + line.len() as u64 > self.max_bytes {
            if let Err(e) = self.rotate(&mut guard) {
                tracing::error!(error = %e, "audit log rotation failed");
            }
        }
        match guard.0.write_all(&line) {
            Ok(()) => guard.1 += line.len() as u64,
            Err(e) => tracing::error!(error = %e, "audit write failed"),
        }
    }

    fn rotate(&self, guard: &mut (File, u64)) -> std::io::Result<()> {
        let name = |i: usize| PathBuf::from(format!("{}.{i}", self.path.display()));
        let _ = std::fs::remove_file(name(self.keep));
        for i in (1..self.keep).rev() {
            if name(i).exists() {
                std::fs::rename(name(i), name(i + 1))?;
            }
        }
        std::fs::rename(&self.path, name(1))?;
        guard.0 = open_private(&self.path)?;
        guard.1 = 0;
        Ok(())
    }
}

fn open_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> Record<'_> {
        Record {
            time: "2026-11-25T00:00:00Z",
            user: "admin",
            groups: &[],
            verb: "get",
            resource: "pods",
            subresource: "",
            namespace: "default",
            name,
            path: "/api/v1/namespaces/default/pods/x",
            code: 200,
            latency_ms: 1.5,
            correlation_id: "c",
            source_ip: "127.0.0.1",
            user_agent: "",
            transport: "https",
        }
    }

    #[test]
    fn rotates_by_size_and_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path, 1024, 2).unwrap();
        for i in 0..100 {
            log.write(&record(&format!("pod-{i}")));
        }
        assert!(path.exists());
        assert!(dir.path().join("audit.log.1").exists());
        assert!(dir.path().join("audit.log.2").exists());
        assert!(!dir.path().join("audit.log.3").exists());
        for f in ["audit.log", "audit.log.1"] {
            let text = std::fs::read_to_string(dir.path().join(f)).unwrap();
            assert!(text.len() <= 1024, "{f} is {} bytes", text.len());
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["verb"], "get");
            }
        }
        let last = std::fs::read_to_string(&path).unwrap();
        assert!(last.contains("pod-99"));
        for f in ["audit.log", "audit.log.1", "audit.log.2"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
}
