//! The whole pipeline on this machine, no Docker, no AWS account (`make demo`, `make demo-check`).
//!
//! `demo`          start everything, play the demo, print the summary, stay up until Ctrl-C
//! `demo --check`  the same on free ports, compare the summary with tests/demo/expected.json, then
//!                 send every sample of events/ to its function (events/answers.json), stop
//!
//! The functions run from the binaries cargo built beside this one (`make demo` builds the
//! workspace first), so a release build of the workspace runs release functions.

use std::process::ExitCode;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tributary_tests::demo::{Demo, Ports};

#[tokio::main]
async fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!("demo: unknown argument `{other}`: use no argument, or --check");
            return ExitCode::FAILURE;
        }
    };
    match run(check).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("demo: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Processes of each function Lambda invokes per event or request: two, so that the demo (and the
/// CI's check of it) runs invocations at once as Lambda does, and handles its 460 events in about
/// two thirds of the time one process takes.
const DEMO_INSTANCES: usize = 2;

async fn run(check: bool) -> Result<(), String> {
    // Listened to from the start: a stop asked while the stack starts is seen once it has started,
    // and every process it started is stopped (below).
    let mut stop = StopSignals::listen()?;
    let ports = if check { Ports::free() } else { Ports::well_known()? };
    let mut demo = Demo::start(ports, DEMO_INSTANCES).await?;
    let outcome = tokio::select! {
        outcome = play(&demo, check) => outcome,
        signal = stop.requested() => Err(format!("stopped by {signal} before the end")),
    };
    if outcome.is_ok() && !check {
        println!("\nThe stack stays up: Ctrl-C stops every process it started.");
        stop.requested().await;
        println!("\nstopping…");
    }
    let still_bound = demo.stop();
    let verdict = outcome?;
    if !still_bound.is_empty() {
        return Err(format!("ports still bound after stopping: {still_bound:?}"));
    }
    if let Some(line) = verdict {
        println!("{line}");
    }
    println!("stopped: every process ended, no port left bound");
    Ok(())
}

/// Ctrl-C, or SIGTERM (how `make test` stops the check it runs beside the tests when those are
/// interrupted).
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    fn listen() -> Result<Self, String> {
        let listen = |kind| signal(kind).map_err(|e| format!("listening for signals: {e}"));
        Ok(Self { interrupt: listen(SignalKind::interrupt())?, terminate: listen(SignalKind::terminate())? })
    }

    async fn requested(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// Plays the demo and prints its summary; with `check`, returns the check's verdict line.
async fn play(demo: &Demo, check: bool) -> Result<Option<String>, String> {
    let run = demo.play().await?;
    let summary = demo.summary(&run).await?;
    println!("{summary}");
    let repair = demo.repair().await?;
    println!("{}", demo.next_steps());
    if !check {
        return Ok(None);
    }
    let verdict = demo.check(&run, &summary)?;
    let repaired = demo.check_repair(&repair)?;
    // Before the smoke test, whose samples leave a dead letter of their own (a push for a customer
    // this stack does not have): the console re-drives the failure it injected, alone in its queue.
    let console = demo.check_console().await?;
    let smoke = demo.smoke().await?;
    Ok(Some(format!("{verdict}\n{repaired}\n{smoke}\n{console}\n{}", demo.peak_memory())))
}
