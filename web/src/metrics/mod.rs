//! The collector observed from outside: its counters ([`Counters`], the one place they
//! live), their Prometheus text, the layers that count and time requests, and the
//! `/metrics`, `/healthz` and `/readyz` endpoints. The text format and the histogram are the
//! daemon's (`roentgen_daemon::telemetry::prometheus`), shared rather than written twice.

mod counters;
mod layer;
mod render;
mod routes;

pub use counters::{Counters, DocumentRefusal, RequestRefusal, StoreWrite};
pub use layer::{operation_name, time_operations, track_requests};
pub use render::render;
pub use routes::router;
