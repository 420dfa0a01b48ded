use std::process::ExitCode;

// One thread serves stdio well: calls are I/O-bound, and worker threads would only cost memory.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    bitrix24_permissions_mcp::run().await
}
