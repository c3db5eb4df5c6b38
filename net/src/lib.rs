//! navarch-net: QUIC transport with mutual TLS, a bincode wire codec, the cluster PKI,
//! kubeadm-style node join, the server token and the master join, fault injection and wire tracing for the rest of navarch.

pub mod codec;
pub mod fault;
pub mod pki;
pub mod rpc;
pub mod server_token;
pub mod trace;

pub use codec::{CodecError, FORMAT_VERSION};
pub use fault::{Fault, FaultDirection, FaultInjector, FaultRule};
pub use pki::{
    AltName, BootstrapToken, CertProfile, ClusterCa, ExpectedPeer, Identity, PeerIdentity,
    PkiError, TokenStore,
};
pub use rpc::*;
pub use server_token::{generate_server_secret, ServerToken, ServerTokenError};
pub use trace::{CorrelationId, Direction, WireEvent, WireTap};
