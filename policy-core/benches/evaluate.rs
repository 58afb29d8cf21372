//! Evaluation benchmarks; filled in once the evaluator lands.
fn main() {}
