//! The `ledgerbridge` command: run a node (`demo`, `serve`), check configurations, verify proofs.

mod anchor;
mod bench;
mod bench_connector;
mod bench_mapping;
mod bench_pipeline;
mod cli;
mod integrity;
mod lanes;
mod legacy;
mod monitor;
mod node;
mod notify;
mod oversight;
mod samples;

use std::process::ExitCode;

use clap::Parser;

/// jemalloc instead of the system allocator, for the whole process (the C libraries' `malloc`
/// too: SQLite's page cache, librdkafka, libpq). The pipeline allocates per record in every
/// stage (Avro datums, JSON, SQL parameters): glibc's malloc and free took a fifth of its CPU
/// time; mimalloc, used before, returned freed pages to the system and faulted fresh ones in
/// again (a seventh of the CPU samples zeroing pages). Measured in docs/benchmarks.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
