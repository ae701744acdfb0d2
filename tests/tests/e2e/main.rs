//! End-to-end tests: real binaries, real UDP and HTTP on loopback, official SDKs as clients.

mod alarms;
mod analytics;
mod captures;
mod collector;
mod daemon;
mod daemon_failures;
mod dashboard;
mod filter_depth;
mod group_scope;
mod insights;
mod listeners;
mod observe;
mod otlp;
mod otlp_grpc;
mod pages;
mod request_bounds;
mod sampling;
mod scale_out;
mod sdk;
mod sdk_streaming;
mod security;
mod sessions;
mod tls;
