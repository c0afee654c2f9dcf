//! Tooling: what serves development and measurement rather than the product. The demo
//! programme year, the population generator behind it and the benchmarks, the gRPC load
//! generator, the recovery benchmark and the crash test's writer.

pub mod demo;
pub mod load;
pub mod population;
