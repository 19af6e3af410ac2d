//! Shared parts of the benchmarks: the deterministic workload and the
//! handling of the processes under test.

pub mod process;
pub mod workload;
