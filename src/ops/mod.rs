//! Operating the server: what an operator watches. [`metrics`] is the Prometheus
//! exposition at `/metrics` (an axum router the HTTP server mounts).

pub mod metrics;
