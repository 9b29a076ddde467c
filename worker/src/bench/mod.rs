//! Measurements of one model outside the cluster: load, subset as a job would, fit,
//! evaluate, and report times and accuracy (`worker bench-svm`).
//!
//! - [`svm`]: the linear SVM, with the exact training and test images optionally written
//!   out so that another library can be measured on the same data.

pub mod svm;
