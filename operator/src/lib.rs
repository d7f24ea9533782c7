//! landing-zone-operator: reconciles an AWS Organization from `landingzone.dev` resources.

pub mod api;
pub mod aws;
pub mod claims;
pub mod cli;
pub mod controller;
pub mod crds;
pub mod events;
pub mod http;
pub mod import;
pub mod metrics;
pub mod reconcile;
pub mod source;
