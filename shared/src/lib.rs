//! Domain types and pure logic shared by the coordinator and the worker.
//!
//! - [`job`]: what a job is and what it produces (specs, train and energy reports).
//! - [`pretrain`]: transfer learning: job stages and `pretrained` values.
//! - [`campaign`]: campaign TOML files and their expansion into a matrix of jobs.
//! - [`carbon`]: the embedded per-country carbon-intensity table.
//! - [`transform`]: what a job does to its images after loading.
//! - [`telemetry`]: one tracing set-up for every binary.
//! - [`process`]: the token file and the shutdown signal, for both binaries.
//!
//! Nothing here does network, database or training work.

pub mod campaign;
pub mod carbon;
pub mod job;
pub mod pretrain;
pub mod process;
pub mod telemetry;
pub mod transform;

pub use campaign::{CampaignError, CampaignSpec};
pub use job::*;
pub use pretrain::{DeclaredCost, PretrainSource, Stage};
pub use transform::DataTransform;
