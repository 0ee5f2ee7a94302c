//! Accepting connections: the connection cap, the first-byte and TLS-handshake deadlines,
//! refusing plain HTTP on a TLS port, and hyper's own head-size and head-time limits; each
//! request then goes to the router.

use super::auth::{AuthStats, Authorizer};
use super::limits::Limits;
use super::tls::Tls;
use super::tokens::{TokenAuthorizer, TokensFile};
use super::watch::{watch_files, FileWatch};
use super::AppState;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use runnel_config::HttpConfig;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How often the tokens and TLS files are re-read even without a change event.
const FILE_BACKSTOP: Duration = Duration::from_secs(60);
/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// What every request of the server shares.
pub(super) struct Ctx {
    pub state: Arc<AppState>,
    pub authorizer: Arc<dyn Authorizer>,
    pub auth_stats: AuthStats,
    pub limits: Limits,
    pub tokens: Option<Arc<TokensFile>>,
    pub tls: Option<Arc<Tls>>,
}

/// The HTTP(S) server, configured and ready to accept.
pub struct Server {
    ctx: Arc<Ctx>,
    _watches: Vec<FileWatch>,
}

/// The peer of a connection, as the router sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct ConnInfo {
    pub peer: SocketAddr,
    /// Accepted over `max_connections` from the probe reserve: only `/healthz` and
    /// `/readyz` are answered, one request, with a short deadline.
    pub probe_only: bool,
}

/// How long a connection from the probe reserve has for its handshake and request head.
const PROBE_DEADLINE: Duration = Duration::from_secs(1);

impl Server {
    /// Build the server from the `http:` section: load the tokens file and TLS files (a
    /// broken one is an error here) and start watching them for changes.
    pub fn new(cfg: &HttpConfig, state: Arc<AppState>) -> Result<Server, String> {
        let mut watches = Vec::new();
        let tokens = match &cfg.auth.tokens_file {
            Some(path) => {
                let t = Arc::new(TokensFile::load(path)?);
                let w = t.clone();
                watches.push(watch_files(
                    "tokens",
                    std::slice::from_ref(path),
                    FILE_BACKSTOP,
                    move || w.reload(),
                )?);
                Some(t)
            }
            None => None,
        };
        let tls = match Tls::load(&cfg.tls)? {
            Some(t) => {
                let t = Arc::new(t);
                let w = t.clone();
                watches.push(watch_files("tls", &t.files(), FILE_BACKSTOP, move || {
                    w.reload()
                })?);
                Some(t)
            }
            None => None,
        };
        let authorizer = Arc::new(TokenAuthorizer::new(cfg.auth.anonymous, tokens.clone()));
        Ok(Server {
            ctx: Arc::new(Ctx {
                state,
                authorizer,
                auth_stats: AuthStats::default(),
                limits: Limits::new(&cfg.limits),
                tokens,
                tls,
            }),
            _watches: watches,
        })
    }

    /// `https` with TLS configured, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.ctx.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Accept connections until `shutdown` turns true.
    pub async fn serve(
        self,
        listener: TcpListener,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.changed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Over the cap a connection is read only for a health probe, from a small
            // reserve with a short deadline; past the reserve it is closed at once: nothing
            // is held for it, and a client sees a fast failure rather than a hang.
            let (permit, probe_only) = match self.ctx.limits.connection() {
                Some(p) => (p, false),
                None => match self.ctx.limits.probe_slot() {
                    Some(p) => (p, true),
                    None => {
                        drop(stream);
                        continue;
                    }
                },
            };
            let ctx = self.ctx.clone();
            tokio::spawn(async move {
                connection(ctx, stream, ConnInfo { peer, probe_only }).await;
                drop(permit);
            });
        }
    }
}

async fn connection(ctx: Arc<Ctx>, stream: TcpStream, info: ConnInfo) {
    let deadline = if info.probe_only {
        PROBE_DEADLINE.min(ctx.limits.config.header_timeout)
    } else {
        ctx.limits.config.header_timeout
    };
    let mut first = [0u8; 1];
    match tokio::time::timeout(deadline, stream.peek(&mut first)).await {
        Ok(Ok(n)) if n > 0 => {}
        Ok(_) => return,
        Err(_) => {
            ctx.limits.slow_clients_cut.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    let Some(tls) = ctx.tls.clone() else {
        return http(ctx, stream, info, deadline).await;
    };
    if first[0] != TLS_HANDSHAKE {
        ctx.limits
            .plain_http_refused
            .fetch_add(1, Ordering::Relaxed);
        return refuse_plain(stream).await;
    }
    match tokio::time::timeout(deadline, tls.acceptor().accept(stream)).await {
        Ok(Ok(s)) => http(ctx, s, info, deadline).await,
        Ok(Err(e)) => {
            ctx.limits
                .tls_handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(peer = %info.peer.ip(), error = %e, "http: TLS handshake failed");
        }
        Err(_) => {
            ctx.limits.slow_clients_cut.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Answer a plain-HTTP request on the TLS port with a readable error, then close.
async fn refuse_plain(mut stream: TcpStream) {
    let body = serde_json::json!({
        "kind": "Status", "status": "Failure", "code": 400, "reason": "BadRequest",
        "message": "this port serves HTTPS only (http.tls is configured); use an https:// URL",
    })
    .to_string();
    let resp = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(resp.as_bytes())).await;
    let _ = stream.shutdown().await;
}

async fn http<S>(ctx: Arc<Ctx>, io: S, info: ConnInfo, header_timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &ctx.limits.config;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(!info.probe_only)
        // The head's cap; the read buffer keeps hyper's default so that writes of large
        // chunks are not throttled by it.
        .max_header_size(limits.max_header_bytes as usize);
    let service = {
        let ctx = ctx.clone();
        service_fn(move |req| {
            let ctx = ctx.clone();
            async move { Ok::<_, Infallible>(super::route(&ctx, info, req).await) }
        })
    };
    if let Err(e) = builder.serve_connection(TokioIo::new(io), service).await {
        if e.is_timeout() {
            ctx.limits.slow_clients_cut.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(error = %e, "http: connection ended with an error");
    }
}
