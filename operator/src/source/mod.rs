//! Desired state: from a directory of YAML (the CLI) or from the Kubernetes API (the controller).

pub mod dir;
pub mod state;
