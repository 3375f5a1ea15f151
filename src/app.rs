//! Starting the server: database, migrations, connections, then HTTP until shutdown.

use std::future::Future;

use tokio::{net::TcpListener, sync::watch};

use crate::{config::Config, db, graphql, http, state::AppState};

/// Creates the database if missing, applies migrations and connects to PostgreSQL and
/// Redis. Needs the multi-thread runtime (migrations block in place).
pub async fn prepare(config: Config) -> anyhow::Result<AppState> {
    db::ensure_database(config.database_url()).await?;
    let applied = db::run_migrations(config.database_url()).await?;
    if applied > 0 {
        tracing::info!(migrations.applied = applied, "database migrated");
    }
    AppState::connect(config).await
}

/// Serves HTTP and WebSocket on `listener` until `shutdown` resolves, then stops accepting,
/// closes WebSockets and lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    crate::booking::spawn_sweeper(
        state.services.clone(),
        state.config.hold_sweep_interval,
        stop_rx.clone(),
    );
    crate::booking::stop_leading_on(state.services.clone(), stop_rx.clone());
    crate::queue::gate::spawn(state.services.clone(), stop_rx.clone());
    crate::orders::worker::spawn(state.services.clone(), stop_rx.clone());
    if let Some(kv) = &state.redis {
        tokio::spawn(
            kv.clone()
                .watch_durability(state.config.redis_check_interval, stop_rx.clone()),
        );
    }
    crate::payments::reconcile::spawn(state.services.clone(), stop_rx.clone());
    crate::auth::lock::spawn_sync(state.services.clone(), stop_rx.clone());
    if let Err(e) = crate::events::spawn_relay(&state, stop_rx.clone()).await {
        // Events wait in the outbox until an instance relays them: nothing is lost.
        tracing::error!(error = %e, "the outbox relay could not start on this instance");
    }
    let schema = graphql::build(state.clone());
    let limits = http::serve::ConnectionLimits {
        header_read_timeout: state.config.edge.header_timeout,
        max_connections: state.config.edge.max_connections,
    };
    let router = http::router(state, schema, stop_rx);
    http::serve::serve(listener, router, limits, async move {
        shutdown.await;
        tracing::info!("shutting down: draining connections");
        let _ = stop_tx.send(true);
    })
    .await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
