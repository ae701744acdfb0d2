//! Authentication of the OTLP/gRPC port. gRPC exporters cannot sign a request's body with
//! SigV4, but every OpenTelemetry SDK can send fixed metadata (`OTEL_EXPORTER_OTLP_HEADERS`),
//! so a call carries the same credentials as a signed request, as HTTP Basic:
//! `authorization: Basic base64(ACCESS_KEY_ID:SECRET_ACCESS_KEY)`. The secret then travels with
//! every call: serve this port with TLS (`--tls-cert`) off loopback. The key's principal is
//! rate-limited, must be allowed `xray:PutTraceSegments`, and every call is audited, as on the
//! API port. A refusal is a gRPC status (`UNAUTHENTICATED`, `PERMISSION_DENIED`, `UNAVAILABLE`
//! for throttling, which exporters retry) carrying its [`RequestRefusal`] for the metrics.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;

use super::audit::AuditEvent;
use super::keys::LoadedPrincipal;
use super::session::constant_time_eq;
use super::sigv4::SigError;
use super::{Auth, Denial, now_secs};
use crate::metrics::RequestRefusal;

/// The action an OTLP export needs, as `PutTraceSegments`.
const ACTION: &str = "xray:PutTraceSegments";

/// Wraps the gRPC port's router so that every call must carry allowed credentials.
pub fn protect(app: Router, auth: Arc<Auth>) -> Router {
    app.layer(axum::middleware::from_fn_with_state(auth, check_call))
}

/// The access key id and secret of `authorization: Basic …`.
fn credentials(request: &Request) -> Result<(String, String), SigError> {
    let value = request
        .headers()
        .get("authorization")
        .ok_or(SigError::Missing)?
        .to_str()
        .map_err(|_| SigError::Malformed("authorization is not text"))?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or(SigError::Malformed(
        "authorization must be Basic base64(id:secret)",
    ))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(SigError::Malformed(
            "authorization must be Basic base64(id:secret)",
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| SigError::Malformed("authorization's credentials are not base64"))?;
    let text = String::from_utf8(decoded)
        .map_err(|_| SigError::Malformed("authorization's credentials are not text"))?;
    let (id, secret) = text.split_once(':').ok_or(SigError::Malformed(
        "authorization must be Basic base64(id:secret)",
    ))?;
    Ok((id.to_owned(), secret.to_owned()))
}

/// The principal of a known key whose secret matches; one answer for an unknown key and a
/// wrong secret, so neither can be told apart.
fn principal(auth: &Auth, id: &str, secret: &str) -> Result<Arc<LoadedPrincipal>, Denial> {
    let keyring = auth.keyring();
    match keyring.get(id) {
        Some((known, principal)) if constant_time_eq(known.as_bytes(), secret.as_bytes()) => {
            Ok(principal.clone())
        }
        _ => Err(Denial::Signature(SigError::UnknownKey)),
    }
}

/// The gRPC answer of a refusal, carrying what it counts as.
fn refusal(denial: &Denial) -> Response {
    let (status, kind, message) = denial.parts();
    let grpc = match denial {
        Denial::Signature(_) => tonic::Status::unauthenticated(message),
        Denial::AccessDenied(_) => tonic::Status::permission_denied(message),
        Denial::Busy | Denial::Throttled(_) => tonic::Status::unavailable(message),
        Denial::Invalid(_) => tonic::Status::invalid_argument(message),
    };
    let mut response: Response = grpc.into_http();
    if let Some(reason) = RequestRefusal::of_answer(status.as_u16(), Some(kind)) {
        response.extensions_mut().insert(reason);
    }
    response
}

async fn check_call(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let path = request.uri().path().to_owned();
    let resource = crate::api::scope::GroupScope::Everything.resource();
    let presented = credentials(&request);
    let key_id = presented.as_ref().ok().map(|(id, _)| id.clone());
    let verified = presented
        .map_err(Denial::Signature)
        .and_then(|(id, secret)| principal(&auth, &id, &secret));
    let who = verified.as_ref().ok().cloned();
    let outcome = match verified {
        Ok(principal) => auth
            .charge_principal(&principal)
            .and_then(|()| Auth::authorize(&principal, ACTION, &resource, source)),
        // Failed credentials count against the address: past its limit, throttled instead.
        Err(denial) => Err(auth.charge_address(source).err().unwrap_or(denial)),
    };
    auth.record(&AuditEvent {
        time: now_secs(),
        principal: who.as_ref().map(|p| p.name.as_str()),
        access_key_id: key_id.as_deref(),
        source_ip: source,
        action: ACTION,
        resource: &resource,
        path: &path,
        allowed: outcome.is_ok(),
        error: outcome.as_ref().err().map(|d| d.parts().1),
    });
    match outcome {
        Ok(()) => next.run(request).await,
        Err(denial) => {
            tracing::info!(%source, path, kind = denial.parts().1, "OTLP/gRPC call refused");
            refusal(&denial)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> Request {
        Request::builder()
            .header("authorization", value)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    #[test]
    fn basic_credentials_are_read_and_anything_else_is_named() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("AKID:se:cret");
        assert_eq!(
            credentials(&with(&format!("Basic {encoded}"))).unwrap(),
            ("AKID".to_owned(), "se:cret".to_owned())
        );
        let missing = Request::new(axum::body::Body::empty());
        assert!(matches!(credentials(&missing), Err(SigError::Missing)));
        for bad in ["Bearer abc", "Basic !!!", "Basic", "Basic YWJj"] {
            assert!(
                matches!(credentials(&with(bad)), Err(SigError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_refusal_is_a_grpc_status_that_says_what_it_counts_as() {
        let response = refusal(&Denial::AccessDenied("no".into()));
        assert_eq!(
            roentgen_sdk::otlp::grpc::early_status(&response),
            Some(tonic::Code::PermissionDenied)
        );
        assert_eq!(
            response.extensions().get::<RequestRefusal>(),
            Some(&RequestRefusal::AccessDenied)
        );
        let throttled = refusal(&Denial::Throttled(std::time::Duration::from_secs(1)));
        assert_eq!(
            roentgen_sdk::otlp::grpc::early_status(&throttled),
            Some(tonic::Code::Unavailable)
        );
    }
}
