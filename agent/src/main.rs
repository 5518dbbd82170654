//! `ipvs-agent`: serves this node's IPVS table and virtual-IP links over gRPC.
//!
//! Exit codes: 0 after a clean stop (SIGTERM/SIGINT), 1 when the agent cannot start or its
//! server fails, 2 for a command line it refuses.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser, error::ErrorKind};
use ipvs_agent::attach::{Attachments, PolicyStore, SavedAttachments};
use ipvs_agent::config::{Cli, LogFormat};
use ipvs_agent::declared::Declared;
use ipvs_agent::ipvs::{IpvsError, IpvsHandle};
use ipvs_agent::kernel::Kernel;
use ipvs_agent::link::LinkHandle;
use ipvs_agent::policy::{ArtifactStore, PolicyEngine};
use ipvs_agent::server::{self, Listeners, Node, SHUTDOWN_GRACE};
use ipvs_agent::shutdown::Shutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Refuse a bad command line before touching the kernel.
    if let Err(e) = cli.check() {
        Cli::command().error(ErrorKind::ArgumentConflict, e).exit();
    }
    let filter = match cli.log_filter() {
        Ok(f) => f,
        Err(e) => Cli::command().error(ErrorKind::InvalidValue, e).exit(),
    };
    init_logging(cli.log_format, filter);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ipvs-agent: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let format = cli.log_format;
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once, in the form the operator chose: a JSON line for a log pipeline, or text.
            match format {
                LogFormat::Json => tracing::error!("{e:#}"),
                LogFormat::Text => eprintln!("ipvs-agent: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, filter: EnvFilter) {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // Signals first, so a stop that comes during start-up is not lost.
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let stop = async move {
        let name = tokio::select! {
            _ = sigterm.recv() => "SIGTERM",
            _ = sigint.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "stop requested");
    };

    let ipvs = Arc::new(open_ipvs().await?);
    // The one write path, with the drains a previous process left in progress.
    let drains = cli.state_dir.join("drains.pb");
    let kernel =
        Arc::new(Kernel::open(ipvs, drains.clone()).with_context(|| {
            format!("cannot read the drains in progress ({})", drains.display())
        })?);
    let links = Arc::new(LinkHandle::new().context("cannot open the rtnetlink socket")?);
    let (trigger, shutdown) = Shutdown::new();
    let policies = open_policies(&cli, kernel.clone()).await?;
    let declared = Arc::new(
        Declared::open(
            kernel.clone(),
            links.clone(),
            Some(policies.clone()),
            Some(cli.state_dir.join("revisions")),
            cli.drift.into(),
        )
        .context("cannot open the declared state")?,
    );
    // Health checks first: a server declared to start down is not brought up by the reconcile.
    declared.start_checks().await;
    // After a restart the node is made to match the last revision; what matches is untouched.
    match declared.check(true).await {
        Ok(d) if d.is_empty() => {}
        Ok(d) => tracing::info!(
            changes = d.len(),
            "reconciled the node to its declared state"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot reconcile the node to its declared state"),
    }
    let resumed = declared.resume_drains().await;
    if resumed > 0 {
        tracing::info!(drains = resumed, "drains in progress resumed");
    }
    tokio::spawn(watch_drift(
        declared.clone(),
        Duration::from_secs(cli.drift_interval.max(1)),
    ));
    let routes = server::routes(
        Node {
            kernel,
            links,
            policies: Some(policies),
            state: Some(declared),
        },
        shutdown.clone(),
    )?;

    let (unix, socket_file) = server::bind_unix(&cli.unix)?;
    let tcp = match cli.listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?,
        ),
        None => None,
    };
    tracing::info!(
        unix = %socket_file.path().display(),
        tcp = ?cli.listen,
        insecure = cli.insecure,
        "serving ipvs.agent.v1"
    );
    let listeners = Listeners {
        unix: Some(unix),
        tcp,
    };
    let served = server::serve(routes, listeners, trigger, shutdown, stop, SHUTDOWN_GRACE).await;
    drop(socket_file);
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Checks the node against its declared state every `interval`.
async fn watch_drift(declared: Arc<Declared<IpvsHandle, LinkHandle>>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = declared.check(false).await {
            tracing::warn!(error = %e, "drift check failed");
        }
    }
}

/// The policy engine, with uploaded policies reloaded from the state directory.
async fn open_policies(
    cli: &Cli,
    kernel: Arc<Kernel<IpvsHandle>>,
) -> anyhow::Result<Arc<Attachments<IpvsHandle>>> {
    let artifacts = ArtifactStore::open(cli.state_dir.join("artifacts"))
        .context("cannot open the policy artifact store")?;
    let engine = PolicyEngine::new(cli.policy_limits(), Some(artifacts))
        .context("cannot start the policy engine")?;
    let store = PolicyStore::open(Some(cli.state_dir.join("policies")), &engine)
        .await
        .context("cannot open the policy store")?;
    let attachments = Attachments::new(engine, store, kernel)
        .with_saved(SavedAttachments::new(cli.state_dir.join("attachments.pb")));
    let restored = attachments.restore().await?;
    if restored > 0 {
        tracing::info!(attachments = restored, "policy attachments restored");
    }
    Ok(Arc::new(attachments))
}

/// Opens the IPVS family, loading the `ip_vs` module once if the kernel lacks it.
async fn open_ipvs() -> anyhow::Result<IpvsHandle> {
    match IpvsHandle::new().await {
        Err(IpvsError::Unavailable) => {}
        other => return other.context("cannot open the IPVS netlink family"),
    }
    tracing::info!("IPVS is not loaded; running `modprobe ip_vs`");
    match tokio::process::Command::new("modprobe")
        .arg("ip_vs")
        .status()
        .await
    {
        Ok(status) if status.success() => {}
        Ok(status) => tracing::warn!(%status, "`modprobe ip_vs` failed"),
        Err(e) => tracing::warn!(error = %e, "cannot run modprobe"),
    }
    match IpvsHandle::new().await {
        Err(IpvsError::Unavailable) => bail!(
            "IPVS is not available in this kernel, even after `modprobe ip_vs`: load the ip_vs \
             module, or run a kernel built with CONFIG_IP_VS"
        ),
        other => other.context("cannot open the IPVS netlink family"),
    }
}
