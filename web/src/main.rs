//! `roentgen-web`: the collector and dashboard binary.

fn main() {}
