//! Outgoing HTTP calls traced from the task's current entity: a tower layer for `hyper` and
//! any other `http` client ([`XRayClientLayer`]) and, with the `reqwest` feature, a
//! `reqwest-middleware` middleware ([`XRayMiddleware`]). Both do the same, here, once: each
//! call made inside a traced task gets a `remote` subsegment named after the host, carries the
//! `X-Amzn-Trace-Id` header (`Parent` = that subsegment, the trace's decision, its unknown
//! keys), and records the response's status and length (4xx error, 429 throttle, 5xx fault)
//! or the transport error as its cause. Outside a traced task a call goes out untouched.

#[cfg(feature = "reqwest")]
mod reqwest;
mod tower;

use http::{HeaderMap, Method};

#[cfg(feature = "reqwest")]
pub use self::reqwest::XRayMiddleware;
pub use self::tower::{XRayClient, XRayClientLayer};
use crate::middleware::inject;
use crate::recorder::{Entity, current};

/// Opens the subsegment of a call and adds the trace header; `None` outside a traced task.
fn begin_call(
    method: &Method,
    url: &str,
    host: Option<&str>,
    headers: &mut HeaderMap,
) -> Option<Entity> {
    let parent = current()?;
    let (call, header) = parent.begin_remote_call(host.unwrap_or("remote"), method.as_str(), url);
    inject(&header, headers);
    Some(call)
}

/// Records how the call went (its status and `Content-Length`, or the error) and ends its
/// subsegment.
fn end_call<E: std::error::Error + 'static>(
    call: Option<Entity>,
    outcome: Result<(http::StatusCode, &HeaderMap), &E>,
) {
    let Some(call) = call else { return };
    match outcome {
        Ok((status, headers)) => {
            let length = headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            call.set_http_response(status.as_u16(), length);
        }
        Err(error) => call.add_error(error),
    }
    call.end();
}
