//! Domain types and pure logic shared by the coordinator and the worker.
//!
//! - [`job`]: what a job is and what it produces (specs, train and energy reports).
//! - [`pretrain`]: transfer learning: job stages and `pretrained` values.
//! - [`artifact`]: content-addressed artifacts: hashing, chunking, verified receiving.
//! - [`campaign`]: campaign TOML files and their expansion into a matrix of jobs.
//! - [`events`]: what watchers of a running campaign are told.
//! - [`carbon`]: the embedded carbon-intensity tables (countries, cloud regions) and
//!   the choice between them.
//! - [`transform`]: what a job does to its images after loading.
//! - [`telemetry`]: one tracing set-up for every binary.
//! - [`config`]: config files and `ECOBENCH_…` environment variables for the flags of both
//!   binaries.
//! - [`process`]: the token file and the shutdown signal, for both binaries.
//! - [`validate`]: range checks of every float a worker sends.
//! - [`metrics`]: the Prometheus metric names both binaries export, and the `/metrics`
//!   HTTP server.
//!
//! Nothing here does network (but [`metrics`]' tiny HTTP server), database or training work; [`artifact`] reads and
//! writes the files it is given.

pub mod artifact;
pub mod campaign;
pub mod carbon;
pub mod config;
pub mod events;
pub mod job;
pub mod metrics;
pub mod pretrain;
pub mod process;
pub mod telemetry;
pub mod transform;
pub mod validate;

pub use campaign::{CampaignError, CampaignSpec, Placement};
pub use job::*;
pub use pretrain::{DeclaredCost, PretrainSource, Stage};
pub use transform::DataTransform;
