//! The tower layer for `http` clients (`hyper_util`'s client, or any
//! `Service<http::Request<B>, Response = http::Response<R>>`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use super::{begin_call, end_call};

/// Traces each call of the client it wraps (see the [module](super)).
#[derive(Debug, Clone, Copy, Default)]
pub struct XRayClientLayer;

impl<S> Layer<S> for XRayClientLayer {
    type Service = XRayClient<S>;

    fn layer(&self, inner: S) -> Self::Service {
        XRayClient { inner }
    }
}

/// A client whose calls are traced, made by [`XRayClientLayer`].
#[derive(Debug, Clone)]
pub struct XRayClient<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for XRayClient<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    S::Error: std::error::Error + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let url = request.uri().to_string();
        let host = request.uri().host().map(str::to_owned);
        let method = request.method().clone();
        let call = begin_call(&method, &url, host.as_deref(), request.headers_mut());
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            end_call(call, result.as_ref().map(|r| (r.status(), r.headers())));
            result
        })
    }
}
