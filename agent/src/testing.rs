//! Test support (feature `test-support`): the agent's own routes over the in-memory IPVS
//! table and links ([`FakeIpvs`], [`FakeLinks`]), served by the agent's own server code on a
//! unix socket in a temporary directory. The agent's API tests and other crates' tests (ipvsctl's)
//! start agents this one way.
//!
//! ```no_run
//! # async fn example() {
//! use ipvs_agent::testing::{Services, TestAgent};
//! let agent = TestAgent::start(Services::default()).await;
//! // ... run a client against agent.address(), look at agent.ipvs ...
//! agent.stop().await.expect("clean stop");
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tonic::transport::{Channel, Endpoint, Uri};

pub use crate::ipvs::fake::{FakeIpvs, Write};
pub use crate::link::fake::FakeLinks;

use crate::attach::{Attachments, PolicyStore};
use crate::declared::Declared;
use crate::kernel::Kernel;
use crate::policy::{Limits, PolicyEngine};
use crate::server::{self, Listeners, Node, ServerError};
use crate::shutdown::Shutdown;
use crate::state::DriftMode;

/// How long calls in flight may run on after [`Served::stop`].
const GRACE: Duration = Duration::from_secs(5);

/// Routes served on a unix socket until [`Served::stop`] or until dropped (which stops the
/// server at once, without waiting for calls in flight).
#[derive(Debug)]
pub struct Served {
    socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

/// Serves the routes `make` builds on a unix socket at `socket` (its directory is created),
/// with the agent's listener and server code. `make` is given the signal a stop fires, which
/// ends long-lived streams. Listens before it returns, so clients may connect at once; the
/// server runs on the current tokio runtime.
pub fn serve(
    socket: &Path,
    make: impl FnOnce(Shutdown) -> Result<Routes, ServerError>,
) -> Result<Served, ServerError> {
    let (trigger, shutdown) = Shutdown::new();
    let routes = make(shutdown.clone())?;
    let (listener, file) = server::bind_unix(socket)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let listeners = Listeners {
            unix: Some(listener),
            tcp: None,
        };
        let stop = async {
            let _ = stopped.await;
        };
        let result = server::serve(routes, listeners, trigger, shutdown, stop, GRACE).await;
        drop(file);
        result
    });
    Ok(Served {
        socket: socket.to_owned(),
        stop: Some(stop),
        task: Some(task),
    })
}

impl Served {
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `unix:/path/to/agent.sock`, as ipvsctl takes an agent's address.
    pub fn address(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// Stops the server as a signal would (no new calls, calls in flight finish, long-lived
    /// streams end) and waits for it.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())),
            None => Ok(()),
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A client channel to a unix socket.
pub async fn connect(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let path = socket.to_owned();
    Endpoint::from_static("http://agent.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
}

/// What a [`TestAgent`] serves besides the IPVS, settings, table, stats and link services,
/// which it always serves. The real agent serves both.
#[derive(Debug, Clone, Copy, Default)]
pub struct Services {
    /// PolicyService, over a real policy engine (no artifact cache).
    pub policies: bool,
    /// StateService, its revisions kept in the agent's directory; drift is reported.
    pub state: bool,
}

impl Services {
    /// Everything the agent serves.
    pub fn all() -> Self {
        Services {
            policies: true,
            state: true,
        }
    }
}

/// The agent's node over in-memory cores: what a [`TestAgent`] serves, before it is served.
#[derive(Debug)]
pub struct TestNode {
    pub ipvs: Arc<FakeIpvs>,
    pub links: Arc<FakeLinks>,
    pub kernel: Arc<Kernel<FakeIpvs>>,
    pub policies: Option<Arc<Attachments<FakeIpvs>>>,
    pub state: Option<Arc<Declared<FakeIpvs, FakeLinks>>>,
    dir: tempfile::TempDir,
}

impl TestNode {
    /// Empty cores (a loopback link, no service), and what `services` asks for, keeping its
    /// files in a temporary directory of its own.
    pub async fn new(services: Services) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory for the test agent");
        let ipvs = Arc::new(FakeIpvs::default());
        let links = Arc::new(FakeLinks::default());
        let kernel = Arc::new(Kernel::new(ipvs.clone()));
        let policies = if services.policies {
            let engine = PolicyEngine::new(Limits::default(), None).expect("policy engine");
            let store = PolicyStore::open(Some(dir.path().join("policies")), &engine)
                .await
                .expect("policy store");
            Some(Arc::new(Attachments::new(engine, store, kernel.clone())))
        } else {
            None
        };
        let state = services.state.then(|| {
            Arc::new(
                Declared::open(
                    kernel.clone(),
                    links.clone(),
                    policies.clone(),
                    Some(dir.path().join("revisions")),
                    DriftMode::Report,
                )
                .expect("declared state"),
            )
        });
        if let Some(s) = &state {
            s.start_checks().await;
        }
        TestNode {
            ipvs,
            links,
            kernel,
            policies,
            state,
            dir,
        }
    }

    /// The directory the node keeps its files in (and its socket, once served).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The agent's routes over this node, as the agent builds them.
    pub fn routes(&self, shutdown: Shutdown) -> Result<Routes, ServerError> {
        server::routes(
            Node {
                kernel: self.kernel.clone(),
                links: self.links.clone(),
                policies: self.policies.clone(),
                state: self.state.clone(),
            },
            shutdown,
        )
    }

    /// Where [`TestNode::serve`] listens.
    pub fn socket(&self) -> PathBuf {
        self.dir().join("run").join("agent.sock")
    }

    /// Serves the routes `make` builds over this node, e.g. fewer services than the agent, or
    /// one of them wrapped to behave like an older agent.
    pub fn serve_with(
        self,
        make: impl FnOnce(&TestNode, Shutdown) -> Result<Routes, ServerError>,
    ) -> TestAgent {
        let server =
            serve(&self.socket(), |shutdown| make(&self, shutdown)).expect("serve the test agent");
        TestAgent { node: self, server }
    }

    /// Serves the agent's routes over this node.
    pub fn serve(self) -> TestAgent {
        self.serve_with(TestNode::routes)
    }
}

/// The agent over in-memory cores, served on a unix socket until stopped or dropped.
#[derive(Debug)]
pub struct TestAgent {
    pub node: TestNode,
    pub server: Served,
}

impl std::ops::Deref for TestAgent {
    type Target = TestNode;

    fn deref(&self) -> &TestNode {
        &self.node
    }
}

impl TestAgent {
    /// The agent's routes over empty in-memory cores, with `services`.
    pub async fn start(services: Services) -> Self {
        TestNode::new(services).await.serve()
    }

    /// `unix:/path/to/agent.sock`, as ipvsctl takes an agent's address.
    pub fn address(&self) -> String {
        self.server.address()
    }

    /// A client channel to the agent.
    pub async fn channel(&self) -> Channel {
        connect(self.server.socket())
            .await
            .expect("connect to the test agent")
    }

    /// Stops the agent as a signal would, and waits for it.
    pub async fn stop(self) -> Result<(), ServerError> {
        self.server.stop().await
    }
}
