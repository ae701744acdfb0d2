//! The two layers that watch requests: [`track_requests`], outermost, counts requests in
//! flight and every refusal (whoever answered it: a handler, the body limit or the auth layer);
//! [`time_operations`], a route layer, times each request by its X-Ray operation or dashboard
//! route.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::counters::{Counters, RequestRefusal};

/// A request being served, counted until it is answered or abandoned.
struct InFlight<'a>(&'a Counters);

impl<'a> InFlight<'a> {
    fn new(counters: &'a Counters) -> Self {
        counters.requests_in_flight.fetch_add(1, Ordering::Relaxed);
        Self(counters)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.requests_in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts the request in flight while it runs, then its refusal or failure, if any.
pub async fn track_requests(
    State(counters): State<Arc<Counters>>,
    request: Request,
    next: Next,
) -> Response {
    let in_flight = InFlight::new(&counters);
    let response = next.run(request).await;
    drop(in_flight);
    let error_type = response
        .headers()
        .get("x-amzn-ErrorType")
        .and_then(|v| v.to_str().ok());
    let status = response.status().as_u16();
    match RequestRefusal::of_answer(status, error_type) {
        Some(reason) => counters.refuse_request(reason),
        None if status >= 500 => {
            counters.requests_failed.fetch_add(1, Ordering::Relaxed);
        }
        None => {}
    }
    response
}

/// The operation label of a route: the X-Ray operation at an API path, else the route itself
/// (`/traces/{id}`: a dashboard page kind).
pub fn operation_name(route: &str) -> &str {
    crate::auth::action_for(route).map_or(route, |action| {
        action.strip_prefix("xray:").unwrap_or(action)
    })
}

/// Times requests that matched a route of `app` (add it after every route is merged).
pub fn time_operations(app: Router, counters: Arc<Counters>) -> Router {
    app.route_layer(axum::middleware::from_fn_with_state(counters, time_request))
}

async fn time_request(
    State(counters): State<Arc<Counters>>,
    route: MatchedPath,
    request: Request,
    next: Next,
) -> Response {
    let histogram = counters.operation(operation_name(route.as_str()));
    let started = Instant::now();
    let response = next.run(request).await;
    histogram.observe(started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_named_by_operation_and_pages_by_route() {
        assert_eq!(operation_name("/TraceSegments"), "PutTraceSegments");
        assert_eq!(operation_name("/ServiceGraph"), "GetServiceGraph");
        assert_eq!(operation_name("/metrics"), "GetMetrics");
        assert_eq!(operation_name("/traces/{id}"), "/traces/{id}");
    }
}
