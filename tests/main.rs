//! The integration tests, as one binary so that libtorch is linked once:
//! the CLI on scratch git repositories, the store under kills, the git
//! store between clones and a bare remote, the torch
//! backends and seed pipelines (skipped without torch), the statistics'
//! properties, and the pinned formats.

mod common;

mod ab_until;
mod baseline_resolution;
mod compare_flow;
mod cuda_on_cpu;
mod git_store;
mod github_api;
mod github_flow;
mod gpu_host;
mod probe_cache;
mod record_format;
mod report_formats;
mod report_limits;
mod seed_pipelines;
mod stats_properties;
mod store_kill;
mod torch_backends;
mod validate;
