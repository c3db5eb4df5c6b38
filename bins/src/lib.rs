//! Wiring shared by navarch's binaries: data-dir layout and credentials, logging, and the
//! master's HTTP endpoint.
//!
//! The binaries are thin: `bin/navarch-master.rs` starts a store member and the API server
//! (`api`), `bin/navarch-node.rs` joins a node, `bin/navctl.rs` is the operator's CLI.

pub mod api;
pub mod bench;
pub mod client;
pub mod credentials;
pub mod debug_actors;
pub mod http;
pub mod navctl;
pub mod private;

/// Sets up `tracing` output: human-readable by default, JSON with `NAVARCH_LOG_FORMAT=json`;
/// the level from `RUST_LOG` (default `info`).
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,openraft=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("NAVARCH_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
