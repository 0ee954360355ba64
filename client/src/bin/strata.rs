//! `strata`: the Strata command-line tool (topics, produce, consume,
//! cluster, benchmarks). The commands live in `src/cli/`.

#[path = "../cli/mod.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
