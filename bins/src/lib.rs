//! Wiring shared by navarch's binaries: data-dir layout and credentials, private files,
//! logging, and navctl's commands.
//!
//! The binaries are thin: `bin/navarch-master.rs` binds the QUIC endpoint, starts a store
//! member and the API server (`navarch-apiserver`) and serves it over HTTPS;
//! `join.rs` is a master joining a running cluster; `bin/navarch-node.rs` joins a node, or
//! runs hollow nodes (`navarch-agent`); `bin/navctl.rs` is the operator's CLI over the HTTPS
//! client (`navarch-client`), with `navctl bench` calling `navarch-bench`.

pub mod control;
pub mod credentials;
pub mod join;
pub mod navctl;
pub mod node;
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
