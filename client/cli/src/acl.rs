//! `strata acl add|list|remove`: ACLs in Kafka's model, in the cluster
//! metadata, enforced alike on the gRPC and Kafka listeners once a broker
//! runs with `--authorizer on`.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use strata_client::{Acl, AclFilter};

use super::output::{print_json, print_text, Output, Table};
use super::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum AclCommand {
    /// Allow (or with --deny, deny) a principal operations on a resource.
    Add(AddArgs),
    /// List ACLs (all, or those matching the options).
    List(FilterArgs),
    /// Remove the ACLs matching the options (at least one is needed).
    Remove(FilterArgs),
}

/// Which resource an ACL names: exactly one.
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub(crate) struct ResourceArgs {
    /// A topic (or a topic-name prefix with --pattern prefixed; `*`: all).
    #[arg(long)]
    topic: Option<String>,
    /// A consumer group (or a prefix; `*`: all).
    #[arg(long)]
    group: Option<String>,
    /// The cluster (admin operations).
    #[arg(long)]
    cluster: bool,
    /// A transactional id (or a prefix; `*`: all).
    #[arg(long)]
    transactional_id: Option<String>,
}

impl ResourceArgs {
    fn resource(&self) -> Option<(&'static str, String)> {
        if let Some(t) = &self.topic {
            return Some(("topic", t.clone()));
        }
        if let Some(g) = &self.group {
            return Some(("group", g.clone()));
        }
        if let Some(t) = &self.transactional_id {
            return Some(("transactional-id", t.clone()));
        }
        self.cluster.then(|| ("cluster", "kafka-cluster".to_string()))
    }
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// Who: `User:NAME`, or `User:*` for everyone.
    #[arg(long)]
    principal: String,
    /// Operation(s): read, write, create, delete, alter, describe,
    /// cluster-action, describe-configs, alter-configs, idempotent-write, all.
    #[arg(long = "operation", required = true, value_delimiter = ',')]
    operations: Vec<String>,
    #[command(flatten)]
    resource: ResourceArgs,
    /// How the resource name matches: literal (exactly) or prefixed.
    #[arg(long, default_value = "literal", value_parser = ["literal", "prefixed"])]
    pattern: String,
    /// The client address the ACL applies to (`*`: any).
    #[arg(long, default_value = "*")]
    host: String,
    /// Deny instead of allow (a deny always wins).
    #[arg(long)]
    deny: bool,
}

#[derive(Debug, Args)]
pub(crate) struct FilterArgs {
    /// Only ACLs of this principal.
    #[arg(long)]
    principal: Option<String>,
    /// Only ACLs of this operation.
    #[arg(long)]
    operation: Option<String>,
    #[command(flatten)]
    resource: ResourceArgs,
    /// any (the name exactly, any pattern), match (every ACL that applies
    /// to the resource), literal or prefixed.
    #[arg(long, default_value = "any", value_parser = ["any", "match", "literal", "prefixed"])]
    pattern: String,
    /// Only ACLs for this host.
    #[arg(long)]
    host: Option<String>,
    /// Only allow ACLs.
    #[arg(long, conflicts_with = "deny")]
    allow: bool,
    /// Only deny ACLs.
    #[arg(long)]
    deny: bool,
}

impl FilterArgs {
    fn filter(&self) -> AclFilter {
        let (resource_type, resource_name) =
            self.resource.resource().map_or((String::new(), String::new()), |(t, n)| (t.to_string(), n));
        AclFilter {
            resource_type,
            resource_name,
            pattern_type: self.pattern.clone(),
            principal: self.principal.clone().unwrap_or_default(),
            host: self.host.clone().unwrap_or_default(),
            operation: self.operation.clone().unwrap_or_default(),
            permission: match (self.allow, self.deny) {
                (true, _) => "allow".into(),
                (_, true) => "deny".into(),
                _ => String::new(),
            },
        }
    }

    fn is_empty(&self) -> bool {
        self.principal.is_none()
            && self.operation.is_none()
            && self.resource.resource().is_none()
            && self.host.is_none()
            && !self.allow
            && !self.deny
    }
}

pub(crate) async fn run(cmd: AclCommand, global: &Global) -> Result<()> {
    let admin = global.admin().await?;
    match cmd {
        AclCommand::Add(args) => {
            let Some((resource_type, resource_name)) = args.resource.resource() else {
                bail!("name the resource: --topic, --group, --cluster or --transactional-id");
            };
            let acls: Vec<Acl> = args
                .operations
                .iter()
                .map(|op| Acl {
                    resource_type: resource_type.to_string(),
                    resource_name: resource_name.clone(),
                    pattern_type: args.pattern.clone(),
                    principal: args.principal.clone(),
                    host: args.host.clone(),
                    operation: op.clone(),
                    permission: if args.deny { "deny" } else { "allow" }.to_string(),
                })
                .collect();
            let created = admin.create_acls(&acls).await?;
            report(global.output, "added", &acls, Some(created))
        }
        AclCommand::List(args) => {
            let acls = admin.list_acls(&args.filter()).await?;
            report(global.output, "acls", &acls, None)
        }
        AclCommand::Remove(args) => {
            if args.is_empty() {
                bail!("say which ACLs to remove (--principal, --topic, --group, --cluster, --operation, …)");
            }
            let removed = admin.delete_acls(&[args.filter()]).await?;
            report(global.output, "removed", &removed, None)
        }
    }
}

fn report(output: Output, what: &str, acls: &[Acl], created: Option<u32>) -> Result<()> {
    match output {
        Output::Json => {
            let list: Vec<_> = acls
                .iter()
                .map(|a| {
                    json!({
                        "principal": a.principal, "permission": a.permission, "operation": a.operation,
                        "resource_type": a.resource_type, "resource_name": a.resource_name,
                        "pattern_type": a.pattern_type, "host": a.host,
                    })
                })
                .collect();
            let mut value = json!({ what: list });
            if let Some(n) = created {
                value["new"] = json!(n);
            }
            print_json(&value)?;
        }
        Output::Text => {
            let mut t = Table::new(&["PRINCIPAL", "PERMISSION", "OPERATION", "RESOURCE", "NAME", "PATTERN", "HOST"]);
            for a in acls {
                t.row(vec![
                    a.principal.clone(),
                    a.permission.clone(),
                    a.operation.clone(),
                    a.resource_type.clone(),
                    a.resource_name.clone(),
                    a.pattern_type.clone(),
                    a.host.clone(),
                ]);
            }
            let mut text = t.render();
            if what != "acls" {
                text = format!("{what} {} ACL(s)\n{text}", acls.len());
            }
            print_text(&text)?;
        }
    }
    Ok(())
}
