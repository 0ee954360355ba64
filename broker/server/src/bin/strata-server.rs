//! `strata-server`: `dev` runs a one-node cluster on a laptop; `run` a node
//! configured by flags, `STRATA_*` env and a TOML file.

use anyhow::Context;
use clap::Parser;
use strata_server::config::DrainArgs;
use strata_server::{Cli, Command, ServerConfig};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    match serve() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line naming the cause chain, not a multi-line report.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn serve() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,raft=warn")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            let text = e.to_string();
            anyhow::bail!("{}", text.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: "))
        }
    };
    if !matches!(cli.command, Command::Drain(_)) {
        match strata_server::limits::raise_open_file_limit() {
            Ok((before, after)) if after > before => tracing::info!(before, after, "raised the open-file limit"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-file limit"),
        }
    }
    let config = match &cli.command {
        Command::Dev(args) => ServerConfig::dev(args),
        Command::Run(args) => ServerConfig::run(args),
        Command::Drain(args) => return drain(args).await,
    }
    .context("configuration")?;
    strata_server::run(config, shutdown_signal()).await.context("strata-server")?;
    Ok(())
}

/// `strata-server drain`: `POST /drain` to the local node's HTTP port
/// (a bare HTTP/1.0 request: the image carries no curl), printing its answer.
async fn drain(args: &DrainArgs) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let wait = std::time::Duration::from_secs(args.timeout_secs + 5);
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(args.http).await?;
        let request = format!(
            "POST /drain?timeout_secs={} HTTP/1.0\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
            args.timeout_secs, args.http
        );
        s.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        s.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(wait, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("{} did not answer within {} s", args.http, wait.as_secs()))?
        .with_context(|| format!("draining the node at {}", args.http))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "200" {
        anyhow::bail!("drain failed ({status}): {}", body.trim());
    }
    println!("{}", body.trim());
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %strata_record::ErrorChain(&e), "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received"),
            _ = term.recv() => tracing::info!("SIGTERM received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
