//! OTLP/gRPC: `TraceService/Export` (the SDK's `otlp::grpc` server: gzip, bounded messages),
//! served over HTTP/2 without TLS on loopback, as OpenTelemetry SDKs' `insecure` gRPC
//! exporters expect.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use roentgen_sdk::otlp::grpc::{self, TraceService};
use roentgen_sdk::otlp::opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use roentgen_sdk::otlp::wire;

use super::{OtlpState, datagrams, take};

/// The service over the daemon's pipeline.
struct Export(Arc<OtlpState>);

#[tonic::async_trait]
impl TraceService for Export {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        let mapping = self.0.mapping.clone();
        let framed = tokio::task::spawn_blocking(move || datagrams(&request, &mapping))
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        match take(&self.0, framed) {
            Ok(taken) => Ok(tonic::Response::new(wire::response(
                taken.rejected,
                &taken.message,
            ))),
            Err(message) => Err(tonic::Status::unavailable(message)),
        }
    }
}

/// The router for the OTLP/gRPC port.
pub fn router(state: Arc<OtlpState>) -> Router {
    Router::new()
        .route_service(grpc::EXPORT_PATH, grpc::server(Export(state.clone())))
        .layer(axum::middleware::map_response_with_state(
            state,
            count_refusals,
        ))
}

/// Counts every call answered with an error status (a message that does not decode, one past
/// the bound, a full buffer) or refused at the HTTP level (unknown path), and logs it.
async fn count_refusals(State(state): State<Arc<OtlpState>>, mut response: Response) -> Response {
    grpc::refine_status(&mut response);
    let code = grpc::early_status(&response);
    let refused = !response.status().is_success() || code.is_some_and(|c| c != tonic::Code::Ok);
    if refused {
        state
            .counters
            .otlp_requests_refused
            .fetch_add(1, Ordering::Relaxed);
        if code != Some(tonic::Code::Unavailable)
            && let Some(suppressed) = state.log.check()
        {
            let message = response
                .headers()
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::warn!(
                http_status = response.status().as_u16(),
                grpc_status = ?code,
                message,
                suppressed_lines = suppressed,
                "OTLP/gRPC call refused"
            );
        }
    }
    response
}
