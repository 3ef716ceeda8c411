//! Hyperion's HTTP service: `hyperion dashboard`.
//!
//! One process serves a versioned JSON API over a store (`/api/v1/…`, see `docs/http-api.md`),
//! live changes as Server-Sent Events, Prometheus metrics (`/metrics`) and the web dashboard,
//! whose files are embedded in the binary.
//!
//! Each study someone looks at is folded once into a [`StudyView`](hyperion_core::StudyView)
//! and kept up to date from the store's change log ([`tracked`]): a request costs the changes
//! since the last one, never the whole study, and one tail loop per server (not per browser)
//! follows the log for the event streams. The store is only read, in short statements, so a
//! dashboard never blocks a run; the writes the API offers (ask, report, tell, stop) are the
//! same operations as the CLI's, through [`hyperion_runtime::Study`].
//!
//! Security: it binds loopback by default. Any other address needs a token (generated and
//! printed unless given), which requests carry as `Authorization: Bearer …` or as the cookie a
//! `?token=` visit sets. The Host header is checked against DNS rebinding, requests that write
//! must come from the dashboard's own origin or carry the token in a header, and every response
//! has a strict Content-Security-Policy ([`guard`]).

mod api;
mod assets;
mod guard;
mod metrics;
mod tracked;

use std::net::SocketAddr;
use std::sync::Arc;

use hyperion_store::Store;

pub use guard::Access;

/// How `hyperion dashboard` serves.
#[derive(Clone, Debug)]
pub struct Options {
    pub bind: SocketAddr,
    /// The token requests must carry; required (and generated when `None`) on any address
    /// but loopback.
    pub token: Option<String>,
    /// Host names the dashboard may be reached by, beyond loopback and the bound address.
    pub allowed_hosts: Vec<String>,
    /// Refuse every request that would write (ask, report, tell, stop).
    pub read_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            allowed_hosts: Vec::new(),
            read_only: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A dashboard listening, ready to serve: its address and the URL to open (with the token).
#[derive(Debug)]
pub struct Listening {
    listener: tokio::net::TcpListener,
    runtime: tokio::runtime::Runtime,
    app: Arc<api::App>,
    pub addr: SocketAddr,
    pub url: String,
}

/// Binds the address (the port may be 0: the system picks one) without serving yet, so that
/// the caller can print where it is.
pub fn bind(store: Arc<dyn Store>, options: Options) -> Result<Listening, ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(options.bind))
        .map_err(|source| ServeError::Bind {
            addr: options.bind,
            hint: match source.kind() {
                std::io::ErrorKind::AddrInUse => {
                    " (another program, perhaps another dashboard, has it: choose another with --bind)"
                }
                std::io::ErrorKind::PermissionDenied => {
                    " (ports below 1024 need privileges: choose another with --bind)"
                }
                _ => "",
            },
            source,
        })?;
    let addr = listener.local_addr()?;
    let access = Access::new(&options, addr);
    let url = access.url(addr);
    let app = Arc::new(api::App::new(store, access, options.read_only));
    Ok(Listening {
        listener,
        runtime,
        app,
        addr,
        url,
    })
}

impl Listening {
    /// Serves until `shutdown` resolves (or forever), then returns.
    pub fn serve_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Listening {
            listener,
            runtime,
            app,
            ..
        } = self;
        let tail = tracked::Tail::start(app.studies.clone());
        let router = api::router(app);
        runtime.block_on(async move {
            let (ending, ended) = tokio::sync::watch::channel(false);
            let server = axum::serve(listener, router).with_graceful_shutdown(async move {
                let mut ended = ended;
                let _ = ended.wait_for(|end| *end).await;
            });
            let mut server = std::pin::pin!(server.into_future());
            tokio::select! {
                result = &mut server => return result,
                () = shutdown => {}
            }
            let _ = ending.send(true);
            // Requests in flight finish; event streams, which never do, are cut after a moment.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), server).await;
            Ok(())
        })?;
        drop(tail);
        // Event streams never end by themselves: do not wait for them.
        runtime.shutdown_background();
        Ok(())
    }

    /// Serves until SIGINT or SIGTERM.
    pub fn serve(self) -> Result<(), ServeError> {
        self.serve_until(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        })
    }
}
