//! Private files: the process umask, and the modes of the directories and files that hold the
//! store, keys and tokens. Every binary calls [`restrict_umask`] first, so whatever it creates
//! (RocksDB's files, keys, tokens, backups) is for its owner only; a master also fixes the
//! modes of what an earlier version or an operator left more open.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use nix::sys::stat::{umask, Mode};

/// Sets the process umask to 0o077: files are created 0600 and directories 0700 at most. Call
/// it first in `main`, before any thread or file is created.
pub fn restrict_umask() {
    umask(Mode::from_bits_truncate(0o077));
}

/// Creates `dir` (and missing parents) and makes it 0700, whatever it was.
pub fn private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    set_mode(dir, 0o700)
}

/// Makes `path` 0600 if it exists and is open to others.
pub fn private_file(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => set_mode(path, 0o600),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("stat {}", path.display())),
    }
}

/// Writes `contents` to a new file `path` created 0600 (truncating an existing one, whose mode
/// is set to 0600 too).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {}", path.display()))?;
    f.write_all(contents)
        .with_context(|| format!("write {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("sync {}", path.display()))
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {:o} {}", mode, path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn dirs_and_files_are_made_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        set_mode(&dir, 0o755).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        private_dir(&dir.join("a/b")).unwrap();
        assert_eq!(mode(&dir.join("a/b")), 0o700);

        let key = dir.join("key");
        std::fs::write(&key, "k").unwrap();
        set_mode(&key, 0o644).unwrap();
        private_file(&key).unwrap();
        assert_eq!(mode(&key), 0o600);
        private_file(&dir.join("missing")).unwrap();

        write_private(&key, b"again").unwrap();
        assert_eq!(mode(&key), 0o600);
        assert_eq!(std::fs::read(&key).unwrap(), b"again");
    }
}
