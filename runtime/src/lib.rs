//! Container runtimes for the node agent, behind the [`ContainerRuntime`] trait: the
//! `process` runtime ([`ProcessRuntime`]: processes forked through nix into namespaces,
//! an overlay root over an image and cgroup limits, each supervised by its own
//! [`shim`]) and the `oci` runtime ([`OciRuntime`]: OCI bundles run by runc under the same
//! shim), with the [`ImageStore`] they take images from. [`contract`] is the suite every
//! runtime passes.
//!
//! Start at `container_runtime.rs` (the trait), `spec.rs` (what a container is asked to
//! be) and `status.rs` (what it is, folded from the state dir's records), then
//! `process.rs` and `shim.rs`, then `oci.rs`. The crate knows nothing of the store, the
//! network or the actors: the agent turns pods into [`ContainerSpec`]s and statuses back
//! into pod status.

pub mod attach;
pub mod cgroup;
pub mod container_runtime;
pub mod contract;
pub mod error;
pub mod image;
mod lifecycle;
pub mod logs;
pub mod oci;
pub mod plan;
pub mod process;
pub mod rootpath;
pub mod shim;
pub mod spec;
pub mod state;
pub mod status;
pub mod time;

pub use attach::{ExecInput, ExecIo};
pub use container_runtime::{ContainerRuntime, Isolation, RuntimeFuture};
pub use error::RuntimeError;
pub use image::{Image, ImageConfig, ImageStore};
pub use oci::{OciConfig, OciRuntime};
pub use process::{IsolationMode, ProcessConfig, ProcessRuntime};
pub use spec::{
    ContainerId, ContainerSpec, EnvVar, ExecChunk, ExecOutput, ExecRequest, LogConfig, Mount,
    MountSource, Resources, SandboxInfo,
};
pub use status::{ContainerState, ContainerStatus, Reason};
