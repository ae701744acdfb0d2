//! A tower layer that traces every request of an axum (or any `http`) service, and helpers for
//! outgoing calls.
//!
//! For each request it continues the incoming `X-Amzn-Trace-Id` (or starts a trace), lets the
//! sampler decide when the caller did not, records the request and the response (status ->
//! error/throttle/fault), makes the segment the task's current entity for the handler, and
//! answers with the trace header.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{CONTENT_LENGTH, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Request, Response};
use tower::{Layer, Service};

use crate::model::{HttpRequest, TRACE_HEADER, TraceHeader};
use crate::recorder::{Entity, Recorder, SegmentNaming, scope};
use crate::sampling::SamplingRequest;

/// Traces requests as segments named after the service (or, with [`XRayLayer::dynamic`], after
/// the host they were sent to). `AWS_XRAY_TRACING_NAME` ([`Recorder::tracing_name`]) replaces
/// the name given here, as in the official SDKs.
#[derive(Clone, Debug)]
pub struct XRayLayer {
    recorder: Recorder,
    naming: Arc<SegmentNaming>,
}

impl XRayLayer {
    /// A layer recording segments named `service_name`.
    pub fn new(recorder: Recorder, service_name: &str) -> Self {
        Self::with_naming(recorder, SegmentNaming::Fixed(service_name.to_owned()))
    }

    /// A layer naming each segment after the request's host when it matches `host_pattern`
    /// (`*`, `?` wildcards), and `fallback` otherwise.
    pub fn dynamic(recorder: Recorder, fallback: &str, host_pattern: &str) -> Self {
        Self::with_naming(
            recorder,
            SegmentNaming::Dynamic {
                fallback: fallback.to_owned(),
                host_pattern: host_pattern.to_owned(),
            },
        )
    }

    fn with_naming(recorder: Recorder, naming: SegmentNaming) -> Self {
        let naming = naming.with_tracing_name(recorder.tracing_name());
        Self {
            recorder,
            naming: Arc::new(naming),
        }
    }
}

impl<S> Layer<S> for XRayLayer {
    type Service = XRayService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        XRayService {
            inner,
            recorder: self.recorder.clone(),
            naming: Arc::clone(&self.naming),
        }
    }
}

/// The service made by [`XRayLayer`].
#[derive(Clone, Debug)]
pub struct XRayService<S> {
    inner: S,
    recorder: Recorder,
    naming: Arc<SegmentNaming>,
}

/// Parses the trace header of a request as the official SDKs do: the fields it can read are
/// kept (a `Root` alone, from a load balancer, continues its trace), the bad ones dropped and
/// logged at debug level, since they come from the network.
pub fn incoming_header(headers: &HeaderMap) -> Option<TraceHeader> {
    let value = headers.get(TRACE_HEADER)?.to_str().ok()?;
    let (header, problem) = TraceHeader::parse_lenient(value);
    if let Some(error) = problem {
        tracing::debug!(%error, "X-Amzn-Trace-Id has a malformed field; kept the others");
    }
    Some(header)
}

/// Adds the trace header for an outgoing call to `headers`.
pub fn inject(header: &TraceHeader, headers: &mut HeaderMap) {
    if let Ok(value) = HeaderValue::from_str(&header.encode()) {
        headers.insert(TRACE_HEADER, value);
    }
}

fn header_str(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn request_record<B>(req: &Request<B>) -> HttpRequest {
    let headers = req.headers();
    let host = header_str(headers, HOST).or_else(|| req.uri().host());
    let url = match (req.uri().scheme_str(), host) {
        (Some(_), _) => req.uri().to_string(),
        (None, Some(host)) => format!("http://{host}{}", req.uri()),
        (None, None) => req.uri().to_string(),
    };
    let forwarded = header_str(headers, "x-forwarded-for")
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned());
    let (client_ip, x_forwarded_for) = match forwarded {
        Some(ip) => (Some(ip), Some(true)),
        None => (
            req.extensions()
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip().to_string()),
            None,
        ),
    };
    HttpRequest {
        method: Some(req.method().as_str().to_owned()),
        url: Some(url),
        user_agent: header_str(headers, USER_AGENT).map(str::to_owned),
        client_ip,
        x_forwarded_for,
        ..HttpRequest::default()
    }
}

fn begin<B>(recorder: &Recorder, naming: &SegmentNaming, req: &Request<B>) -> Entity {
    let incoming = incoming_header(req.headers());
    let host = header_str(req.headers(), HOST)
        .or_else(|| req.uri().host())
        .unwrap_or("");
    let host = host.split(':').next().unwrap_or(host);
    let sampling = SamplingRequest {
        host,
        method: req.method().as_str(),
        url_path: req.uri().path(),
        ..SamplingRequest::default()
    };
    let name = naming.name_for(Some(host));
    let entity = recorder.begin_segment_for(name, incoming.as_ref(), &sampling);
    if entity.is_sampled() {
        entity.set_http_request(request_record(req));
    }
    entity
}

impl<S, B, R> Service<Request<B>> for XRayService<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: 'static,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let entity = begin(&self.recorder, &self.naming, &req);
        // The clone that was polled ready handles this request (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let future = inner.call(req);
        Box::pin(async move {
            let result = scope(entity.clone(), future).await;
            match result {
                Ok(mut response) => {
                    let length =
                        header_str(response.headers(), CONTENT_LENGTH).and_then(|v| v.parse().ok());
                    entity.set_http_response(response.status().as_u16(), length);
                    inject(&entity.response_header(), response.headers_mut());
                    entity.end();
                    Ok(response)
                }
                Err(error) => {
                    entity.with_document(|doc| doc.fault = Some(true));
                    entity.end();
                    Err(error)
                }
            }
        })
    }
}
