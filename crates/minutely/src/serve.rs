//! `minutely serve`: open the store, make the first keys, start the API
//! (and the demo), and on SIGINT/SIGTERM stop taking requests, then flush.

use crate::cli::ServeArgs;
use crate::config::{resolve, Config};
use anyhow::{Context, Result};
use minutely_server::ingest::statsd::listener::{self, StatsdConfig, StatsdHandle};
use minutely_server::{bootstrap, demo, system_clock, AppState};
use minutely_store::embedded::EmbeddedStore;
use minutely_store::Store;
use minutely_store_clickhouse::ClickHouseStore;
use std::sync::Arc;
use std::time::Duration;

/// In-flight requests get this long to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub fn run(args: ServeArgs) -> Result<()> {
    let cfg = resolve(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(cfg))
}

async fn serve(cfg: Config) -> Result<()> {
    let shared = cfg.clickhouse.is_some();
    let location = match &cfg.clickhouse {
        Some(ch) => ch.target.to_string(),
        None => cfg.store.data_dir.display().to_string(),
    };
    let store: Arc<dyn Store> = match cfg.clickhouse {
        Some(ch) => Arc::new(
            tokio::task::spawn_blocking(move || ClickHouseStore::open(ch))
                .await?
                .with_context(|| format!("opening the ClickHouse store {location}"))?,
        ),
        None => {
            minutely_store::embedded::set_block_cache_capacity(cfg.block_cache_bytes);
            tracing::info!(
                "block cache: {} MiB; early checkpoint above {} open series-minutes",
                cfg.block_cache_bytes >> 20,
                cfg.store.max_open_minutes
            );
            let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(cfg.store))
                .await?
                .with_context(|| format!("opening data directory {location}"))?;
            store.verify_in_background();
            Arc::new(store)
        }
    };
    let clock = system_clock();
    let now = clock() as i64;
    let first = bootstrap::first_start(
        store.as_ref(),
        std::env::var("MINUTELY_PUSH_KEY")
            .ok()
            .filter(|k| !k.is_empty()),
        std::env::var("MINUTELY_ADMIN_KEY")
            .ok()
            .filter(|k| !k.is_empty()),
        now,
    )?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    if let Some(keys) = first {
        // Printed once: only hashes are kept.
        println!("First start: created app \"default\" and two keys. They are shown only now; keep them.");
        println!("  push key:  {}", keys.push);
        println!("  admin key: {}", keys.admin);
        if minutely_server::web::built() {
            println!("  web UI:    http://{addr}/?key={}", keys.admin);
        }
    }
    let state = AppState::new(store.clone(), cfg.server, clock.clone())?;
    let mut alert_tasks = minutely_server::alerts::start(&state);
    if shared {
        alert_tasks.push(tokio::spawn(reload_keys(state.clone())));
    }
    let statsd = match cfg.statsd {
        Some(sc) => start_statsd(sc, cfg.statsd_default_addr, &state, now).await?,
        None => None,
    };
    let demo_task = if cfg.demo {
        let (s, c) = (store.clone(), clock.clone());
        tokio::task::spawn_blocking(move || demo::backfill(s.as_ref(), c())).await??;
        tracing::info!(
            "demo app \"{}\" (env \"{}\") is filled and live",
            demo::DEMO_APP,
            demo::DEMO_ENV
        );
        Some(tokio::spawn(demo::run_live(store.clone(), clock.clone())))
    } else {
        None
    };
    let stop_signal = shutdown_signal();
    // The harness and scripts wait for this line to know the port.
    println!("minutely listening on http://{addr}");
    if let Some(udp) = statsd.as_ref().and_then(|h| h.udp_addr) {
        println!("minutely statsd listening on udp://{udp}");
    }
    tracing::info!(store = %location, "minutely {} serving on {addr}", env!("CARGO_PKG_VERSION"));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server_rx = stop_rx.clone();
    let server = tokio::spawn(minutely_server::serve(listener, state, async move {
        let _ = server_rx.wait_for(|s| *s).await;
    }));
    stop_signal.await;
    tracing::info!("shutting down: finishing requests, then flushing open minutes");
    let _ = stop_tx.send(true);
    if let Some(t) = demo_task {
        t.abort();
    }
    for t in alert_tasks {
        t.abort();
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
        tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; closing anyway");
    }
    drop(stop_rx);
    if let Some(h) = statsd {
        tokio::task::spawn_blocking(move || h.shutdown()).await?;
    }
    tokio::task::spawn_blocking(move || store.close()).await??;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Over a shared store another server may create or revoke keys: reload
/// them every few seconds (a revoked key stops working within that time).
const KEY_RELOAD: Duration = Duration::from_secs(5);

async fn reload_keys(state: minutely_server::Shared) {
    loop {
        tokio::time::sleep(KEY_RELOAD).await;
        let s = state.clone();
        let result = tokio::task::spawn_blocking(move || s.keys.reload(s.store.as_ref())).await;
        if let Ok(Err(e)) = result {
            tracing::warn!("reloading keys from the store: {e}");
        }
    }
}

/// Creates the StatsD app if needed and binds the sockets. A busy default
/// port only warns (another server or a StatsD daemon has it); an address
/// asked for must bind.
async fn start_statsd(
    sc: StatsdConfig,
    default_addr: bool,
    state: &minutely_server::Shared,
    now: i64,
) -> Result<Option<StatsdHandle>> {
    let (store, app) = (state.store.clone(), sc.routing.app.clone());
    tokio::task::spawn_blocking(move || -> Result<()> {
        if !store.apps()?.iter().any(|a| a.name == app) {
            store.create_app(minutely_store::AppRecord {
                name: app,
                created: now,
            })?;
        }
        Ok(())
    })
    .await??;
    let addr = sc.udp;
    match listener::start(sc, state.clone()) {
        Ok(h) => Ok(Some(h)),
        Err(e) if default_addr && e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(
                "StatsD: {} is in use, so StatsD is off; pass --statsd ADDR (or off) to choose",
                addr.map(|a| a.to_string()).unwrap_or_default()
            );
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("starting the StatsD listener on {addr:?}")),
    }
}

/// Registers for SIGTERM and SIGINT at once (before the port is announced,
/// so an early SIGTERM from a supervisor or test is a clean stop rather
/// than the default kill) and completes on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {}
                _ = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
