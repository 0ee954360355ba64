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
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, request: &str) -> std::io::Result<Vec<u8>> {
        s.write_all(request.as_bytes()).await?;
        s.flush().await?;
        let mut response = Vec::new();
        // A TLS server may close without close_notify: keep what arrived.
        if let Err(e) = s.read_to_end(&mut response).await {
            if response.is_empty() {
                return Err(e);
            }
        }
        Ok(response)
    }
    let wait = std::time::Duration::from_secs(args.timeout_secs + 5);
    let request = format!(
        "POST /drain?timeout_secs={} HTTP/1.0\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
        args.timeout_secs, args.http
    );
    let files = args.tls.files(&strata_server::config::FileConfig::default());
    let tls = if files == strata_tls::TlsFiles::default() {
        None
    } else {
        let client = strata_tls::ClientTls::new(&files, &[b"http/1.1"]).context("TLS for the drain request")?;
        // The node is this host's own: verify it as the name its certificate
        // carries (strata-node-N), whatever address it is reached at.
        let name = match &files.cert {
            Some(cert) => {
                let pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
                let der = rustls_pki_types::pem::PemObject::from_pem_slice(&pem)
                    .with_context(|| format!("{} holds no certificate", cert.display()))?;
                strata_tls::identity::names(&der).into_iter().next()
            }
            None => None,
        };
        Some((client, name.unwrap_or_else(|| args.http.ip().to_string())))
    };
    let response = tokio::time::timeout(wait, async {
        let tcp = tokio::net::TcpStream::connect(args.http).await?;
        match &tls {
            Some((client, name)) => exchange(client.connect(name, tcp).await?, &request).await,
            None => exchange(tcp, &request).await,
        }
    })
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
