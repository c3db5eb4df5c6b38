//! `navarch-shim`: the per-container supervisor the `process` runtime starts (see
//! `navarch_runtime::shim`).

fn main() {
    std::process::exit(navarch_runtime::shim::main());
}
