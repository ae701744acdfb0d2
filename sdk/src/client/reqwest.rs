//! The `reqwest-middleware` middleware.

use http::Extensions;
use reqwest_middleware::{Middleware, Next, Result};

use super::{begin_call, end_call};

/// Traces each call of a `reqwest_middleware::ClientWithMiddleware` (see the
/// [module](super)): `ClientBuilder::new(reqwest::Client::new()).with(XRayMiddleware)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct XRayMiddleware;

#[async_trait::async_trait]
impl Middleware for XRayMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<reqwest::Response> {
        let url = request.url().to_string();
        let host = request.url().host_str().map(str::to_owned);
        let method = request.method().clone();
        let call = begin_call(&method, &url, host.as_deref(), request.headers_mut());
        let result = next.run(request, extensions).await;
        end_call(call, result.as_ref().map(|r| (r.status(), r.headers())));
        result
    }
}
