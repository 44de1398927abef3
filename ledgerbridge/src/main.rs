//! The `ledgerbridge` command: run a node (`demo`, `serve`), check configurations, verify proofs.

mod anchor;
mod bench;
mod bench_connector;
mod bench_mapping;
mod bench_pipeline;
mod cli;
mod integrity;
mod legacy;
mod monitor;
mod node;
mod notify;
mod oversight;
mod samples;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: the pipeline allocates per record in every stage
/// (Avro values, JSON, SQL parameters), and glibc's malloc and free took a fifth of its CPU time
/// (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
