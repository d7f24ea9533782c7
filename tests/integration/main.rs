//! Integration tests: the operator's real AWS SDK clients against the AWS emulator (moto), and
//! the CRDs against a real kube-apiserver.

mod admission;
mod apply;
mod argocd;
mod audit_trail;
mod baseline;
mod budgets;
mod change_events;
mod chart;
mod controller;
mod create_flow;
mod faults;
mod iam_policy;
mod image;
mod import;
mod lifecycle;
mod organization;
mod organization_policy;
mod permission_set;
mod security_baseline;
mod security_services;
mod self_service;
mod service_policies;
mod trail_alarms;
