//! The ecobench worker.
//!
//! - [`agent`]: the loop: join, lease, run, report, reconnect with backoff.
//! - [`artifacts`]: the cache of weights files fetched from the coordinator, checked by hash.
//! - [`bench`]: one model measured outside the cluster (`worker bench-svm`).
//! - [`calibrate`]: the calibration score (fixed matrix products, GFLOP/s) sent when joining.
//! - [`client`]: the gRPC client (the only module that imports tonic).
//! - [`exec`]: one job in a metered child process (`worker exec`).
//! - [`energy`]: the per-process energy meter (RAPL through powercap, or a TDP model);
//!   the only module that reads `/sys` and `/proc` for energy.
//! - [`metrics`]: the Prometheus metrics of `worker --metrics` (power, energy, progress).
//! - [`meter_cli`]: `worker meter probe | run | overhead`, the meter outside the cluster.
//! - [`fingerprint`]: the hardware facts sent when joining.
//! - [`outbox`]: finished outcomes kept on disk until the coordinator has taken them.
//! - [`state`]: the state folder's lock (one worker per folder) and the remembered worker id.
//! - [`data`]: datasets (IDX files), resolution of dataset names, seeded stratified subsets.
//! - [`models`]: the models (linear SVM by dual coordinate descent or smartcore's SMO;
//!   CNN, DenseNet, VGG on the op layer of [`nn`]).
//! - [`nn`]: the fast CPU op layer the nets train on (fused candle custom ops).
//! - [`bench`]: `worker bench`, the speed of each model on fixed data.
//! - [`train`]: one entry point that trains and evaluates any model, returning a `TrainReport`.
//!
//! Entry point: [`agent::run`].

pub mod agent;
pub mod artifacts;
pub mod bench;
pub mod calibrate;
pub mod client;
pub mod data;
pub mod energy;
pub mod exec;
pub mod fingerprint;
pub mod meter_cli;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod outbox;
pub mod state;
pub mod train;
