//! OTLP/gRPC ingest, `TraceService/Export` on a port of its own (`--otlp-grpc`): the SDK's
//! generated server (gzip, bounded messages) over the same mapping, scrubbing and store step
//! as `POST /v1/traces`. Authentication, when on, is `auth::grpc`'s; calls refused with an error
//! status are counted in `requests_refused_total`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use roentgen_sdk::otlp::grpc::{self, TraceService};
use roentgen_sdk::otlp::opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use roentgen_sdk::otlp::wire;

use super::AppState;
use super::otlp::{prepare, store};
use crate::auth::Auth;
use crate::metrics::{self, Counters, RequestRefusal};

/// The service over the collector's store.
struct Export(AppState);

#[tonic::async_trait]
impl TraceService for Export {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        self.0.counters.ingest_bytes.fetch_add(
            prost::Message::encoded_len(&request) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let ingest = self.0.otlp.clone();
        let (docs, refused, spans) =
            tokio::task::spawn_blocking(move || prepare(&request, &ingest))
                .await
                .map_err(|e| tonic::Status::internal(e.to_string()))?;
        let stored = store(&self.0, docs, refused, spans)
            .await
            .map_err(tonic::Status::unavailable)?;
        Ok(tonic::Response::new(wire::response(
            stored.rejected,
            &stored.message,
        )))
    }
}

/// The router of the OTLP/gRPC port: the service, behind authentication when `auth` is
/// given; every refused call (an error status from either) counted in `requests_refused_total`.
pub fn router(state: AppState, auth: Option<Arc<Auth>>) -> Router {
    let counters = state.counters.clone();
    let app = Router::new().route_service(grpc::EXPORT_PATH, grpc::server(Export(state)));
    let app = match auth {
        Some(auth) => crate::auth::grpc::protect(app, auth),
        None => app,
    };
    app.layer(axum::middleware::map_response_with_state(
        counters.clone(),
        count_refusals,
    ))
    .layer(axum::middleware::from_fn_with_state(
        counters,
        metrics::track_requests,
    ))
}

/// Counts calls answered with an error status: by the reason the authentication layer gave,
/// else by the status.
async fn count_refusals(State(counters): State<Arc<Counters>>, mut response: Response) -> Response {
    grpc::refine_status(&mut response);
    let code = grpc::early_status(&response);
    let reason = response
        .extensions()
        .get::<RequestRefusal>()
        .copied()
        .or_else(|| code.and_then(RequestRefusal::of_grpc));
    // HTTP-level refusals (an unknown path's 404) are `track_requests`' to count.
    if let Some(reason) = reason {
        counters.refuse_request(reason);
    }
    if reason.is_some() && !matches!(reason, Some(RequestRefusal::Busy)) {
        let message = response
            .headers()
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::info!(grpc_status = ?code, message, "OTLP/gRPC call refused");
    }
    response
}
