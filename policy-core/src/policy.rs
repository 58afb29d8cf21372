//! Placeholder; being written.
/// Placeholder.
#[derive(Debug)]
pub struct Policy;
/// Placeholder.
#[derive(Debug)]
pub struct LoadError;
