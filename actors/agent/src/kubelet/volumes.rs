//! A pod's volumes on the node's disk, and each container's mounts of them, as the
//! kubelet's volume plugins prepare them.
//!
//! Every volume of `spec.volumes[]` gets a directory `<pod_dir>/volumes/<name>` (hostPath
//! excepted: it is the host's path itself):
//! - `emptyDir`: an empty directory, mode 0777, shared by the pod's containers. With
//!   `medium: Memory` it is a tmpfs (size `sizeLimit`) mounted on that directory when
//!   [`VolumeContext::tmpfs`] allows mounts (root); otherwise each container gets its own
//!   fresh tmpfs ([`MountSource::Tmpfs`]), which is not shared. On disk, `sizeLimit` is
//!   recorded ([`PreparedVolume::size_limit`]) for the caller to compare with
//!   [`disk_usage`] and evict the pod when exceeded, as the kubelet's eviction manager does.
//! - `hostPath`: the path, checked against its `type` as the kubelet's hostPath checker
//!   does (`DirectoryOrCreate` and `FileOrCreate` create it, 0755 / 0644).
//! - `configMap` / `secret`: the object's keys (ConfigMap `data` and base64 `binaryData`;
//!   Secret base64 `data`), all of them or the `items` listed (key, path, mode), with
//!   `defaultMode` (0644), written the way the kubelet's `AtomicWriter` does: the files go
//!   into a fresh timestamped directory (`..2026_12_01_21_38_30.123456789`), a `..data`
//!   symlink to it is swapped in with one rename, and the user-visible names are symlinks
//!   through `..data` (`key -> ..data/key`). A container with the directory bind-mounted
//!   thus sees a whole new version at once. A missing object or item key fails the pod
//!   unless `optional` (then the volume is empty or the item left out). Secret volumes
//!   live on a tmpfs when mounts are allowed, so secrets never reach the disk. Ownership
//!   (`fsGroup`) is not applied.
//! - `downwardAPI`: `items[]` of the pod's metadata (`fieldRef`: name, namespace, uid,
//!   labels, annotations, one label or annotation) or a container's resources
//!   (`resourceFieldRef`), written the same atomic way.
//! - `projected`: its `configMap`, `secret`, `downwardAPI` and `serviceAccountToken`
//!   sources merged into one atomically written directory (on a tmpfs, as secret volumes),
//!   with the projected `defaultMode`; a token source writes the token the caller got for
//!   its audience and lifetime ([`VolumeContext::tokens`], [`token_asks`]), so that
//!   [`update`] publishes a rotated one. `clusterTrustBundle` sources are refused.
//!
//! A Memory emptyDir's tmpfs is no larger than `sizeLimit` and the node's allocatable
//! memory ([`VolumeContext::allocatable`]).
//!
//! ConfigMap, secret, downwardAPI and projected volumes are mounted read-only. [`update`]
//! rewrites those whose content changed (the kubelet's periodic resync; downwardAPI
//! labels and annotations follow the pod passed in); [`prepare`] is idempotent too.
//! [`cleanup`] unmounts what is mounted under a pod's dir and removes it, never following
//! a symlink out of it. Other volume kinds (persistentVolumeClaim, nfs, ...) are refused
//! with [`VolumeError::Unsupported`].

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use navarch_runtime::{Mount, MountSource};
use serde_json::Value;

use super::env::{array, is_optional, pod_namespace, quantity_string, str_at};

/// The mode of a configMap or secret file when neither the item nor the volume says.
pub const DEFAULT_MODE: u32 = 0o644;

/// The symlink the atomic writer swaps to publish a new version.
const DATA_LINK: &str = "..data";
const DATA_TMP_LINK: &str = "..data_tmp";

/// What volumes are prepared from besides the pod.
#[derive(Clone, Copy, Debug)]
pub struct VolumeContext<'a> {
    /// The ConfigMaps of the pod's namespace, by name.
    pub config_maps: &'a BTreeMap<String, Value>,
    /// The Secrets of the pod's namespace, by name.
    pub secrets: &'a BTreeMap<String, Value>,
    /// Whether tmpfs may be mounted on the node (the agent runs as root): Memory emptyDirs
    /// and secret volumes then live on a tmpfs under the pod's dir.
    pub tmpfs: bool,
    /// The node's allocatable resources (`cpu`, `memory`, `ephemeral-storage`, quantity
    /// strings): what a downwardAPI `resourceFieldRef` to an unset limit reads, and the
    /// largest a Memory emptyDir's tmpfs gets (the kubelet's memory-backed volume sizing).
    pub allocatable: &'a BTreeMap<String, String>,
    /// The pod's current service-account token for each ask of its projected
    /// `serviceAccountToken` sources.
    pub tokens: &'a BTreeMap<TokenAsk, String>,
}

/// What a projected `serviceAccountToken` source asks for: an audience (empty: the API
/// server's own) and a lifetime (`expirationSeconds`, an hour when absent).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenAsk {
    pub audience: String,
    pub expiration_seconds: i64,
}

impl TokenAsk {
    fn of(source: &Value) -> TokenAsk {
        TokenAsk {
            audience: str_at(source, "audience").unwrap_or("").to_string(),
            expiration_seconds: source["expirationSeconds"].as_i64().unwrap_or(3600),
        }
    }
}

/// The token asks of `pod`'s projected volumes.
pub fn token_asks(pod: &Value) -> BTreeSet<TokenAsk> {
    array(&pod["spec"], "volumes")
        .iter()
        .flat_map(|v| array(&v["projected"], "sources"))
        .filter_map(|s| s.get("serviceAccountToken").filter(|t| t.is_object()))
        .map(TokenAsk::of)
        .collect()
}

/// Why a volume cannot be prepared or mounted. The kubelet reports these as a
/// `FailedMount` event and keeps the pod waiting (`ContainerCreating`).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("configmap {name:?} not found")]
    ConfigMapNotFound { name: String },
    #[error("secret {name:?} not found")]
    SecretNotFound { name: String },
    #[error("configmap references non-existent config key: {key}")]
    ConfigMapKeyNotFound { key: String },
    #[error("references non-existent secret key: {key}")]
    SecretKeyNotFound { key: String },
    #[error("volume {volume:?}: {reason}")]
    Invalid { volume: String, reason: String },
    #[error("volume {volume:?}: unsupported volume type {kind}")]
    Unsupported { volume: String, kind: String },
    /// The hostPath check, worded as the kubelet's (`hostPath type check failed: /x is
    /// not a directory`).
    #[error("{0}")]
    HostPathType(String),
    #[error("volumeMount {volume:?}: no such volume in the pod")]
    UnknownVolume { volume: String },
    #[error("volumeMount {volume:?}: invalid subPath {sub_path:?}: {reason}")]
    SubPath {
        volume: String,
        sub_path: String,
        reason: String,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mount tmpfs on {path}: {source}")]
    Mount {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("{path} is still mounted; not removing the pod's directory")]
    StillMounted { path: PathBuf },
    /// No token for a `serviceAccountToken` source (its account is missing, or the request
    /// failed): the kubelet asks again on the next pass.
    #[error("volume {volume:?}: no service account token yet ({reason})")]
    TokenUnavailable { volume: String, reason: String },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> VolumeError + 'a {
    move |source| VolumeError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// What kind of volume a prepared volume is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumeKind {
    EmptyDir { memory: bool },
    HostPath,
    ConfigMap,
    Secret,
    DownwardApi,
    Projected,
}

/// One volume, ready to be mounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedVolume {
    pub name: String,
    pub kind: VolumeKind,
    /// What a container mounts (a bind of the volume's directory, or a fresh tmpfs).
    pub source: MountSource,
    /// An on-disk emptyDir's `sizeLimit` in bytes: the caller evicts the pod once
    /// [`disk_usage`] of [`PreparedVolume::path`] exceeds it.
    pub size_limit: Option<u64>,
}

impl PreparedVolume {
    /// The volume's directory (or file) on the node, `None` for a per-container tmpfs.
    pub fn path(&self) -> Option<&Path> {
        match &self.source {
            MountSource::Bind(p) => Some(p),
            MountSource::Tmpfs { .. } => None,
        }
    }

    fn always_read_only(&self) -> bool {
        matches!(
            self.kind,
            VolumeKind::ConfigMap
                | VolumeKind::Secret
                | VolumeKind::DownwardApi
                | VolumeKind::Projected
        )
    }
}

/// A pod's volumes, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreparedVolumes {
    pub volumes: BTreeMap<String, PreparedVolume>,
}

impl PreparedVolumes {
    /// `container`'s mounts, from its `volumeMounts[]` (name, mountPath, readOnly,
    /// subPath). ConfigMap and secret volumes are always read-only. A `subPath` is a
    /// relative path inside the volume (no `..`), created as a directory when missing in
    /// an emptyDir or hostPath, and must resolve (symlinks followed) inside the volume.
    /// As in Kubernetes, a subPath of a configMap or secret volume is the file of the
    /// current version: later updates do not reach that mount.
    pub fn mounts_for(&self, container: &Value) -> Result<Vec<Mount>, VolumeError> {
        let mut mounts = Vec::new();
        for vm in array(container, "volumeMounts") {
            let name = str_at(vm, "name").unwrap_or("");
            let volume = self
                .volumes
                .get(name)
                .ok_or_else(|| VolumeError::UnknownVolume {
                    volume: name.into(),
                })?;
            let container_path = str_at(vm, "mountPath").unwrap_or("").to_string();
            if !container_path.starts_with('/') {
                return Err(VolumeError::Invalid {
                    volume: name.into(),
                    reason: format!("mountPath {container_path:?} is not absolute"),
                });
            }
            if vm
                .get("subPathExpr")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
            {
                return Err(VolumeError::Unsupported {
                    volume: name.into(),
                    kind: "subPathExpr".into(),
                });
            }
            let read_only = volume.always_read_only()
                || vm.get("readOnly").and_then(Value::as_bool).unwrap_or(false);
            let sub_path = str_at(vm, "subPath").unwrap_or("");
            let source = if sub_path.is_empty() {
                volume.source.clone()
            } else {
                MountSource::Bind(resolve_sub_path(volume, sub_path)?)
            };
            mounts.push(Mount {
                source,
                container_path,
                read_only,
            });
        }
        Ok(mounts)
    }

    /// The on-disk emptyDirs with a `sizeLimit`: (volume name, directory, limit in bytes).
    pub fn size_limits(&self) -> Vec<(&str, &Path, u64)> {
        self.volumes
            .values()
            .filter_map(|v| Some((v.name.as_str(), v.path()?, v.size_limit?)))
            .collect()
    }
}

fn resolve_sub_path(volume: &PreparedVolume, sub_path: &str) -> Result<PathBuf, VolumeError> {
    let bad = |reason: &str| VolumeError::SubPath {
        volume: volume.name.clone(),
        sub_path: sub_path.into(),
        reason: reason.into(),
    };
    let rel = Path::new(sub_path);
    if rel.is_absolute() {
        return Err(bad("must be a relative path"));
    }
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(bad("must not contain '..'"));
    }
    let Some(root) = volume.path() else {
        return Err(bad("a per-container tmpfs has no subPaths"));
    };
    let target = root.join(rel);
    if fs::symlink_metadata(&target).is_err() {
        if volume.always_read_only() {
            return Err(bad("no such file in the volume"));
        }
        fs::create_dir_all(&target).map_err(io_err("create subPath", &target))?;
    }
    // Symlinks (a container may have planted one) must not lead out of the volume.
    let real_root = fs::canonicalize(root).map_err(io_err("resolve volume", root))?;
    let real = fs::canonicalize(&target).map_err(io_err("resolve subPath", &target))?;
    if !real.starts_with(&real_root) {
        return Err(bad("resolves outside the volume"));
    }
    Ok(real)
}

/// Prepares every volume of `pod` under `pod_dir` (module docs); idempotent: a second
/// call over a prepared dir keeps what is there and rewrites only changed configMap and
/// secret volumes.
pub fn prepare(
    pod: &Value,
    pod_dir: &Path,
    ctx: &VolumeContext<'_>,
) -> Result<PreparedVolumes, VolumeError> {
    let mut prepared = PreparedVolumes::default();
    let namespace = pod_namespace(pod);
    let volumes_dir = pod_dir.join("volumes");
    for volume in pod.get("spec").map(|s| array(s, "volumes")).unwrap_or(&[]) {
        let name = str_at(volume, "name").unwrap_or("").to_string();
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(VolumeError::Invalid {
                volume: name,
                reason: "not a valid volume name".into(),
            });
        }
        let dir = volumes_dir.join(&name);
        let v = if let Some(e) = volume.get("emptyDir") {
            prepare_empty_dir(&name, e, &dir, ctx)?
        } else if let Some(h) = volume.get("hostPath") {
            prepare_host_path(&name, h)?
        } else if let Some((kind, payload)) =
            file_volume_payload(pod, volume, &name, ctx, &namespace)?
        {
            write_file_volume(&kind, &payload, &dir, ctx)?;
            PreparedVolume {
                name: name.clone(),
                kind,
                source: MountSource::Bind(dir),
                size_limit: None,
            }
        } else {
            let kind = volume
                .as_object()
                .and_then(|o| o.keys().find(|k| *k != "name").cloned())
                .unwrap_or_else(|| "(none)".into());
            return Err(VolumeError::Unsupported { volume: name, kind });
        };
        prepared.volumes.insert(name, v);
    }
    Ok(prepared)
}

/// Rewrites the pod's configMap, secret, downwardAPI and projected volumes from `ctx`'s
/// current objects (and `pod`'s current metadata) where their content changed, returning the names of the volumes that changed. Called every
/// 30-60 s by the Pod actor, as the kubelet resyncs.
pub fn update(
    pod: &Value,
    pod_dir: &Path,
    ctx: &VolumeContext<'_>,
) -> Result<BTreeSet<String>, VolumeError> {
    let namespace = pod_namespace(pod);
    let mut changed = BTreeSet::new();
    for volume in pod.get("spec").map(|s| array(s, "volumes")).unwrap_or(&[]) {
        let name = str_at(volume, "name").unwrap_or("").to_string();
        let dir = pod_dir.join("volumes").join(&name);
        let did = match file_volume_payload(pod, volume, &name, ctx, &namespace)? {
            Some((kind, payload)) => write_file_volume(&kind, &payload, &dir, ctx)?,
            None => false,
        };
        if did {
            tracing::info!(volume = %name, "volume content updated");
            changed.insert(name);
        }
    }
    Ok(changed)
}

fn prepare_empty_dir(
    name: &str,
    spec: &Value,
    dir: &Path,
    ctx: &VolumeContext<'_>,
) -> Result<PreparedVolume, VolumeError> {
    let size_limit = match spec.get("sizeLimit").and_then(quantity_string) {
        Some(q) => {
            let nanos = navarch_model::validate::parse_quantity(&q).ok_or_else(|| {
                VolumeError::Invalid {
                    volume: name.into(),
                    reason: format!("invalid sizeLimit {q:?}"),
                }
            })?;
            Some(u64::try_from((nanos.max(0) + 999_999_999) / 1_000_000_000).unwrap_or(u64::MAX))
        }
        None => None,
    };
    let memory = str_at(spec, "medium") == Some("Memory");
    // A tmpfs is no larger than the node's allocatable memory (unlimited ones default to
    // half the RAM otherwise).
    let allocatable_memory = ctx
        .allocatable
        .get("memory")
        .and_then(|q| navarch_model::validate::parse_quantity(q))
        .map(|nanos| u64::try_from(nanos.max(0) / 1_000_000_000).unwrap_or(u64::MAX));
    let tmpfs_size = match (size_limit, allocatable_memory) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if memory && !ctx.tmpfs {
        return Ok(PreparedVolume {
            name: name.into(),
            kind: VolumeKind::EmptyDir { memory },
            source: MountSource::Tmpfs {
                size_bytes: tmpfs_size,
            },
            size_limit: None,
        });
    }
    fs::create_dir_all(dir).map_err(io_err("create emptyDir", dir))?;
    if memory {
        mount_tmpfs(dir, tmpfs_size)?;
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o777))
        .map_err(io_err("chmod emptyDir", dir))?;
    Ok(PreparedVolume {
        name: name.into(),
        kind: VolumeKind::EmptyDir { memory },
        source: MountSource::Bind(dir.to_path_buf()),
        // A tmpfs enforces its size itself.
        size_limit: if memory { None } else { size_limit },
    })
}

fn prepare_host_path(name: &str, spec: &Value) -> Result<PreparedVolume, VolumeError> {
    let path = PathBuf::from(str_at(spec, "path").unwrap_or(""));
    if !path.is_absolute() {
        return Err(VolumeError::Invalid {
            volume: name.into(),
            reason: format!("hostPath {} is not absolute", path.display()),
        });
    }
    check_host_path_type(&path, str_at(spec, "type").unwrap_or(""))?;
    Ok(PreparedVolume {
        name: name.into(),
        kind: VolumeKind::HostPath,
        source: MountSource::Bind(path),
        size_limit: None,
    })
}

/// Checks (and for the `...OrCreate` types creates) a hostPath as the kubelet's checker
/// does; symlinks are followed, as `os.Stat` does.
pub fn check_host_path_type(path: &Path, kind: &str) -> Result<(), VolumeError> {
    let meta = fs::metadata(path).ok();
    let failed = |what: &str| {
        VolumeError::HostPathType(format!(
            "hostPath type check failed: {} is not {what}",
            path.display()
        ))
    };
    let ft = meta.as_ref().map(|m| m.file_type());
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" if meta.is_none() => {
            fs::create_dir_all(path).map_err(io_err("create hostPath", path))?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o755))
                .map_err(io_err("chmod hostPath", path))
        }
        "DirectoryOrCreate" | "Directory" if ft.is_some_and(|t| t.is_dir()) => Ok(()),
        "DirectoryOrCreate" | "Directory" => Err(failed("a directory")),
        "FileOrCreate" if meta.is_none() => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_err("create hostPath", parent))?;
            }
            fs::File::create(path).map_err(io_err("create hostPath", path))?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o644))
                .map_err(io_err("chmod hostPath", path))
        }
        "FileOrCreate" | "File" if ft.is_some_and(|t| t.is_file()) => Ok(()),
        "FileOrCreate" | "File" => Err(failed("a file")),
        "Socket" if ft.is_some_and(|t| t.is_socket()) => Ok(()),
        "Socket" => Err(failed("a socket file")),
        "CharDevice" if ft.is_some_and(|t| t.is_char_device()) => Ok(()),
        "CharDevice" => Err(failed("a character device")),
        "BlockDevice" if ft.is_some_and(|t| t.is_block_device()) => Ok(()),
        "BlockDevice" => Err(failed("a block device")),
        other => Err(VolumeError::HostPathType(format!(
            "{other} is an invalid volume type"
        ))),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    ConfigMap,
    Secret,
}

/// The files of a configMap or secret volume: relative path → (content, mode).
type Payload = BTreeMap<PathBuf, (Vec<u8>, u32)>;

/// The files of a configMap, secret, downwardAPI or projected volume, with its kind;
/// `None` for the other kinds.
fn file_volume_payload(
    pod: &Value,
    volume: &Value,
    name: &str,
    ctx: &VolumeContext<'_>,
    namespace: &str,
) -> Result<Option<(VolumeKind, Payload)>, VolumeError> {
    let default_mode = |src: &Value| mode_of(src.get("defaultMode")).unwrap_or(DEFAULT_MODE);
    if let Some(src) = volume.get("configMap") {
        let object = str_at(src, "name").unwrap_or("");
        let payload = object_payload(
            name,
            Source::ConfigMap,
            object,
            src,
            default_mode(src),
            ctx,
            namespace,
        )?;
        return Ok(Some((VolumeKind::ConfigMap, payload)));
    }
    if let Some(src) = volume.get("secret") {
        let object = str_at(src, "secretName").unwrap_or("");
        let payload = object_payload(
            name,
            Source::Secret,
            object,
            src,
            default_mode(src),
            ctx,
            namespace,
        )?;
        return Ok(Some((VolumeKind::Secret, payload)));
    }
    if let Some(src) = volume.get("downwardAPI") {
        let payload = downward_payload(pod, name, src, default_mode(src), ctx)?;
        return Ok(Some((VolumeKind::DownwardApi, payload)));
    }
    if let Some(projected) = volume.get("projected") {
        let mode = default_mode(projected);
        let mut payload = Payload::new();
        for source in array(projected, "sources") {
            let part = if let Some(src) = source.get("configMap") {
                let object = str_at(src, "name").unwrap_or("");
                object_payload(name, Source::ConfigMap, object, src, mode, ctx, namespace)?
            } else if let Some(src) = source.get("secret") {
                let object = str_at(src, "name").unwrap_or("");
                object_payload(name, Source::Secret, object, src, mode, ctx, namespace)?
            } else if let Some(src) = source.get("downwardAPI") {
                downward_payload(pod, name, src, mode, ctx)?
            } else if let Some(src) = source.get("serviceAccountToken").filter(|t| t.is_object()) {
                let path =
                    checked_item_path(str_at(src, "path").unwrap_or("")).map_err(|reason| {
                        VolumeError::Invalid {
                            volume: name.into(),
                            reason,
                        }
                    })?;
                let token = ctx.tokens.get(&TokenAsk::of(src)).ok_or_else(|| {
                    VolumeError::TokenUnavailable {
                        volume: name.into(),
                        reason: format!(
                            "service account {:?} has not given one",
                            service_account_name(pod)
                        ),
                    }
                })?;
                Payload::from([(path, (token.clone().into_bytes(), mode))])
            } else {
                let kind = source
                    .as_object()
                    .and_then(|o| o.keys().next().cloned())
                    .unwrap_or_else(|| "(none)".into());
                return Err(VolumeError::Unsupported {
                    volume: name.into(),
                    kind: format!("projected source {kind}"),
                });
            };
            payload.extend(part);
        }
        return Ok(Some((VolumeKind::Projected, payload)));
    }
    Ok(None)
}

/// The service account `pod` runs as.
pub fn service_account_name(pod: &Value) -> &str {
    navarch_model::admission::service_account_of(pod)
}

/// Writes a file volume's payload atomically into `dir` when it differs from what `dir`
/// holds (secret and projected volumes on a tmpfs when mounts are allowed); returns
/// whether an existing volume changed.
fn write_file_volume(
    kind: &VolumeKind,
    payload: &Payload,
    dir: &Path,
    ctx: &VolumeContext<'_>,
) -> Result<bool, VolumeError> {
    let fresh = fs::symlink_metadata(dir).is_err();
    fs::create_dir_all(dir).map_err(io_err("create volume", dir))?;
    let in_memory = matches!(kind, VolumeKind::Secret | VolumeKind::Projected);
    if in_memory && ctx.tmpfs && !is_mount_point(dir) {
        mount_tmpfs(dir, None)?;
    }
    let wrote = write_atomic(dir, payload).map_err(io_err("write volume", dir))?;
    Ok(wrote && !fresh)
}

/// A downwardAPI volume's (or projected source's) files: `items[]` of `path` with a
/// `fieldRef` (metadata.name, namespace, uid, labels, annotations, labels['k'],
/// annotations['k']) or a `resourceFieldRef` (`containerName` required), and `mode`.
fn downward_payload(
    pod: &Value,
    volume: &str,
    src: &Value,
    default_mode: u32,
    ctx: &VolumeContext<'_>,
) -> Result<Payload, VolumeError> {
    let invalid = |reason: String| VolumeError::Invalid {
        volume: volume.into(),
        reason,
    };
    let none = BTreeMap::new();
    let env_ctx = super::env::EnvContext {
        pod_ip: None,
        host_ip: None,
        config_maps: &none,
        secrets: &none,
        allocatable: ctx.allocatable,
        services: &[],
    };
    let mut payload = Payload::new();
    for item in array(src, "items") {
        let path = checked_item_path(str_at(item, "path").unwrap_or("")).map_err(invalid)?;
        let value = if let Some(f) = item.get("fieldRef") {
            let field = str_at(f, "fieldPath").unwrap_or("");
            if !field.starts_with("metadata.") {
                return Err(invalid(format!(
                    "fieldPath {field:?} is not supported in a downwardAPI volume"
                )));
            }
            super::env::field_ref(pod, field, &env_ctx).map_err(|e| invalid(e.to_string()))?
        } else if let Some(r) = item.get("resourceFieldRef") {
            let container_name = str_at(r, "containerName").unwrap_or("");
            let container = super::env::find_container(pod, container_name).ok_or_else(|| {
                invalid(format!("container {container_name:?} not found in the pod"))
            })?;
            let divisor = r.get("divisor").and_then(quantity_string);
            super::env::resource_field_ref(
                container,
                str_at(r, "resource").unwrap_or(""),
                divisor.as_deref(),
                ctx.allocatable,
            )
            .map_err(|e| invalid(e.to_string()))?
        } else {
            return Err(invalid(format!(
                "item {} has neither fieldRef nor resourceFieldRef",
                path.display()
            )));
        };
        let mode = mode_of(item.get("mode")).unwrap_or(default_mode);
        payload.insert(path, (value.into_bytes(), mode));
    }
    Ok(payload)
}

/// A configMap or secret volume's (or projected source's) files: the object's keys, or
/// the `items` listed; `src` holds `items` and `optional`.
fn object_payload(
    volume: &str,
    kind: Source,
    object_name: &str,
    src: &Value,
    default_mode: u32,
    ctx: &VolumeContext<'_>,
    namespace: &str,
) -> Result<Payload, VolumeError> {
    let objects = match kind {
        Source::ConfigMap => ctx.config_maps,
        Source::Secret => ctx.secrets,
    };
    let optional = is_optional(src);
    let invalid = |reason: String| VolumeError::Invalid {
        volume: volume.into(),
        reason,
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut keys: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    match objects.get(object_name) {
        Some(object) => {
            let strings = object.get("data").and_then(Value::as_object);
            for (k, v) in strings.into_iter().flatten() {
                let text = v.as_str().unwrap_or("");
                let bytes = match kind {
                    Source::ConfigMap => text.as_bytes().to_vec(),
                    Source::Secret => b64.decode(text).map_err(|_| {
                        invalid(format!(
                            "secret {namespace}/{object_name} key {k} is not base64"
                        ))
                    })?,
                };
                keys.insert(k.clone(), bytes);
            }
            if kind == Source::ConfigMap {
                let binary = object.get("binaryData").and_then(Value::as_object);
                for (k, v) in binary.into_iter().flatten() {
                    let bytes = b64.decode(v.as_str().unwrap_or("")).map_err(|_| {
                        invalid(format!(
                            "configmap {namespace}/{object_name} binaryData {k} is not base64"
                        ))
                    })?;
                    keys.insert(k.clone(), bytes);
                }
            }
        }
        None if optional => {}
        None => {
            return Err(match kind {
                Source::ConfigMap => VolumeError::ConfigMapNotFound {
                    name: object_name.into(),
                },
                Source::Secret => VolumeError::SecretNotFound {
                    name: object_name.into(),
                },
            })
        }
    }
    let mut payload = Payload::new();
    match src.get("items").and_then(Value::as_array) {
        Some(items) if !items.is_empty() => {
            for item in items {
                let key = str_at(item, "key").unwrap_or("");
                let Some(bytes) = keys.get(key) else {
                    if optional {
                        continue;
                    }
                    return Err(match kind {
                        Source::ConfigMap => VolumeError::ConfigMapKeyNotFound { key: key.into() },
                        Source::Secret => VolumeError::SecretKeyNotFound { key: key.into() },
                    });
                };
                let path = str_at(item, "path").unwrap_or(key);
                let mode = mode_of(item.get("mode")).unwrap_or(default_mode);
                payload.insert(
                    checked_item_path(path).map_err(invalid)?,
                    (bytes.clone(), mode),
                );
            }
        }
        _ => {
            for (key, bytes) in keys {
                payload.insert(
                    checked_item_path(&key).map_err(invalid)?,
                    (bytes, default_mode),
                );
            }
        }
    }
    Ok(payload)
}

fn mode_of(v: Option<&Value>) -> Option<u32> {
    v.and_then(Value::as_u64)
        .map(|m| u32::try_from(m & 0o7777).unwrap_or(DEFAULT_MODE))
}

/// An item path as the atomic writer accepts it: relative, no `..` element, not
/// starting with `..` (the writer's own names).
fn checked_item_path(path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && !p.is_absolute()
        && !path.starts_with("..")
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(p.to_path_buf())
    } else {
        Err(format!("invalid item path {path:?}"))
    }
}

/// The kubelet's `AtomicWriter.Write` (module docs). Returns whether anything changed.
fn write_atomic(dir: &Path, payload: &Payload) -> io::Result<bool> {
    let data_link = dir.join(DATA_LINK);
    if let Ok(current) = fs::read_link(&data_link) {
        if read_tree(&dir.join(&current)).ok().as_ref() == Some(payload)
            && visible_links_present(dir, payload)
        {
            return Ok(false);
        }
    }
    let ts_name = fresh_timestamp_dir(dir)?;
    let ts_dir = dir.join(&ts_name);
    for (rel, (bytes, mode)) in payload {
        let file = ts_dir.join(rel);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&file, bytes)?;
        fs::set_permissions(&file, fs::Permissions::from_mode(*mode))?;
    }
    let tmp = dir.join(DATA_TMP_LINK);
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&ts_name, &tmp)?;
    fs::rename(&tmp, &data_link)?;

    let tops = top_level_names(payload);
    for top in &tops {
        let link = dir.join(top);
        match fs::symlink_metadata(&link) {
            Ok(m) if m.file_type().is_symlink() => {}
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} exists and is not the writer's symlink",
                    link.display()
                )))
            }
            Err(_) => std::os::unix::fs::symlink(Path::new(DATA_LINK).join(top), &link)?,
        }
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_link = entry.file_type()?.is_symlink();
        if name.starts_with("..") {
            if name != DATA_LINK && name != ts_name && entry.file_type()?.is_dir() {
                fs::remove_dir_all(entry.path())?;
            }
        } else if is_link && !tops.contains(&name) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(true)
}

fn top_level_names(payload: &Payload) -> BTreeSet<String> {
    payload
        .keys()
        .filter_map(|p| p.components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect()
}

fn visible_links_present(dir: &Path, payload: &Payload) -> bool {
    top_level_names(payload)
        .iter()
        .all(|top| fs::symlink_metadata(dir.join(top)).is_ok_and(|m| m.file_type().is_symlink()))
}

/// Every regular file under `root` (not following symlinks): path → (content, mode).
fn read_tree(root: &Path) -> io::Result<Payload> {
    let mut out = Payload::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(root.join(&rel))? {
            let entry = entry?;
            let child = rel.join(entry.file_name());
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(child);
            } else if meta.is_file() {
                let bytes = fs::read(entry.path())?;
                out.insert(child, (bytes, meta.permissions().mode() & 0o7777));
            }
        }
    }
    Ok(out)
}

/// A new `..YYYY_MM_DD_HH_MM_SS.nnnnnnnnn` directory in `dir` (UTC), created.
fn fresh_timestamp_dir(dir: &Path) -> io::Result<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    let base = format!(
        "..{y:04}_{mo:02}_{d:02}_{:02}_{:02}_{:02}.{:09}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        now.subsec_nanos()
    );
    for n in 0u32.. {
        let name = if n == 0 {
            base.clone()
        } else {
            format!("{base}{n}")
        };
        match fs::create_dir(dir.join(&name)) {
            Ok(()) => {
                fs::set_permissions(dir.join(&name), fs::Permissions::from_mode(0o755))?;
                return Ok(name);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("u32 exhausted")
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Bytes on disk under `path` (blocks allocated, as `du` counts them), not following
/// symlinks and not crossing into other filesystems. Unreadable entries count as 0.
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(root) = fs::symlink_metadata(path) else {
        return 0;
    };
    let mut total = root.blocks() * 512;
    if !root.is_dir() {
        return total;
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.dev() != root.dev() {
                continue;
            }
            total += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    total
}

/// Unmounts everything mounted under `pod_dir` (deepest first) and removes it; idempotent.
/// Removal does not follow symlinks (a hostPath is never under `pod_dir`, and a symlink a
/// container left in an emptyDir is removed, not its target). When a mount under it
/// cannot be unmounted, nothing is removed.
pub fn cleanup(pod_dir: &Path) -> Result<(), VolumeError> {
    let Ok(real) = fs::canonicalize(pod_dir) else {
        return Ok(());
    };
    let mut under = mounts_under(&real);
    under.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for m in &under {
        if let Err(e) = nix::mount::umount2(m.as_path(), nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(path = %m.display(), error = %e, "unmount under pod dir failed");
        }
    }
    if let Some(left) = mounts_under(&real).into_iter().next() {
        return Err(VolumeError::StillMounted { path: left });
    }
    match fs::remove_dir_all(&real) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(VolumeError::Io {
            what: "remove pod dir",
            path: real,
            source: e,
        }),
    }
}

/// Mount points at or under `dir` (which is canonical), from /proc/self/mountinfo.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_mount_point(path: &Path) -> bool {
    let (Ok(m), Some(parent)) = (fs::metadata(path), path.parent()) else {
        return false;
    };
    fs::metadata(parent).is_ok_and(|p| p.dev() != m.dev())
}

fn mount_tmpfs(dir: &Path, size_bytes: Option<u64>) -> Result<(), VolumeError> {
    if is_mount_point(dir) {
        return Ok(());
    }
    let data = match size_bytes {
        Some(n) => format!("mode=0777,size={n}"),
        None => "mode=0777".to_string(),
    };
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(|source| VolumeError::Mount {
        path: dir.to_path_buf(),
        source,
    })?;
    tracing::debug!(path = %dir.display(), size = ?size_bytes, "tmpfs mounted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The tmpfs and bind-mount tests need root; CI runs as root, so a non-root run fails
    /// loudly rather than skipping.
    fn require_root() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "volume tests mount tmpfs and bind mounts: run them as root (CI does)"
        );
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    struct Objects {
        config_maps: BTreeMap<String, Value>,
        secrets: BTreeMap<String, Value>,
        allocatable: BTreeMap<String, String>,
        tokens: BTreeMap<TokenAsk, String>,
    }

    impl Objects {
        fn new() -> Self {
            let mut config_maps = BTreeMap::new();
            config_maps.insert(
                "cfg".to_string(),
                json!({"data": {"app.conf": "port=80", "other": "o"},
                    "binaryData": {"blob": b64("\u{1}\u{2}")}}),
            );
            let mut secrets = BTreeMap::new();
            secrets.insert(
                "sec".to_string(),
                json!({"data": {"password": b64("hunter2")}}),
            );
            let mut allocatable = BTreeMap::new();
            allocatable.insert("memory".to_string(), "4Gi".to_string());
            allocatable.insert("cpu".to_string(), "2".to_string());
            Objects {
                config_maps,
                secrets,
                allocatable,
                tokens: BTreeMap::new(),
            }
        }

        fn ctx(&self, tmpfs: bool) -> VolumeContext<'_> {
            VolumeContext {
                config_maps: &self.config_maps,
                secrets: &self.secrets,
                tmpfs,
                allocatable: &self.allocatable,
                tokens: &self.tokens,
            }
        }
    }

    fn pod(volumes: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"volumes": volumes}})
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// Scopes a test's mounts: cleans the pod dir up even when an assertion fails.
    struct PodDir(tempfile::TempDir);

    impl PodDir {
        fn new() -> Self {
            PodDir(tempfile::tempdir().unwrap())
        }
        fn path(&self) -> PathBuf {
            self.0.path().join("pod")
        }
    }

    impl Drop for PodDir {
        fn drop(&mut self) {
            let _ = cleanup(&self.path());
        }
    }

    #[test]
    fn empty_dir_on_disk_records_its_size_limit() {
        let objects = Objects::new();
        let dir = PodDir::new();
        let p = pod(json!([{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}]));
        let prepared = prepare(&p, &dir.path(), &objects.ctx(false)).unwrap();
        let path = dir.path().join("volumes/scratch");
        assert_eq!(mode(&path), 0o777);
        assert_eq!(
            prepared.size_limits(),
            vec![("scratch", path.as_path(), 1024 * 1024)]
        );
        assert!(disk_usage(&path) < 1024 * 1024);
        fs::write(path.join("big"), vec![7u8; 2 * 1024 * 1024]).unwrap();
        assert!(disk_usage(&path) >= 2 * 1024 * 1024);
        let mounts = prepared
            .mounts_for(&json!({"volumeMounts": [{"name": "scratch", "mountPath": "/s"}]}))
            .unwrap();
        assert_eq!(
            mounts,
            vec![Mount {
                source: MountSource::Bind(path),
                container_path: "/s".into(),
                read_only: false
            }]
        );
    }

    #[test]
    fn memory_empty_dir_is_a_shared_tmpfs_when_mounts_are_allowed() {
        require_root();
        let objects = Objects::new();
        let dir = PodDir::new();
        let p = pod(json!([{"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}}]));
        let prepared = prepare(&p, &dir.path(), &objects.ctx(true)).unwrap();
        let path = dir.path().join("volumes/mem");
        assert!(is_mount_point(&path));
        let stat = nix::sys::statvfs::statvfs(&path).unwrap();
        assert_eq!(stat.blocks() * stat.fragment_size(), 8 * 1024 * 1024);
        assert_eq!(
            prepared.volumes["mem"].source,
            MountSource::Bind(path.clone())
        );
        assert_eq!(prepared.volumes["mem"].size_limit, None);
        // Idempotent: a second prepare does not stack a second tmpfs.
        fs::write(path.join("kept"), "x").unwrap();
        prepare(&p, &dir.path(), &objects.ctx(true)).unwrap();
        assert_eq!(fs::read_to_string(path.join("kept")).unwrap(), "x");
        let real = fs::canonicalize(&path).unwrap();
        assert_eq!(mounts_under(&real), vec![real.clone()]);

        cleanup(&dir.path()).unwrap();
        assert!(!dir.path().exists());
        assert!(mounts_under(&real).is_empty());
        cleanup(&dir.path()).unwrap();
    }

    #[test]
    fn memory_empty_dir_without_mounts_is_a_per_container_tmpfs() {
        let objects = Objects::new();
        let dir = PodDir::new();
        let p = pod(json!([{"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}]));
        let prepared = prepare(&p, &dir.path(), &objects.ctx(false)).unwrap();
        assert_eq!(
            prepared.volumes["mem"].source,
            MountSource::Tmpfs {
                size_bytes: Some(1 << 30)
            }
        );
    }

    #[test]
    fn host_path_types() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        let file = tmp.path().join("f");
        fs::create_dir(&dir).unwrap();
        fs::write(&file, "").unwrap();
        let sock = tmp.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let missing = tmp.path().join("missing");
        let check = |p: &Path, t: &str| check_host_path_type(p, t).map_err(|e| e.to_string());
        assert_eq!(check(&missing, ""), Ok(()));
        assert_eq!(check(&dir, "Directory"), Ok(()));
        assert_eq!(
            check(&file, "Directory"),
            Err(format!(
                "hostPath type check failed: {} is not a directory",
                file.display()
            ))
        );
        assert_eq!(
            check(&missing, "Directory"),
            Err(format!(
                "hostPath type check failed: {} is not a directory",
                missing.display()
            ))
        );
        assert_eq!(
            check(&dir, "File"),
            Err(format!(
                "hostPath type check failed: {} is not a file",
                dir.display()
            ))
        );
        assert_eq!(check(&file, "FileOrCreate"), Ok(()));
        assert_eq!(check(&sock, "Socket"), Ok(()));
        assert!(check(&file, "Socket")
            .unwrap_err()
            .ends_with("is not a socket file"));
        assert_eq!(check(Path::new("/dev/null"), "CharDevice"), Ok(()));
        assert!(check(&file, "CharDevice")
            .unwrap_err()
            .ends_with("is not a character device"));
        assert!(check(Path::new("/dev/null"), "BlockDevice")
            .unwrap_err()
            .ends_with("is not a block device"));
        assert_eq!(
            check(&file, "Bogus"),
            Err("Bogus is an invalid volume type".into())
        );

        let new_dir = tmp.path().join("new/dir");
        assert_eq!(check(&new_dir, "DirectoryOrCreate"), Ok(()));
        assert!(new_dir.is_dir());
        assert_eq!(mode(&new_dir), 0o755);
        let new_file = tmp.path().join("new/file");
        assert_eq!(check(&new_file, "FileOrCreate"), Ok(()));
        assert!(new_file.is_file());
        assert_eq!(mode(&new_file), 0o644);
        assert!(check(&new_file, "DirectoryOrCreate").is_err());
    }

    #[test]
    fn config_map_volume_is_written_atomically_with_items_and_modes() {
        let objects = Objects::new();
        let dir = PodDir::new();
        let p = pod(
            json!([{"name": "conf", "configMap": {"name": "cfg", "defaultMode": 0o600,
            "items": [{"key": "app.conf", "path": "etc/app.conf"},
                      {"key": "blob", "path": "blob.bin", "mode": 0o400}]}}]),
        );
        let prepared = prepare(&p, &dir.path(), &objects.ctx(false)).unwrap();
        let vol = dir.path().join("volumes/conf");
        assert_eq!(
            fs::read_to_string(vol.join("etc/app.conf")).unwrap(),
            "port=80"
        );
        assert_eq!(fs::read(vol.join("blob.bin")).unwrap(), vec![1u8, 2]);
        assert!(!vol.join("other").exists());
        assert_eq!(mode(&vol.join("etc/app.conf")), 0o600);
        assert_eq!(mode(&vol.join("blob.bin")), 0o400);
        // The layout: user-visible symlinks through `..data` to a timestamped dir.
        assert_eq!(
            fs::read_link(vol.join("etc")).unwrap(),
            Path::new("..data/etc")
        );
        let ts = fs::read_link(vol.join("..data")).unwrap();
        let ts = ts.to_str().unwrap();
        assert!(
            ts.starts_with("..20") && ts.len() == "..2026_12_01_21_38_30.123456789".len(),
            "{ts}"
        );
        // configMap volumes are read-only in every container.
        let mounts = prepared
            .mounts_for(
                &json!({"volumeMounts": [{"name": "conf", "mountPath": "/c", "readOnly": false}]}),
            )
            .unwrap();
        assert!(mounts[0].read_only);
    }

    #[test]
    fn update_rewrites_only_changed_volumes_and_a_bind_mount_sees_it() {
        require_root();
        let mut objects = Objects::new();
        let dir = PodDir::new();
        let p = pod(json!([{"name": "conf", "configMap": {"name": "cfg"}},
            {"name": "scratch", "emptyDir": {}}]));
        prepare(&p, &dir.path(), &objects.ctx(false)).unwrap();
        let vol = dir.path().join("volumes/conf");
        let first_ts = fs::read_link(vol.join("..data")).unwrap();
        assert!(update(&p, &dir.path(), &objects.ctx(false))
            .unwrap()
            .is_empty());
        assert_eq!(fs::read_link(vol.join("..data")).unwrap(), first_ts);

        // What a container sees: the volume dir bind-mounted elsewhere.
        let seen = dir.path().join("container-view");
        fs::create_dir_all(&seen).unwrap();
        nix::mount::mount(
            Some(&vol),
            &seen,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(seen.join("app.conf")).unwrap(),
            "port=80"
        );

        objects.config_maps.insert(
            "cfg".into(),
            json!({"data": {"app.conf": "port=8080", "new": "n"}}),
        );
        let changed = update(&p, &dir.path(), &objects.ctx(false)).unwrap();
        assert_eq!(changed.into_iter().collect::<Vec<_>>(), ["conf"]);
        assert_eq!(
            fs::read_to_string(seen.join("app.conf")).unwrap(),
            "port=8080"
        );
        assert_eq!(fs::read_to_string(seen.join("new")).unwrap(), "n");
        assert!(fs::symlink_metadata(seen.join("other")).is_err());
        assert!(fs::symlink_metadata(seen.join("blob")).is_err());
        assert!(!vol.join(&first_ts).exists());
        let old_versions: Vec<_> = fs::read_dir(&vol)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != "..data")
            .collect();
        assert_eq!(old_versions.len(), 1, "{old_versions:?}");

        cleanup(&dir.path()).unwrap();
        assert!(!dir.path().exists());
    }

    #[test]
    fn secret_volume_is_decoded_onto_a_tmpfs() {
        require_root();
        let objects = Objects::new();
        let dir = PodDir::new();
        let p = pod(json!([{"name": "s", "secret": {"secretName": "sec", "defaultMode": 0o440}}]));
        let prepared = prepare(&p, &dir.path(), &objects.ctx(true)).unwrap();
        let vol = dir.path().join("volumes/s");
        assert!(is_mount_point(&vol));
        assert_eq!(fs::read_to_string(vol.join("password")).unwrap(), "hunter2");
        assert_eq!(mode(&vol.join("password")), 0o440);
        assert_eq!(prepared.volumes["s"].kind, VolumeKind::Secret);
        prepare(&p, &dir.path(), &objects.ctx(true)).unwrap();
        let real = fs::canonicalize(&vol).unwrap();
        assert_eq!(mounts_under(&real).len(), 1);
        cleanup(&dir.path()).unwrap();
        assert!(mounts_under(&real).is_empty());
    }

    #[test]
    fn missing_objects_and_keys() {
        let objects = Objects::new();
        let dir = PodDir::new();
        let err = |volumes: Value| {
            prepare(&pod(volumes), &dir.path(), &objects.ctx(false))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(json!([{"name": "a", "configMap": {"name": "nope"}}])),
            "configmap \"nope\" not found"
        );
        assert_eq!(
            err(json!([{"name": "a", "secret": {"secretName": "nope"}}])),
            "secret \"nope\" not found"
        );
        assert_eq!(
            err(
                json!([{"name": "a", "configMap": {"name": "cfg", "items": [{"key": "k", "path": "k"}]}}])
            ),
            "configmap references non-existent config key: k"
        );
        assert_eq!(
            err(
                json!([{"name": "a", "secret": {"secretName": "sec", "items": [{"key": "k", "path": "k"}]}}])
            ),
            "references non-existent secret key: k"
        );
        assert!(err(json!([{"name": "a", "configMap": {"name": "cfg", "items": [{"key": "other", "path": "../x"}]}}]))
            .contains("invalid item path"));
        assert_eq!(
            err(json!([{"name": "a", "persistentVolumeClaim": {"claimName": "c"}}])),
            "volume \"a\": unsupported volume type persistentVolumeClaim"
        );

        let p = pod(json!([
            {"name": "a", "configMap": {"name": "nope", "optional": true}},
            {"name": "b", "configMap": {"name": "cfg", "optional": true,
                "items": [{"key": "k", "path": "k"}, {"key": "other", "path": "o"}]}},
        ]));
        prepare(&p, &dir.path(), &objects.ctx(false)).unwrap();
        let names = |v: &str| -> Vec<String> {
            fs::read_dir(dir.path().join("volumes").join(v))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with(".."))
                .collect()
        };
        assert!(names("a").is_empty());
        assert_eq!(names("b"), ["o"]);
    }

    #[test]
    fn mounts_with_sub_paths() {
        let objects = Objects::new();
        let dir = PodDir::new();
        let outside = tempfile::tempdir().unwrap();
        let p = pod(json!([{"name": "data", "emptyDir": {}},
            {"name": "conf", "configMap": {"name": "cfg"}},
            {"name": "host", "hostPath": {"path": outside.path()}}]));
        let prepared = prepare(&p, &dir.path(), &objects.ctx(false)).unwrap();
        let vol = fs::canonicalize(dir.path().join("volumes/data")).unwrap();
        let mounts = |vm: Value| prepared.mounts_for(&json!({"volumeMounts": [vm]}));

        let m =
            mounts(json!({"name": "data", "mountPath": "/d", "subPath": "a/b", "readOnly": true}))
                .unwrap();
        assert_eq!(m[0].source, MountSource::Bind(vol.join("a/b")));
        assert!(m[0].read_only);
        assert!(vol.join("a/b").is_dir());
        let m =
            mounts(json!({"name": "conf", "mountPath": "/etc/app.conf", "subPath": "app.conf"}))
                .unwrap();
        let conf = fs::canonicalize(dir.path().join("volumes/conf")).unwrap();
        let MountSource::Bind(file) = &m[0].source else {
            panic!("{m:?}")
        };
        assert!(file.starts_with(&conf) && fs::read_to_string(file).unwrap() == "port=80");
        assert!(m[0].read_only);
        let m = mounts(json!({"name": "host", "mountPath": "/h"})).unwrap();
        assert_eq!(m[0].source, MountSource::Bind(outside.path().to_path_buf()));

        for (vm, expected) in [
            (
                json!({"name": "data", "mountPath": "/d", "subPath": "../x"}),
                "must not contain '..'",
            ),
            (
                json!({"name": "data", "mountPath": "/d", "subPath": "/etc"}),
                "must be a relative path",
            ),
            (
                json!({"name": "conf", "mountPath": "/d", "subPath": "nope"}),
                "no such file in the volume",
            ),
            (
                json!({"name": "nope", "mountPath": "/d"}),
                "no such volume in the pod",
            ),
            (
                json!({"name": "data", "mountPath": "rel"}),
                "is not absolute",
            ),
        ] {
            let e = mounts(vm).unwrap_err().to_string();
            assert!(e.contains(expected), "{e}");
        }
        // A symlink a container planted must not lead a subPath out of the volume.
        std::os::unix::fs::symlink(outside.path(), vol.join("escape")).unwrap();
        let e = mounts(json!({"name": "data", "mountPath": "/d", "subPath": "escape"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("resolves outside the volume"), "{e}");
    }

    #[test]
    fn cleanup_never_follows_symlinks_out_of_the_pod_dir() {
        let objects = Objects::new();
        let dir = PodDir::new();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("precious"), "keep").unwrap();
        let p = pod(json!([{"name": "data", "emptyDir": {}},
            {"name": "host", "hostPath": {"path": outside.path(), "type": "Directory"}}]));
        prepare(&p, &dir.path(), &objects.ctx(false)).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("volumes/data/link")).unwrap();
        cleanup(&dir.path()).unwrap();
        assert!(!dir.path().exists());
        assert_eq!(
            fs::read_to_string(outside.path().join("precious")).unwrap(),
            "keep"
        );
        cleanup(&dir.path()).unwrap();
    }

    #[test]
    fn memory_empty_dir_is_no_larger_than_allocatable_memory() {
        let objects = Objects::new();
        let dir = PodDir::new();
        let p = pod(json!([{"name": "mem", "emptyDir": {"medium": "Memory"}}]));
        let prepared = prepare(&p, &dir.path(), &objects.ctx(false)).unwrap();
        assert_eq!(
            prepared.volumes["mem"].source,
            MountSource::Tmpfs {
                size_bytes: Some(4 << 30)
            }
        );
    }

    #[test]
    fn downward_api_volume_follows_the_pods_metadata() {
        let objects = Objects::new();
        let dir = PodDir::new();
        let mut p = json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"b": "2", "a": "1"}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}],
        "volumes": [{"name": "info", "downwardAPI": {"defaultMode": 0o400, "items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}, "mode": 0o444},
            {"path": "mem", "resourceFieldRef": {"containerName": "c",
                "resource": "limits.memory", "divisor": "1Mi"}},
            {"path": "cpu", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu"}},
        ]}}]}});
        let prepared = prepare(&p, &dir.path(), &objects.ctx(false)).unwrap();
        let vol = dir.path().join("volumes/info");
        let read = |f: &str| fs::read_to_string(vol.join(f)).unwrap();
        assert_eq!(read("name"), "p");
        assert_eq!(read("labels"), "a=\"1\"\nb=\"2\"");
        assert_eq!(read("mem"), "64");
        assert_eq!(
            read("cpu"),
            "2",
            "an unset limit reads the node's allocatable"
        );
        assert_eq!(mode(&vol.join("name")), 0o400);
        assert_eq!(mode(&vol.join("labels")), 0o444);
        assert_eq!(prepared.volumes["info"].kind, VolumeKind::DownwardApi);
        assert!(
            prepared
                .mounts_for(&json!({"volumeMounts": [{"name": "info", "mountPath": "/i"}]}))
                .unwrap()[0]
                .read_only
        );

        assert!(update(&p, &dir.path(), &objects.ctx(false))
            .unwrap()
            .is_empty());
        p["metadata"]["labels"]["c"] = json!("3");
        let changed = update(&p, &dir.path(), &objects.ctx(false)).unwrap();
        assert_eq!(changed.into_iter().collect::<Vec<_>>(), ["info"]);
        assert_eq!(read("labels"), "a=\"1\"\nb=\"2\"\nc=\"3\"");

        let bad = pod(json!([{"name": "x", "downwardAPI": {"items": [
            {"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]}}]));
        let e = prepare(&bad, &dir.path(), &objects.ctx(false))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not supported in a downwardAPI volume"), "{e}");
    }

    #[test]
    fn projected_volume_merges_its_sources() {
        let objects = Objects::new();
        let dir = PodDir::new();
        let p = pod(
            json!([{"name": "all", "projected": {"defaultMode": 0o440, "sources": [
                {"configMap": {"name": "cfg", "items": [{"key": "app.conf", "path": "conf/app.conf"}]}},
                {"secret": {"name": "sec"}},
                {"secret": {"name": "nope", "optional": true}},
                {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            ]}}]),
        );
        let prepared = prepare(&p, &dir.path(), &objects.ctx(false)).unwrap();
        let vol = dir.path().join("volumes/all");
        assert_eq!(
            fs::read_to_string(vol.join("conf/app.conf")).unwrap(),
            "port=80"
        );
        assert_eq!(fs::read_to_string(vol.join("password")).unwrap(), "hunter2");
        assert_eq!(fs::read_to_string(vol.join("ns")).unwrap(), "ns");
        assert_eq!(mode(&vol.join("password")), 0o440);
        assert_eq!(prepared.volumes["all"].kind, VolumeKind::Projected);

        let token = pod(json!([{"name": "t", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {"clusterTrustBundle": {"path": "b"}}]}}]));
        assert_eq!(
            prepare(&token, &dir.path(), &objects.ctx(false))
                .unwrap_err()
                .to_string(),
            "volume \"t\": no service account token yet (service account \"default\" has not given one)"
        );
        let ask = TokenAsk {
            audience: String::new(),
            expiration_seconds: 3607,
        };
        assert_eq!(token_asks(&token), BTreeSet::from([ask.clone()]));
        let mut objects = objects;
        objects.tokens.insert(ask.clone(), "jwt-1".into());
        assert_eq!(
            prepare(&token, &dir.path(), &objects.ctx(false))
                .unwrap_err()
                .to_string(),
            "volume \"t\": unsupported volume type projected source clusterTrustBundle"
        );
        let token = pod(json!([{"name": "t", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}]));
        prepare(&token, &dir.path(), &objects.ctx(false)).unwrap();
        let file = dir.path().join("volumes/t/token");
        assert_eq!(fs::read_to_string(&file).unwrap(), "jwt-1");
        // A rotated token is published by an update.
        objects.tokens.insert(ask, "jwt-2".into());
        let changed = update(&token, &dir.path(), &objects.ctx(false)).unwrap();
        assert_eq!(changed, BTreeSet::from(["t".to_string()]));
        assert_eq!(fs::read_to_string(&file).unwrap(), "jwt-2");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_423), (2025, 12, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
