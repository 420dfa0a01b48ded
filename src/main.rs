use std::{process::ExitCode, time::Duration};

/// How long, once the server is done, to wait for blocking threads: a read of a stdin that is
/// a socket (Node gives children socket pairs) never returns while the client holds it open,
/// and waiting for it would keep a stopped server alive.
const BLOCKING_GRACE: Duration = Duration::from_millis(200);

fn main() -> ExitCode {
    // One thread serves stdio well: calls are I/O-bound, and worker threads would only cost
    // memory.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts");
    let code = runtime.block_on(bitrix24_permissions_mcp::run());
    runtime.shutdown_timeout(BLOCKING_GRACE);
    code
}
