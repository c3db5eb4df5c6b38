//! Persistent named network namespaces for pods, made as `ip netns add` makes them, and a
//! helper that runs code inside one.
//!
//! A pod's namespace is a new network namespace bind-mounted on `<dir>/<name>` (by default
//! `/run/netns/<name>`, where `ip netns` and the CNI plugins look): the mount keeps it alive
//! with no process in it, and its path is what CNI (`CNI_NETNS`) and the runtime (setns)
//! are given. The namespace is made by a dedicated std thread that `unshare(CLONE_NEWNET)`s
//! and bind-mounts `/proc/thread-self/ns/net`; the thread then ends, so none of the agent's
//! own threads (tokio's workers among them) ever changes namespace. [`run_in`] does the same
//! with `setns` to run a closure inside an existing namespace.
//!
//! As `ip netns` does, the directory is made a shared mount (bind-mounted on itself first if
//! it is not a mount point), so that a namespace's unmount reaches every mount namespace
//! that copied it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statfs::{statfs, NSFS_MAGIC};

/// Where named network namespaces live, as for `ip netns`.
pub const NETNS_DIR: &str = "/run/netns";

/// Why a network namespace could not be made, removed or entered.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A name that is not one path component of `[A-Za-z0-9_.-]`.
    #[error("network namespace name {0:?} is not a plain file name")]
    BadName(String),
    #[error("network namespace {path}: {what}: {source}")]
    Sys {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: Errno,
    },
    #[error("network namespace {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// The path exists but holds no network namespace.
    #[error("{0} is not a network namespace")]
    NotANamespace(PathBuf),
    /// The dedicated thread panicked.
    #[error("network namespace thread panicked")]
    ThreadPanicked,
}

fn sys<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(Errno) -> NetnsError + 'a {
    move |source| NetnsError::Sys {
        path: path.to_path_buf(),
        what,
        source,
    }
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> NetnsError + 'a {
    move |source| NetnsError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// Named network namespaces under one directory (`/run/netns` for the agent; tests may
/// use the same, as `ip -n` only looks there).
#[derive(Clone, Debug)]
pub struct NetnsDir {
    dir: PathBuf,
}

impl Default for NetnsDir {
    fn default() -> Self {
        NetnsDir::new(NETNS_DIR)
    }
}

/// One create or delete at a time in this process: making the directory a shared mount
/// must not be raced (two bind mounts of it on itself).
static LOCK: Mutex<()> = Mutex::new(());

impl NetnsDir {
    pub fn new(dir: impl Into<PathBuf>) -> NetnsDir {
        NetnsDir { dir: dir.into() }
    }

    /// The path of namespace `name` (whether it exists or not).
    pub fn path(&self, name: &str) -> Result<PathBuf, NetnsError> {
        check_name(name)?;
        Ok(self.dir.join(name))
    }

    /// Whether namespace `name` exists (its path is a mounted network namespace).
    pub fn exists(&self, name: &str) -> Result<bool, NetnsError> {
        Ok(is_netns(&self.path(name)?))
    }

    /// Makes namespace `name` and returns its path; a namespace already there is kept
    /// (idempotent), a leftover empty file from an interrupted create is mounted over.
    pub fn create(&self, name: &str) -> Result<PathBuf, NetnsError> {
        let path = self.path(name)?;
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if is_netns(&path) {
            return Ok(path);
        }
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir, "create directory"))?;
        make_shared(&self.dir)?;
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path, "create mount point"))?;
        let target = path.clone();
        let made = std::thread::Builder::new()
            .name("netns-create".into())
            .spawn(move || -> Result<(), NetnsError> {
                // This thread alone moves to the new namespace, and ends there.
                unshare(CloneFlags::CLONE_NEWNET).map_err(sys(&target, "unshare"))?;
                mount(
                    Some("/proc/thread-self/ns/net"),
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(sys(&target, "bind mount"))
            })
            .map_err(io_err(&path, "spawn thread"))?
            .join()
            .map_err(|_| NetnsError::ThreadPanicked)?;
        if let Err(e) = made {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        tracing::debug!(path = %path.display(), "network namespace created");
        Ok(path)
    }

    /// Removes namespace `name`: unmounts it (lazily, as `ip netns del`) and removes its
    /// file. Nothing there is not an error (idempotent). The namespace itself ends when
    /// the last process in it or file descriptor on it goes.
    pub fn delete(&self, name: &str) -> Result<(), NetnsError> {
        let path = self.path(name)?;
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(sys(&path, "unmount")(e)),
        }
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::debug!(path = %path.display(), "network namespace deleted");
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path, "remove")(e)),
        }
    }
}

fn check_name(name: &str) -> Result<(), NetnsError> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if plain {
        Ok(())
    } else {
        Err(NetnsError::BadName(name.to_string()))
    }
}

/// Whether `path` is a mounted namespace file (nsfs).
pub fn is_netns(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// Makes `dir` a shared mount, bind-mounting it on itself first if it is not a mount
/// point (what `ip netns add` does).
fn make_shared(dir: &Path) -> Result<(), NetnsError> {
    let shared = || {
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys(dir, "bind mount on itself"))?;
            shared().map_err(sys(dir, "make shared"))
        }
        Err(e) => Err(sys(dir, "make shared")(e)),
    }
}

/// Runs `f` inside the network namespace at `path`, in a dedicated thread that `setns`es
/// into it and ends with `f`: the caller's thread never changes namespace. Sockets `f`
/// makes stay in that namespace after it returns, so a test can bind a listener or
/// connect a stream inside a pod and use it from anywhere.
pub fn run_in<T, F>(path: &Path, f: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let ns = File::open(path).map_err(io_err(path, "open"))?;
    if !is_netns(path) {
        return Err(NetnsError::NotANamespace(path.to_path_buf()));
    }
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("netns-run".into())
            .spawn_scoped(scope, move || -> Result<T, NetnsError> {
                setns(&ns, CloneFlags::CLONE_NEWNET).map_err(sys(path, "setns"))?;
                Ok(f())
            })
            .map_err(io_err(path, "spawn thread"))?
            .join()
            .map_err(|_| NetnsError::ThreadPanicked)?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_file_names() {
        for good in ["nvt-1-a", "pod_1.x", "0"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
