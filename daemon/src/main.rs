//! `roentgen-daemon`: the X-Ray-compatible daemon binary.

fn main() {}
