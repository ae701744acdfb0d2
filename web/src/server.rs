//! The collector's connection handling: the accept loop over plain TCP or TLS, with a limit on
//! every connection so a slow or silent client cannot hold one open (TLS handshake timeout,
//! header-read timeout that also closes idle keep-alive connections, per-request timeout,
//! header size limit) and a cap on connections open at once: past it the loop stops accepting,
//! so new connections wait in the kernel's listen backlog until one closes (counted, and logged
//! at most once a minute). Each request carries the peer address as axum's `ConnectInfo`.
//!
//! The OTLP/gRPC port speaks HTTP/2 ([`Protocol::Http2`]): the same handshake, request timeout,
//! header bound and connection cap, at most 100 streams per connection, and pings every 30 s
//! (a peer that stops answering them is dropped); an idle connection that answers stays open,
//! as gRPC exporters expect.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Least time between two "connection limit reached" log lines.
const FULL_LOG_EVERY: Duration = Duration::from_secs(60);

/// Per-connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time for a client to finish the TLS handshake.
    pub tls_handshake: Duration,
    /// Time for a client to send a request's headers, counted from the connection's start or
    /// the end of the previous response, so it is also the idle keep-alive timeout.
    pub header_read: Duration,
    /// Time from the end of the headers to the response's head (reading the body included).
    pub request: Duration,
    /// Largest request line plus headers, in bytes (431 past it).
    pub max_header_bytes: usize,
    /// Most connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tls_handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(60),
            max_header_bytes: 64 * 1024,
            max_connections: 1024,
        }
    }
}

fn timed_out() -> Response<Body> {
    let mut response = Response::new(Body::from(
        "{\"__type\":\"RequestTimeoutException\",\"message\":\"the request took too long\"}",
    ));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

/// The HTTP version a port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 (the API and the dashboard).
    Http1,
    /// HTTP/2 only, plain (prior knowledge) or over TLS with ALPN `h2` (OTLP/gRPC).
    Http2,
}

/// A connection builder for either protocol, with the limits applied.
enum Builder {
    Http1(hyper::server::conn::http1::Builder),
    Http2(hyper::server::conn::http2::Builder<TokioExecutor>),
}

/// Streams one HTTP/2 connection may run at once.
const MAX_STREAMS: u32 = 100;

/// How often an idle HTTP/2 connection is pinged, and how long the answer may take before the
/// connection is closed (a peer that vanished does not hold a slot).
const KEEP_ALIVE: Duration = Duration::from_secs(30);

impl Builder {
    fn new(protocol: Protocol, limits: &Limits) -> Self {
        match protocol {
            Protocol::Http1 => {
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(limits.header_read)
                    .max_header_size(limits.max_header_bytes);
                Self::Http1(http)
            }
            Protocol::Http2 => {
                let mut http = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                http.timer(TokioTimer::new())
                    .max_header_list_size(
                        u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX),
                    )
                    .max_concurrent_streams(MAX_STREAMS)
                    .keep_alive_interval(KEEP_ALIVE)
                    .keep_alive_timeout(limits.header_read);
                Self::Http2(http)
            }
        }
    }
}

async fn serve_connection<I>(
    http: &Builder,
    io: I,
    app: Router,
    peer: SocketAddr,
    request_timeout: Duration,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move {
            let call = tower::Service::call(&mut app, request.map(Body::new));
            match tokio::time::timeout(request_timeout, call).await {
                Ok(Ok(response)) => Ok::<_, Infallible>(response),
                Ok(Err(never)) => match never {},
                Err(_) => {
                    tracing::debug!(%peer, "request timed out");
                    Ok(timed_out())
                }
            }
        }
    });
    let served = match http {
        Builder::Http1(http) => http.serve_connection(TokioIo::new(io), service).await,
        Builder::Http2(http) => http.serve_connection(TokioIo::new(io), service).await,
    };
    if let Err(error) = served {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

/// Accepts connections on `listener` and serves `app` on each in `protocol`, over TLS when
/// `tls` is given, until the process ends; at most `limits.max_connections` at once. Accept
/// errors (e.g. out of file descriptors) are logged and retried.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    protocol: Protocol,
) -> std::io::Result<()> {
    let http = Arc::new(Builder::new(protocol, &limits));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut times_full: u64 = 0;
    let mut last_full_log: Option<std::time::Instant> = None;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                times_full += 1;
                if last_full_log.is_none_or(|at| at.elapsed() >= FULL_LOG_EVERY) {
                    last_full_log = Some(std::time::Instant::now());
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        times_full,
                        "connection limit reached: new connections wait in the listen backlog until one closes (--max-connections)"
                    );
                }
                match slots.clone().acquire_owned().await {
                    Ok(slot) => slot,
                    Err(_) => return Ok(()),
                }
            }
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let http = http.clone();
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => serve_connection(&http, stream, app, peer, limits.request).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.tls_handshake, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => {
                            serve_connection(&http, stream, app, peer, limits.request).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn get(stream: &mut TcpStream) {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
    }

    async fn answered(stream: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0_u8; 256];
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Ok(Ok(n)) => buf[..n].starts_with(b"HTTP/1.1 200"),
            _ => false,
        }
    }

    #[tokio::test]
    async fn connections_past_the_cap_wait_until_one_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let limits = Limits {
            max_connections: 2,
            ..Limits::default()
        };
        tokio::spawn(serve(listener, app, None, limits, Protocol::Http1));
        let mut open = Vec::new();
        for _ in 0..2 {
            let mut c = TcpStream::connect(addr).await.unwrap();
            get(&mut c).await;
            assert!(answered(&mut c, Duration::from_secs(5)).await);
            open.push(c);
        }
        // The third is accepted by the kernel but not served while two are open.
        let mut third = TcpStream::connect(addr).await.unwrap();
        get(&mut third).await;
        assert!(!answered(&mut third, Duration::from_millis(300)).await);
        drop(open.pop());
        assert!(answered(&mut third, Duration::from_secs(5)).await);
    }
}
