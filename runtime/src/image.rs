//! The node's image store: a directory of images by name, each an unpacked root filesystem
//! (`rootfs/`, absent for an image that runs on the host's) and `config.json` (the default
//! command, environment and working dir). Images are shared read-only by containers (the
//! lower layer of each container's overlay). `import` takes a directory or a tarball;
//! `ensure_busybox` builds the `busybox` image from Debian's static busybox.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::RuntimeError;

/// The image's defaults (a subset of the OCI image config).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
}

/// One image of the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub name: String,
    /// The unpacked root filesystem; `None`: the container keeps the host's.
    pub rootfs: Option<PathBuf>,
    pub config: ImageConfig,
}

/// Where the image store keeps its images.
#[derive(Clone, Debug)]
pub struct ImageStore {
    dir: PathBuf,
}

/// Where Debian's `busybox-static` installs busybox.
pub const BUSYBOX_PATHS: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An image name as the store files it: `docker.io/library/busybox:latest` and
/// `busybox` are the same image.
pub fn normalize(name: &str) -> String {
    let n = name.strip_prefix("docker.io/").unwrap_or(name);
    let n = n.strip_prefix("library/").unwrap_or(n);
    n.strip_suffix(":latest").unwrap_or(n).to_string()
}

fn dir_name(name: &str) -> Result<String, RuntimeError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
        && !name
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..");
    if !ok {
        return Err(RuntimeError::InvalidImage {
            image: name.into(),
            reason: "not a valid image name".into(),
        });
    }
    // One directory per image: '/' and ':' become '%2f' and '%3a'.
    Ok(name
        .replace('%', "%25")
        .replace('/', "%2f")
        .replace(':', "%3a"))
}

impl ImageStore {
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, RuntimeError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(RuntimeError::io("create image store", &dir))?;
        Ok(ImageStore { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> Result<PathBuf, RuntimeError> {
        Ok(self.dir.join(dir_name(&normalize(name))?))
    }

    /// The image called `name`; [`RuntimeError::ImageNotFound`] when there is none.
    pub fn get(&self, name: &str) -> Result<Image, RuntimeError> {
        let dir = self.path(name)?;
        let config_path = dir.join("config.json");
        if !config_path.exists() {
            return Err(RuntimeError::ImageNotFound { image: name.into() });
        }
        let config = crate::state::read_json::<ImageConfig>(&config_path)
            .map_err(|e| RuntimeError::InvalidImage {
                image: name.into(),
                reason: e.to_string(),
            })?
            .unwrap_or_default();
        let rootfs = dir.join("rootfs");
        Ok(Image {
            name: normalize(name),
            rootfs: rootfs.is_dir().then_some(rootfs),
            config,
        })
    }

    /// Imports an image from a directory or a tarball (what `tar` can read, compressed or
    /// not). A source holding `rootfs/` and `config.json` is an image layout; anything else
    /// is a root filesystem with an empty config. Refuses a name that exists. Blocking:
    /// call it from a blocking task.
    pub fn import(&self, name: &str, source: &Path) -> Result<Image, RuntimeError> {
        let dest = self.path(name)?;
        if dest.exists() {
            return Err(RuntimeError::ImageExists { image: name.into() });
        }
        let tmp = self.dir.join(format!(
            ".import-{}-{}",
            std::process::id(),
            dir_name(&normalize(name))?
        ));
        let _ = fs::remove_dir_all(&tmp);
        let result = (|| {
            let unpacked = tmp.join("src");
            if source.is_dir() {
                copy_tree(source, &unpacked)?;
            } else {
                fs::create_dir_all(&unpacked).map_err(RuntimeError::io("create", &unpacked))?;
                untar(source, &unpacked)?;
            }
            let image = tmp.join("image");
            fs::create_dir_all(&image).map_err(RuntimeError::io("create", &image))?;
            if unpacked.join("rootfs").is_dir() && unpacked.join("config.json").is_file() {
                fs::rename(unpacked.join("rootfs"), image.join("rootfs"))
                    .map_err(RuntimeError::io("rename", &image))?;
                let config: ImageConfig =
                    crate::state::read_json(&unpacked.join("config.json"))?.unwrap_or_default();
                crate::state::write_json(&image.join("config.json"), &config)?;
            } else {
                fs::rename(&unpacked, image.join("rootfs"))
                    .map_err(RuntimeError::io("rename", &image))?;
                crate::state::write_json(&image.join("config.json"), &ImageConfig::default())?;
            }
            fs::rename(&image, &dest).map_err(RuntimeError::io("rename", &dest))
        })();
        let _ = fs::remove_dir_all(&tmp);
        result?;
        tracing::info!(image = %name, source = %source.display(), "image imported");
        self.get(name)
    }

    /// Adds an image with no root filesystem: its containers keep the host's (in their own
    /// namespaces and cgroups when isolated). Refuses a name that exists.
    pub fn add_host_image(&self, name: &str, config: &ImageConfig) -> Result<Image, RuntimeError> {
        let dest = self.path(name)?;
        if dest.exists() {
            return Err(RuntimeError::ImageExists { image: name.into() });
        }
        let tmp = self.dir.join(format!(
            ".host-{}-{}",
            std::process::id(),
            dir_name(&normalize(name))?
        ));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(RuntimeError::io("create", &tmp))?;
        let result = crate::state::write_json(&tmp.join("config.json"), config)
            .and_then(|()| fs::rename(&tmp, &dest).map_err(RuntimeError::io("rename", &dest)));
        let _ = fs::remove_dir_all(&tmp);
        result?;
        self.get(name)
    }

    /// Writes an image from a root filesystem already laid out in `rootfs` and a config.
    fn install(
        &self,
        name: &str,
        build: impl FnOnce(&Path) -> Result<(), RuntimeError>,
        config: &ImageConfig,
    ) -> Result<Image, RuntimeError> {
        let dest = self.path(name)?;
        let tmp = self
            .dir
            .join(format!(".build-{}-{}", std::process::id(), dir_name(name)?));
        let _ = fs::remove_dir_all(&tmp);
        let rootfs = tmp.join("rootfs");
        fs::create_dir_all(&rootfs).map_err(RuntimeError::io("create", &rootfs))?;
        let result = build(&rootfs)
            .and_then(|()| crate::state::write_json(&tmp.join("config.json"), config))
            .and_then(|()| fs::rename(&tmp, &dest).map_err(RuntimeError::io("rename", &dest)));
        let _ = fs::remove_dir_all(&tmp);
        result?;
        self.get(name)
    }

    /// The `busybox` image, built from a static busybox binary the first time (found at
    /// [`BUSYBOX_PATHS`]: Debian's `busybox-static`, which `scripts/install-deps.sh`
    /// installs). Blocking.
    pub fn ensure_busybox(&self) -> Result<Image, RuntimeError> {
        if let Ok(image) = self.get("busybox") {
            return Ok(image);
        }
        let bin = BUSYBOX_PATHS
            .iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .ok_or_else(|| RuntimeError::InvalidImage {
                image: "busybox".into(),
                reason:
                    "no busybox binary: install Debian's busybox-static (scripts/install-deps.sh)"
                        .into(),
            })?;
        if is_dynamic(bin)? {
            return Err(RuntimeError::InvalidImage {
                image: "busybox".into(),
                reason: format!(
                    "{} is dynamically linked: install busybox-static",
                    bin.display()
                ),
            });
        }
        let out = Command::new(bin)
            .arg("--list")
            .output()
            .map_err(RuntimeError::io("run", bin))?;
        let applets: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let config = ImageConfig {
            cmd: vec!["sh".into()],
            env: vec![DEFAULT_PATH.into()],
            ..Default::default()
        };
        self.install(
            "busybox",
            |root| {
                for d in ["bin", "dev", "etc", "proc", "sys", "tmp", "root", "var", "home", "usr"] {
                    fs::create_dir_all(root.join(d)).map_err(RuntimeError::io("create", root.join(d)))?;
                }
                fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))
                    .map_err(RuntimeError::io("chmod", root.join("tmp")))?;
                symlink("bin", root.join("sbin")).map_err(RuntimeError::io("symlink", root.join("sbin")))?;
                symlink("../bin", root.join("usr/bin")).map_err(RuntimeError::io("symlink", root.join("usr/bin")))?;
                symlink("../bin", root.join("usr/sbin")).map_err(RuntimeError::io("symlink", root.join("usr/sbin")))?;
                fs::copy(bin, root.join("bin/busybox")).map_err(RuntimeError::io("copy", bin))?;
                for applet in applets.iter().filter(|a| !a.is_empty() && !a.contains('/') && *a != "busybox") {
                    let link = root.join("bin").join(applet);
                    symlink("busybox", &link).map_err(RuntimeError::io("symlink", &link))?;
                }
                let files = [
                    ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"),
                    ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
                    ("etc/hostname", ""),
                    ("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n"),
                ];
                for (path, text) in files {
                    fs::write(root.join(path), text).map_err(RuntimeError::io("write", root.join(path)))?;
                }
                Ok(())
            },
            &config,
        )
    }
}

/// Whether an ELF file asks for a dynamic loader (has a `PT_INTERP` program header).
fn is_dynamic(path: &Path) -> Result<bool, RuntimeError> {
    let b = fs::read(path).map_err(RuntimeError::io("read", path))?;
    let bad = || RuntimeError::InvalidImage {
        image: "busybox".into(),
        reason: format!("{} is not a 64-bit little-endian ELF file", path.display()),
    };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return Err(bad());
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[32..40].try_into().map_err(|_| bad())?) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        if o + 4 > b.len() {
            return Err(bad());
        }
        if u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) == 3 {
            return Ok(true);
        }
    }
    Ok(false)
}

fn untar(tarball: &Path, dest: &Path) -> Result<(), RuntimeError> {
    let mut cmd = Command::new("tar");
    cmd.arg("-xf").arg(tarball).arg("-C").arg(dest);
    if nix::unistd::geteuid().is_root() {
        cmd.args(["--same-owner", "--numeric-owner"]);
    } else {
        cmd.arg("--no-same-owner");
    }
    let out = cmd
        .output()
        .map_err(RuntimeError::io("run tar on", tarball))?;
    if !out.status.success() {
        return Err(RuntimeError::InvalidImage {
            image: tarball.display().to_string(),
            reason: format!(
                "tar failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Copies a directory tree: files with their modes, directories, symlinks as links, owners
/// when root. Device nodes, fifos and sockets are skipped (a rootfs gets its /dev at run).
fn copy_tree(src: &Path, dst: &Path) -> Result<(), RuntimeError> {
    let root = nix::unistd::geteuid().is_root();
    let meta = fs::symlink_metadata(src).map_err(RuntimeError::io("stat", src))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        fs::create_dir_all(dst).map_err(RuntimeError::io("create", dst))?;
        for entry in fs::read_dir(src).map_err(RuntimeError::io("read dir", src))? {
            let entry = entry.map_err(RuntimeError::io("read dir", src))?;
            copy_tree(&entry.path(), &dst.join(entry.file_name()))?;
        }
        fs::set_permissions(dst, meta.permissions()).map_err(RuntimeError::io("chmod", dst))?;
    } else if ft.is_symlink() {
        let target = fs::read_link(src).map_err(RuntimeError::io("read link", src))?;
        symlink(&target, dst).map_err(RuntimeError::io("symlink", dst))?;
    } else if ft.is_file() {
        fs::copy(src, dst).map_err(RuntimeError::io("copy", src))?;
    } else {
        tracing::debug!(path = %src.display(), "special file skipped in image import");
        return Ok(());
    }
    if root {
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()))
            .map_err(RuntimeError::io("chown", dst))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_and_unknown_images_are_typed() {
        assert_eq!(normalize("docker.io/library/busybox:latest"), "busybox");
        assert_eq!(normalize("example.com/x/y:1.2"), "example.com/x/y:1.2");
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path()).unwrap();
        assert!(store.get("nope").unwrap_err().is_image_pull());
        assert!(matches!(
            store.get("../etc"),
            Err(RuntimeError::InvalidImage { .. })
        ));
    }

    #[test]
    fn import_takes_a_directory_a_layout_and_a_tarball() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path().join("images")).unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("bin/hello"), "#!/bin/sh\necho hello\n").unwrap();
        fs::set_permissions(src.join("bin/hello"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink("hello", src.join("bin/hi")).unwrap();
        let img = store.import("plain", &src).unwrap();
        let rootfs = img.rootfs.unwrap();
        assert_eq!(
            fs::read_link(rootfs.join("bin/hi")).unwrap(),
            Path::new("hello")
        );
        assert_eq!(
            fs::metadata(rootfs.join("bin/hello"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
        assert!(matches!(
            store.import("plain", &src),
            Err(RuntimeError::ImageExists { .. })
        ));

        let layout = dir.path().join("layout");
        copy_tree(&src, &layout.join("rootfs")).unwrap();
        fs::write(
            layout.join("config.json"),
            r#"{"cmd":["/bin/hello"],"workingDir":"/bin"}"#,
        )
        .unwrap();
        let img = store.import("example.com/layout:v1", &layout).unwrap();
        assert_eq!(img.config.cmd, vec!["/bin/hello"]);
        assert_eq!(img.config.working_dir.as_deref(), Some("/bin"));

        let tarball = dir.path().join("img.tar.gz");
        let st = Command::new("tar")
            .arg("-czf")
            .arg(&tarball)
            .arg("-C")
            .arg(&src)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        let img = store.import("tarred", &tarball).unwrap();
        assert!(img.rootfs.unwrap().join("bin/hello").is_file());
    }
}
