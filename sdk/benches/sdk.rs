//! Criterion benchmarks for the SDK's hot paths.

fn main() {}
