//! End-to-end tests: real binaries, real UDP and HTTP on loopback, official SDKs as clients.

mod captures;
mod collector;
mod daemon;
mod dashboard;
mod filter_depth;
mod scale_out;
mod sdk;
mod security;
mod tls;
