//! The control plane's decisions as pure functions: observed objects in, actions out.
//!
//! Nothing here knows actix, the API client, the clock or the network: the controller
//! actors (`navarch-controllers`) read their inputs from the shared watch caches, call these
//! functions, and carry the actions out through the API. So every rule of a rollout, a
//! scale-down or a placement is tested with plain function calls, table-driven.
//!
//! Where to start reading:
//! - [`meta`]: reading and writing the metadata every controller shares (owners, labels,
//!   conditions, times);
//! - [`replicaset`]: a ReplicaSet's pods (create, delete in Kubernetes' order, adopt,
//!   release) and its status, with expectations;
//! - [`deployment`]: a Deployment's ReplicaSets (rolling update, recreate, history,
//!   conditions, automatic rollback) and its status;
//! - [`scheduler`]: filters and scores placing a pod on a node;
//! - [`nodes`]: node lifecycle (lease expiry, the unreachable taint, evictions);
//! - [`endpoints`]: a Service's Endpoints and EndpointSlices;
//! - [`events`]: Events, deduplicated with counts and rate-limited;
//! - [`gc`]: the garbage collector (dependents of owners that are gone);
//! - [`namespaces`]: emptying and finalizing deleted namespaces;
//! - [`nodeipam`]: the pod range each Node gets from the cluster's;
//! - [`admission`]: the kubelet's resource fit of a pod on its node;
//! - [`podgc`]: the pod garbage collector (orphans, terminating pods nobody will end, the
//!   terminated-pod threshold).
//!
//! Times are Unix seconds (`i64`) passed in by the caller: the logic never reads a clock.

pub mod admission;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod gc;
pub mod meta;
pub mod namespaces;
pub mod nodeipam;
pub mod nodes;
pub mod podgc;
pub mod replicaset;
pub mod scheduler;
pub mod serviceaccounts;
