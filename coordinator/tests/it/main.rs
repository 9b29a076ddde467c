//! Integration tests: a real coordinator process on 127.0.0.1:0, real worker
//! processes, a real sled database in a temporary folder, tiny datasets in the
//! real IDX format.

mod artifacts;
mod certs;
mod cluster;
mod config;
mod decline;
mod deploy;
mod disk_full;
mod errors;
mod faults;
mod html;
mod lab;
mod load;
mod machines;
mod metrics;
mod report;
mod security;
mod signals;
mod support;
mod transfer;
mod watch;
