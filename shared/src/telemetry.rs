//! One tracing set-up for every binary: `RUST_LOG` filters, `info` by default.

use tracing_subscriber::EnvFilter;

/// Installs a stderr subscriber filtered by `RUST_LOG` (default `info`).
///
/// Calling it twice is harmless: the second call keeps the first subscriber.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Installs a subscriber like [`init`] that writes to `file` (without colours) instead
/// of stderr: `coordinator run` keeps its terminal for the progress display.
pub fn init_to_file(file: std::fs::File) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
