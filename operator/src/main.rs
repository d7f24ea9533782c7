#[tokio::main]
async fn main() -> std::process::ExitCode {
    landing_zone_operator::cli::main().await
}
