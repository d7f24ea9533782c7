//! The realism layer as a process, for `make demo`: a proxy in front of the emulator at `$1` that
//! answers what the emulator lacks as AWS does — IAM's centralized root access and root sessions,
//! organization-policy limits, the Budgets subscriber calls, Identity Center's asynchronous
//! requests, tags and boundaries — and, with `LZ_AWS=realistic`, AWS's timing too (CreateAccount
//! asynchronous for `LZ_CREATE_SECONDS`, default 20; new accounts listed and assumable some seconds
//! later; IAM eventually consistent; tens of milliseconds per call). Prints its endpoint, then
//! serves until killed.

use landing_zone_tests::proxy::{AwsProxy, CreateAccountModel, IdentityCenterModel, Realism};
use std::time::Duration;

#[tokio::main]
async fn main() {
    let Some(upstream) = std::env::args().nth(1) else {
        eprintln!("usage: aws-realism http://127.0.0.1:PORT (the emulator)");
        std::process::exit(2);
    };
    let create = std::env::var("LZ_CREATE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let proxy = AwsProxy::start(&upstream).await;
    // What the emulator lacks, always.
    let base = Realism {
        root_access: true,
        policies: true,
        budgets: Some(Default::default()),
        email_confirmation: true,
        security_services: Some(Default::default()),
        identity_center: Some(IdentityCenterModel {
            duration: Duration::from_millis(500),
            ..Default::default()
        }),
        ..Default::default()
    };
    if std::env::var("LZ_AWS").as_deref() != Ok("realistic") {
        proxy.realism(base.clone());
        println!("{}", proxy.endpoint);
        std::future::pending::<()>().await;
    }
    proxy.realism(Realism {
        latency: Duration::from_millis(20),
        create_account: Some(CreateAccountModel {
            duration: Duration::from_secs(create),
            visible_after: Duration::from_secs(2),
            assumable_after: Duration::from_secs(5),
            ..Default::default()
        }),
        iam_visibility_lag: Duration::from_secs(1),
        ..base
    });
    println!("{}", proxy.endpoint);
    std::future::pending::<()>().await;
}
