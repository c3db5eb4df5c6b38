//! Container runtimes for the node agent (the `process` runtime through nix, the `oci`
//! runtime through runc). Empty until the node issue: nothing here runs containers yet.
