//! `strata user create|delete|list`: SCRAM users in the cluster metadata.
//! The password is read from stdin (not an argument: it would sit in the
//! shell history and the process list) and salted here; only the salted
//! form reaches the cluster.

use std::io::BufRead;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::json;

use super::output::{print_json, print_text, Output, Table};
use super::Global;

const MECHANISMS: [&str; 2] = ["SCRAM-SHA-256", "SCRAM-SHA-512"];

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user, or set a new password: reads the password from the
    /// first line of stdin.
    Create {
        /// The user name.
        name: String,
        /// Mechanism(s) to create credentials for (default: both).
        #[arg(long, value_parser = MECHANISMS)]
        mechanism: Vec<String>,
        /// PBKDF2 iterations (4096..=16384).
        #[arg(long, default_value_t = strata_auth::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
    /// Delete a user's credentials (default: every mechanism it has).
    Delete {
        /// The user name.
        name: String,
        /// Only this mechanism's credential.
        #[arg(long, value_parser = MECHANISMS)]
        mechanism: Vec<String>,
    },
    /// List users and their mechanisms (never a secret).
    List,
}

pub(crate) async fn run(cmd: UserCommand, global: &Global) -> Result<()> {
    let admin = global.admin().await?;
    match cmd {
        UserCommand::Create { name, mechanism, iterations } => {
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password).context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                bail!("no password on stdin (the first line is the password)");
            }
            let mechanisms = if mechanism.is_empty() { MECHANISMS.map(String::from).to_vec() } else { mechanism };
            let names: Vec<&str> = mechanisms.iter().map(String::as_str).collect();
            admin.upsert_user_mechanisms(&name, password, &names, iterations).await?;
            report(global.output, "created", &name, &mechanisms)
        }
        UserCommand::Delete { name, mechanism } => {
            let mechanisms = if mechanism.is_empty() {
                let users = admin.list_users().await?;
                let Some(u) = users.into_iter().find(|u| u.user == name) else { bail!("no user '{name}'") };
                u.credentials.into_iter().map(|(m, _)| m).collect()
            } else {
                mechanism
            };
            for m in &mechanisms {
                admin.delete_user(&name, m).await?;
            }
            report(global.output, "deleted", &name, &mechanisms)
        }
        UserCommand::List => {
            let users = admin.list_users().await?;
            match global.output {
                Output::Json => print_json(&json!(users
                    .iter()
                    .map(|u| json!({
                        "user": u.user,
                        "credentials": u.credentials.iter().map(|(m, i)| json!({"mechanism": m, "iterations": i})).collect::<Vec<_>>(),
                    }))
                    .collect::<Vec<_>>()))?,
                Output::Text => {
                    let mut t = Table::new(&["USER", "MECHANISMS"]);
                    for u in &users {
                        let ms: Vec<String> = u.credentials.iter().map(|(m, i)| format!("{m} ({i} iterations)")).collect();
                        t.row(vec![u.user.clone(), ms.join(", ")]);
                    }
                    print_text(&t.render())?
                }
            }
            Ok(())
        }
    }
}

fn report(output: Output, what: &str, name: &str, mechanisms: &[String]) -> Result<()> {
    match output {
        Output::Json => print_json(&json!({"user": name, what: mechanisms}))?,
        Output::Text => print_text(&format!("{what} user '{name}' ({})\n", mechanisms.join(", ")))?,
    }
    Ok(())
}
