//! The local stack: moto with `template.yaml` provisioned and the functions running as real Lambda
//! binaries under `cargo lambda watch`, no Docker, no AWS account.
//!
//! `local-stack up`      start everything and stay up until Ctrl-C (`make local`)
//! `local-stack inspect` show what the stack holds: archived deliveries, dedup markers, events
//! `local-stack check`   start, send a delivery over HTTP, verify every effect, stop (`make local-check`)

use std::process::ExitCode;
use tributary_tests::local::{self, LocalStack, Ports};

#[tokio::main]
async fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_else(|| "up".to_string());
    let result = match command.as_str() {
        "up" => up().await,
        "inspect" => local::inspect().await,
        "check" => check().await,
        other => Err(format!("unknown command `{other}`: use up, inspect or check")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("local-stack: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn up() -> Result<(), String> {
    let stack = LocalStack::start(Ports::well_known()?).await?;
    println!("{}", stack.banner());
    tokio::select! {
        _ = tokio::signal::ctrl_c() => println!("\nstopping…"),
        status = stack.watch_exited() => println!("cargo lambda watch exited ({status}); stopping…"),
    }
    stack.stop();
    Ok(())
}

async fn check() -> Result<(), String> {
    let stack = LocalStack::start(Ports::free()?).await?;
    let result = stack.smoke_test().await;
    stack.stop();
    let report = result?;
    println!("{report}");
    Ok(())
}
