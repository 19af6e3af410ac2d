//! `minutely keys`, `minutely backup` and `minutely check`, working on a data directory.

use crate::cli::{BackupArgs, CheckArgs, KeysAction, KeysArgs};
use anyhow::{Context, Result};
use minutely_server::auth::create_key;
use minutely_store::embedded::{now_secs, EmbeddedConfig, EmbeddedStore};
use minutely_store::{Scope, Store};
use std::path::Path;

fn open(data_dir: &Path) -> Result<EmbeddedStore> {
    EmbeddedStore::open(EmbeddedConfig::new(data_dir)).with_context(|| {
        format!(
            "opening {} (stop the server using it first)",
            data_dir.display()
        )
    })
}

pub fn run(args: KeysArgs) -> Result<()> {
    let store = open(&args.data_dir)?;
    match args.action {
        KeysAction::Create { scope, app, name } => {
            let scope: Scope = scope.parse().map_err(anyhow::Error::msg)?;
            if app == minutely_server::auth::ALL_APPS && scope != Scope::Admin {
                anyhow::bail!("only admin keys may be for every app (--app '*'); push and read keys belong to one app");
            }
            if app != minutely_server::auth::ALL_APPS {
                minutely_core::validate::validate_name(&app)
                    .map_err(|_| anyhow::anyhow!("app name {app:?} is invalid: use 1-200 characters of A-Z a-z 0-9 _ . : - starting with a letter or _"))?;
            }
            if app != minutely_server::auth::ALL_APPS
                && !store.apps()?.iter().any(|a| a.name == app)
            {
                store.create_app(minutely_store::AppRecord {
                    name: app.clone(),
                    created: now_secs() as i64,
                })?;
            }
            let (secret, record) = create_key(&store, &app, scope, &name, None, now_secs() as i64)?;
            println!("{secret}");
            eprintln!(
                "created {:?} key {} for app {:?}; it is shown only now",
                record.scope, record.id, record.app
            );
        }
        KeysAction::List => {
            println!(
                "{:<10} {:<8} {:<20} {:<12} name",
                "id", "scope", "app", "created"
            );
            for k in store.keys()? {
                let created = minutely_core::timeparse::format_rfc3339(k.created);
                println!(
                    "{:<10} {:<8} {:<20} {:<12} {}",
                    k.id,
                    format!("{:?}", k.scope).to_lowercase(),
                    k.app,
                    &created[..10],
                    k.name
                );
            }
        }
        KeysAction::Revoke { id } => {
            if !store.revoke_key(&id)? {
                anyhow::bail!("no key with id {id:?} (see minutely keys list)");
            }
            eprintln!("revoked key {id}");
        }
    }
    store.close()?;
    Ok(())
}

pub fn backup(args: BackupArgs) -> Result<()> {
    if let Some(key) = &args.key {
        let dest = std::path::absolute(&args.dest)?;
        crate::client::backup_online(&args.endpoint.endpoint, key, &dest)?;
        eprintln!("backup written by the server to {}", dest.display());
        return Ok(());
    }
    let store = open(&args.data_dir)?;
    store
        .backup(&args.dest)
        .with_context(|| format!("writing backup to {}", args.dest.display()))?;
    store.close()?;
    eprintln!("backup written to {}", args.dest.display());
    Ok(())
}

pub fn check(args: CheckArgs) -> Result<()> {
    if !args.data_dir.join("minutely.redb").is_file() {
        anyhow::bail!(
            "{} holds no minutely data (no minutely.redb)",
            args.data_dir.display()
        );
    }
    let store = open(&args.data_dir)?;
    let report = store.verify()?;
    store.close()?;
    for damage in &report.damaged {
        eprintln!("{damage}");
    }
    if !report.is_clean() {
        anyhow::bail!(
            "{} of {} stored blocks are damaged; restore the data directory from a backup",
            report.damaged.len(),
            report.blocks
        );
    }
    eprintln!(
        "{} stored blocks ({} bytes) checked: all good",
        report.blocks, report.bytes
    );
    Ok(())
}
