//! The `strata` command line: argument parsing (clap), the tokio runtime,
//! and the one-line error report every failure ends in.
//!
//! Conventions shared by every command:
//! - `--bootstrap` / `STRATA_BOOTSTRAP` and `--output text|json` are global.
//! - Results go to stdout; a failure prints exactly one line,
//!   `error: <cause>`, on stderr and exits 1 (2 for a usage error).
//! - A closed stdout (`strata consume t | head`) ends the command quietly.

mod acl;
mod bench;
mod cluster;
mod consume;
mod format;
mod group;
mod moves;
mod output;
mod produce;
mod topic;
mod user;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use output::Output;

/// Strata command-line tool: manage topics, produce and consume records,
/// inspect the cluster, and benchmark it.
#[derive(Debug, Parser)]
#[command(name = "strata", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    /// Brokers to bootstrap from (comma-separated host:port list).
    #[arg(
        long,
        global = true,
        env = "STRATA_BOOTSTRAP",
        default_value = "127.0.0.1:9700",
        value_name = "HOST:PORT[,HOST:PORT...]"
    )]
    bootstrap: String,

    /// Output: `text` (tables for humans) or `json` (for scripts).
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,

    /// Connect to the brokers over TLS (implied by --ca-file, --cert-file).
    #[arg(long, global = true, env = "STRATA_TLS")]
    tls: bool,

    /// PEM CA bundle the brokers' certificates are verified against
    /// (default with --tls: the public web roots).
    #[arg(long, global = true, env = "STRATA_CA_FILE", value_name = "PEM")]
    ca_file: Option<std::path::PathBuf>,

    /// PEM certificate this client presents (mutual TLS; with --key-file).
    #[arg(long, global = true, env = "STRATA_CERT_FILE", value_name = "PEM", requires = "key_file")]
    cert_file: Option<std::path::PathBuf>,

    /// PEM private key of --cert-file.
    #[arg(long, global = true, env = "STRATA_KEY_FILE", value_name = "PEM", requires = "cert_file")]
    key_file: Option<std::path::PathBuf>,

    /// User to authenticate as (a SCRAM user of the cluster; with
    /// --password).
    #[arg(long, global = true, env = "STRATA_USER")]
    user: Option<String>,

    /// The user's password (prefer the STRATA_PASSWORD env variable: an
    /// argument shows in the process list).
    #[arg(long, global = true, env = "STRATA_PASSWORD", hide_env_values = true)]
    password: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    Produce(produce::ProduceArgs),
    Consume(consume::ConsumeArgs),
    /// Inspect the cluster.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Consumer groups: list, describe (lag), reset offsets, delete.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Measure produce throughput, read-back throughput and end-to-end latency.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Users (SCRAM credentials): create, delete, list.
    #[command(subcommand)]
    User(user::UserCommand),
    /// ACLs: add, list, remove (enforced with --authorizer on).
    #[command(subcommand)]
    Acl(acl::AclCommand),
    /// Move partitions' replicas; list the moves in progress.
    #[command(subcommand)]
    Partition(moves::PartitionCommand),
    /// Decommission a broker (move everything off it).
    #[command(subcommand)]
    Broker(moves::BrokerCommand),
}

/// Settings every command can use.
#[derive(Debug, Clone)]
pub(crate) struct Global {
    /// Bootstrap addresses, as given.
    pub bootstrap: String,
    /// Output format.
    pub output: Output,
    /// TLS to the brokers.
    pub security: strata_client::Security,
}

impl Global {
    /// The bootstrap list the library takes.
    pub(crate) fn bootstrap(&self) -> Vec<String> {
        vec![self.bootstrap.clone()]
    }

    /// An admin client of the cluster, with the security settings.
    pub(crate) async fn admin(&self) -> Result<strata_client::Admin, strata_client::ClientError> {
        strata_client::Admin::connect_with(self.bootstrap(), &self.security).await
    }
}

/// Parses the command line, runs the command and turns its outcome into
/// an exit code.
pub fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let text = info.to_string();
        eprintln!("error: internal error: {}", one_line(&text));
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.user.is_some() != cli.password.is_some() {
        eprintln!("error: give --user and --password together (or STRATA_USER and STRATA_PASSWORD)");
        return ExitCode::from(2);
    }
    let tls = cli.tls || cli.ca_file.is_some() || cli.cert_file.is_some();
    let security = strata_client::Security {
        tls: tls.then_some(strata_client::TlsFiles { cert: cli.cert_file, key: cli.key_file, ca: cli.ca_file }),
        credentials: cli.user.zip(cli.password).map(|(user, password)| strata_client::Credentials { user, password }),
    };
    let bootstrap = cli.bootstrap.clone();
    let global = Global { bootstrap: cli.bootstrap, output: cli.output, security };
    let result = runtime.block_on(run(cli.command, global));
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&describe_error(&e)));
            // A plaintext client at a TLS port sees only a closed
            // connection or a garbled frame: say what is going on.
            let first = bootstrap.split(',').next().unwrap_or_default().trim().to_string();
            if !tls && runtime.block_on(strata_tls::speaks_tls(&first, std::time::Duration::from_secs(2))) {
                eprintln!("hint: {first} serves TLS: connect with --tls (and --ca-file PEM)");
            }
            ExitCode::FAILURE
        }
    };
    // Background tasks (a stdin reader, a producer still retrying after a
    // failure) must not hold the exit up.
    runtime.shutdown_background();
    code
}

async fn run(command: Command, global: Global) -> anyhow::Result<()> {
    match command {
        Command::Topic(cmd) => topic::run(cmd, &global).await,
        Command::Produce(args) => produce::run(args, &global).await,
        Command::Consume(args) => consume::run(args, &global).await,
        Command::Cluster(cmd) => cluster::run(cmd, &global).await,
        Command::Group(cmd) => group::run(cmd, &global).await,
        Command::User(cmd) => user::run(cmd, &global).await,
        Command::Acl(cmd) => acl::run(cmd, &global).await,
        Command::Partition(cmd) => moves::run_partition(cmd, &global).await,
        Command::Broker(cmd) => moves::run_broker(cmd, &global).await,
        Command::Bench(cmd) => bench::run(cmd, &global).await,
    }
}

/// Help and version go to stdout as clap renders them; a usage error is cut
/// to its first line (`error: ...`), exit code 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("error: {first} (see --help)");
            ExitCode::from(2)
        }
    }
}

/// The error as one line: its context chain, with a connection failure
/// shortened to the address and the root cause ("Connection refused").
fn describe_error(e: &anyhow::Error) -> String {
    for cause in e.chain() {
        if let Some(strata_client::ClientError::Connect { address, cause: source }) = cause.downcast_ref() {
            let mut root: &(dyn std::error::Error + 'static) = source.as_ref();
            while let Some(next) = root.source() {
                root = next;
            }
            let connect = format!("cannot connect to {address}: {root}");
            // Keep any context added above the connect error.
            let full = format!("{e:#}");
            let inner = cause.to_string();
            return match full.strip_suffix(&inner) {
                Some(prefix) => format!("{prefix}{connect}"),
                None => connect,
            };
        }
    }
    format!("{e:#}")
}

/// Whether the failure is stdout going away (a reader such as `head` quit).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// Collapses whitespace runs containing newlines so a message stays on one
/// line.
pub(crate) fn one_line(s: &str) -> String {
    if s.contains(['\n', '\r']) {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from(["strata", "topic", "list", "--output", "json", "--bootstrap", "h:1"]).unwrap();
        assert_eq!(cli.output, Output::Json);
        assert_eq!(cli.bootstrap, "h:1");
    }

    #[test]
    fn messages_are_kept_on_one_line() {
        assert_eq!(one_line("a\n  b"), "a b");
        assert_eq!(one_line("a  b"), "a  b");
    }
}
