// Two workers: the operator waits on the network; a fixed count keeps threads and malloc arenas
// (and so memory) the same on a 2-core node and a 64-core one.
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    landing_zone_operator::cli::main().await
}
