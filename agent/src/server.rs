//! Wiring: the gRPC routes over the node core, the listeners they are served on, and a clean stop.

use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipvs_proto::v1::{
    config_service_server::ConfigServiceServer, ipvs_service_server::IpvsServiceServer,
    link_service_server::LinkServiceServer, policy_service_server::PolicyServiceServer,
    state_service_server::StateServiceServer, stats_service_server::StatsServiceServer,
    table_service_server::TableServiceServer,
};
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::api::StateApi;
use crate::api::{ConfigApi, IpvsApi, LinkApi, PolicyApi, StatsApi, TableApi};
use crate::attach::Attachments;
use crate::declared::Declared;
use crate::health;
use crate::ipvs::IpvsOps;
use crate::kernel::Kernel;
use crate::link::LinkOps;
use crate::shutdown::{Shutdown, ShutdownTrigger};

/// How long in-flight calls may run on after a stop signal before the server quits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create socket directory {path}: {source}")]
    SocketDir { path: PathBuf, source: io::Error },
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("another server is listening on {0}")]
    SocketInUse(PathBuf),
    #[error("cannot bind {what}: {source}")]
    Bind { what: String, source: io::Error },
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// What the agent serves: the node core and the links, and when given, the policies and the
/// declared state (the agent runs all four; tests may leave the last two out).
#[derive(Debug)]
pub struct Node<I, L> {
    pub kernel: Arc<Kernel<I>>,
    pub links: Arc<L>,
    pub policies: Option<Arc<Attachments<I>>>,
    pub state: Option<Arc<Declared<I, L>>>,
}

/// Every gRPC service over `node`, with server reflection. `shutdown` ends the watch streams
/// so a stop does not wait for their clients.
pub fn routes<I: IpvsOps, L: LinkOps>(
    node: Node<I, L>,
    shutdown: Shutdown,
) -> Result<Routes, ServerError> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ipvs_proto::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let Node {
        kernel,
        links,
        policies,
        state,
    } = node;
    let mut named = vec![
        IpvsServiceServer::<IpvsApi<I>>::NAME,
        ConfigServiceServer::<ConfigApi<I>>::NAME,
        TableServiceServer::<TableApi<I>>::NAME,
        StatsServiceServer::<StatsApi<I>>::NAME,
        LinkServiceServer::<LinkApi<I, L>>::NAME,
    ];
    if state.is_some() {
        named.push(StateServiceServer::<StateApi<I, L>>::NAME);
    }
    if policies.is_some() {
        named.push(PolicyServiceServer::<PolicyApi<I>>::NAME);
    }
    let mut routes = Routes::builder();
    routes
        .add_service(health::serve(kernel.clone(), named, shutdown.clone()))
        .add_service(IpvsApi::new(kernel.clone()).into_server())
        .add_service(ConfigApi::new(kernel.clone()).into_server())
        .add_service(TableApi::new(kernel.clone()).into_server())
        .add_service(
            StatsApi::new(kernel.clone())
                .with_shutdown(shutdown.clone())
                .into_server(),
        )
        .add_service(LinkApi::new(kernel, links).into_server())
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?);
    if let Some(state) = state {
        routes.add_service(
            StateApi::new(state)
                .with_shutdown(shutdown.clone())
                .into_server(),
        );
    }
    if let Some(policies) = policies {
        routes.add_service(
            PolicyApi::new(policies)
                .with_shutdown(shutdown)
                .into_server(),
        );
    }
    Ok(routes.routes())
}

/// A unix socket file this process created. Dropped after its listener, it removes the file,
/// unless another server has replaced it meanwhile (the path then still accepts connections).
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let stale = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.file_type().is_socket())
            && std::os::unix::net::UnixStream::connect(&self.path).is_err();
        if stale && let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove socket");
        }
    }
}

/// Listens on a unix socket at `path`, readable and writable by the owner only (0600).
///
/// Creates the parent directory (0700) if missing and replaces a stale socket left by a
/// process that died; refuses to touch a file that is not a socket or a socket someone still
/// serves.
pub fn bind_unix(path: &Path) -> Result<(UnixListener, SocketFile), ServerError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| ServerError::SocketDir {
                path: dir.to_owned(),
                source,
            })?;
    }
    let bind_error = |source| ServerError::Bind {
        what: format!("unix socket {}", path.display()),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            return Err(ServerError::NotASocket(path.to_owned()));
        }
        Ok(_) if std::os::unix::net::UnixStream::connect(path).is_ok() => {
            return Err(ServerError::SocketInUse(path.to_owned()));
        }
        Ok(_) => {
            tracing::info!(path = %path.display(), "removing stale socket");
            std::fs::remove_file(path).map_err(bind_error)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_error(e)),
    }
    let listener = UnixListener::bind(path).map_err(bind_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_error)?;
    let file = SocketFile {
        path: path.to_owned(),
    };
    Ok((listener, file))
}

/// Where the server listens.
#[derive(Debug, Default)]
pub struct Listeners {
    pub unix: Option<UnixListener>,
    pub tcp: Option<TcpListener>,
}

/// Serves `routes` on every listener until `stop` resolves, then lets in-flight calls finish
/// for up to `grace`. Fires `trigger` on stop so long-lived streams end too.
pub async fn serve(
    routes: Routes,
    listeners: Listeners,
    trigger: ShutdownTrigger,
    shutdown: Shutdown,
    stop: impl Future<Output = ()>,
    grace: Duration,
) -> Result<(), ServerError> {
    let unix = async {
        match listeners.unix {
            Some(l) => {
                Server::builder()
                    .add_routes(routes.clone())
                    .serve_with_incoming_shutdown(
                        UnixListenerStream::new(l),
                        shutdown.clone().requested(),
                    )
                    .await
            }
            None => Ok(()),
        }
    };
    let tcp = async {
        match listeners.tcp {
            Some(l) => {
                Server::builder()
                    .add_routes(routes.clone())
                    .serve_with_incoming_shutdown(
                        TcpIncoming::from(l).with_nodelay(Some(true)),
                        shutdown.clone().requested(),
                    )
                    .await
            }
            None => Ok(()),
        }
    };
    let serving = async { tokio::try_join!(unix, tcp).map(|_| ()) };
    tokio::pin!(serving);
    tokio::select! {
        result = &mut serving => return Ok(result?),
        () = stop => {}
    }
    tracing::info!("stopping: no new connections, finishing calls in flight");
    trigger.fire();
    match tokio::time::timeout(grace, serving).await {
        Ok(result) => Ok(result?),
        Err(_) => {
            tracing::warn!(
                ?grace,
                "calls still running after the grace period; stopping anyway"
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unix_socket_is_private_and_replaces_only_stale_sockets() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a").join("b").join("agent.sock");
        let (listener, file) = bind_unix(&path).expect("first bind");
        let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode(&path).ok(), Some(0o600));
        assert_eq!(mode(&dir.path().join("a").join("b")).ok(), Some(0o700));

        // Served: refused, and the socket is left alone.
        assert!(matches!(bind_unix(&path), Err(ServerError::SocketInUse(p)) if p == path));
        assert!(path.exists());

        // Its server died without cleaning up: the stale socket is replaced.
        drop(listener);
        std::mem::forget(file);
        let (listener, file) = bind_unix(&path).expect("bind over a stale socket");
        drop(listener);
        drop(file);
        assert!(!path.exists(), "dropping the guard removes the socket");

        let regular = dir.path().join("not-a-socket");
        std::fs::write(&regular, b"data").expect("write file");
        let err = bind_unix(&regular).map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err(format!(
                "{} exists and is not a socket; refusing to replace it",
                regular.display()
            ))
        );
        assert_eq!(std::fs::read(&regular).ok(), Some(b"data".to_vec()));
    }

    #[tokio::test]
    async fn a_replaced_socket_is_not_removed_by_the_old_guard() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("agent.sock");
        let (old_listener, old_file) = bind_unix(&path).expect("first bind");
        drop(old_listener);
        let (_listener, _file) = bind_unix(&path).expect("second bind");
        drop(old_file);
        assert!(path.exists(), "the old guard removed the new socket");
    }
}
