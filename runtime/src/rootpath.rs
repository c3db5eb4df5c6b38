//! Paths inside a container's root resolved as the container would see them: symlinks in
//! the image are followed relative to the root, absolute ones restart at the root and `..`
//! stops there, so preparing a mount never creates or mounts on a host path an image's
//! symlink points at.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed before giving up, as the kernel's `ELOOP` limit.
const MAX_HOPS: usize = 40;

fn parts(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(s) => Some(s.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        _ => None,
    })
}

/// `path` (absolute in the container) as a host path under `root`, never outside it.
pub fn resolve_in_root(root: &Path, path: &str) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    let mut pending: VecDeque<OsString> = parts(Path::new(path)).collect();
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            out.pop();
            continue;
        }
        let candidate = out.join(&part);
        let host = root.join(&candidate);
        match fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(io::Error::other(format!(
                        "too many symlinks resolving {path}"
                    )));
                }
                let target = fs::read_link(&host)?;
                if target.is_absolute() {
                    out = PathBuf::new();
                }
                let mut next: VecDeque<OsString> = parts(&target).collect();
                next.extend(pending);
                pending = next;
            }
            _ => out = candidate,
        }
    }
    Ok(root.join(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("usr/etc")).unwrap();
        symlink("/usr/etc", root.join("etc")).unwrap();
        symlink("../../../../..", root.join("up")).unwrap();
        symlink("/", root.join("slash")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        assert_eq!(
            resolve_in_root(&root, "/etc/hostname").unwrap(),
            root.join("usr/etc/hostname")
        );
        assert_eq!(
            resolve_in_root(&root, "/up/etc/passwd").unwrap(),
            root.join("usr/etc/passwd")
        );
        assert_eq!(
            resolve_in_root(&root, "/slash/../../x").unwrap(),
            root.join("x")
        );
        assert_eq!(
            resolve_in_root(&root, "/new/dir").unwrap(),
            root.join("new/dir")
        );
        assert!(resolve_in_root(&root, "/loop1/x").is_err());
    }
}
