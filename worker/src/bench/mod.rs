//! `worker bench`: trains each model on fixed data (the first images of the dataset) with
//! a fixed seed and prints its speed and where the time goes: train images/s, forward /
//! backward / optimizer seconds, achieved GFLOP/s and the fraction of the machine's
//! measured peak, peak resident memory, and CPU seconds per wall second.
//!
//! Several models are run one after the other, each in a process of its own, so that
//! every peak-memory figure belongs to one model.
//!
//! - [`nets`]: the nets' benchmark; [`peak`]: the machine's measured FLOP/s ceiling.
//! - [`svm`]: the linear SVM (`worker bench-svm`), with the exact training and test images
//!   optionally written out so that another library can be measured on the same data.

pub mod nets;
pub mod peak;
pub mod svm;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// What to benchmark and how.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Model kinds, in order (`cnn`, `densenet`, `vgg`).
    pub models: Vec<String>,
    /// Training images per epoch (the first of the training split).
    pub images: usize,
    /// Test images to evaluate on after training (0: none).
    pub test_images: usize,
    /// Images per step (nets).
    pub batch: u32,
    /// Compute threads (0: every core).
    pub threads: usize,
    /// Epochs.
    pub epochs: u32,
    /// Steps trained before timing starts.
    pub warmup_batches: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// Seed of the initial weights and of the shuffling.
    pub seed: u64,
    /// A folder of IDX files.
    pub data: PathBuf,
    /// DenseNet growth rate.
    pub growth_rate: u32,
    /// DenseNet blocks.
    pub n_blocks: u32,
    /// DenseNet layers per block.
    pub layers_per_block: u32,
    /// VGG width multiplier.
    pub width: f64,
    /// VGG batch norm.
    pub batch_norm: bool,
    /// The SVM's penalty, solver and multiclass scheme.
    pub svm: ecobench_shared::SvmConfig,
}

/// What one model's benchmark measured. Figures that do not apply to the SVM (forward,
/// backward and optimizer seconds; a FLOP count, which depends on its active set) are
/// `None`, `null` in JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    /// The model kind.
    pub model: String,
    /// Its configuration label.
    pub config: String,
    /// Compute threads.
    pub threads: usize,
    /// Images per step (nets).
    pub batch: u32,
    /// Images trained while timing (per epoch for the SVM).
    pub images: usize,
    /// Training throughput (the SVM: training images ÷ fit seconds).
    pub images_per_s: f64,
    /// Seconds in forward passes (loss included).
    pub forward_s: Option<f64>,
    /// Seconds in backward passes.
    pub backward_s: Option<f64>,
    /// Seconds in optimizer steps.
    pub optimizer_s: Option<f64>,
    /// Seconds training (the SVM: its fit).
    pub train_s: f64,
    /// Achieved GFLOP/s of the convolutions and linear layers.
    pub gflops: Option<f64>,
    /// The machine's measured peak GFLOP/s for as many threads.
    pub peak_gflops: f64,
    /// How the peak was measured.
    pub peak_method: String,
    /// `gflops / peak_gflops`.
    pub fraction_of_peak: Option<f64>,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mb: f64,
    /// CPU seconds used per wall second while timing (≤ threads).
    pub cpu_per_wall: f64,
    /// Mean training loss of the last epoch (nets).
    pub loss: Option<f64>,
    /// Test accuracy after training, when evaluated.
    pub accuracy: Option<f64>,
    /// The solver that ran.
    pub solver: String,
}

/// Runs the benchmark; prints a readable block per model, or one JSON object per line.
pub fn run(options: &BenchOptions, json: bool) -> Result<()> {
    for kind in &options.models {
        if !ecobench_shared::MODEL_KINDS.contains(&kind.as_str()) {
            bail!(
                "unknown model {kind:?} for bench: use {}",
                ecobench_shared::MODEL_KINDS.join(", ")
            )
        }
    }
    let figures = if options.models.len() == 1 {
        vec![one(options, &options.models[0])?]
    } else {
        options
            .models
            .iter()
            .map(|kind| in_child(kind))
            .collect::<Result<Vec<_>>>()?
    };
    for f in &figures {
        if json {
            println!("{}", serde_json::to_string(f)?);
        } else {
            print!("{}", describe(f));
        }
    }
    Ok(())
}

/// The benchmark of one model in this process.
fn one(options: &BenchOptions, kind: &str) -> Result<Figures> {
    if kind == "svm-linear" {
        svm::figures(options)
    } else {
        nets::bench(options, kind)
    }
}

/// Runs this same command for one model in a child process and reads its JSON line.
fn in_child(kind: &str) -> Result<Figures> {
    let exe = std::env::current_exe().context("cannot find the worker's own executable")?;
    let mut args: Vec<String> = Vec::new();
    let mut skip = false;
    for arg in std::env::args().skip(1) {
        if skip {
            skip = false;
        } else if arg == "--model" {
            skip = true;
        } else if !(arg.starts_with("--model=") || arg == "--json") {
            args.push(arg);
        }
    }
    let out = std::process::Command::new(exe)
        .args(&args)
        .args(["--model", kind, "--json"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot start the benchmark of one model")?;
    if !out.status.success() {
        bail!("the benchmark of {kind} failed ({})", out.status)
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .with_context(|| format!("unreadable figures from the {kind} run: {text}"))
}

/// A readable block of figures.
pub fn describe(f: &Figures) -> String {
    let accuracy = f
        .accuracy
        .map_or(String::new(), |a| format!(", test accuracy {a:.4}"));
    let phases = match (f.forward_s, f.backward_s, f.optimizer_s) {
        (Some(fw), Some(bw), Some(opt)) => format!(
            "forward {fw:.2} s, backward {bw:.2} s, optimizer {opt:.2} s; last epoch's loss {:.4}",
            f.loss.unwrap_or(f64::NAN)
        ),
        _ => format!("fit {:.3} s ({})", f.train_s, f.solver),
    };
    let flops = match (f.gflops, f.fraction_of_peak) {
        (Some(g), Some(frac)) => format!("{g:.1} GFLOP/s achieved = {:.1} % of", 100.0 * frac),
        _ => "no FLOP count (the SVM's work follows its active set); for reference,".to_string(),
    };
    format!(
        "{} ({}), {} thread(s): {:.0} train images/s over {} images\n  \
         {phases}{accuracy}\n  \
         {flops} the peak {:.1} GFLOP/s ({})\n  \
         peak RSS {:.0} MB, {:.2} CPU seconds per second\n",
        f.model,
        f.config,
        f.threads,
        f.images_per_s,
        f.images,
        f.peak_gflops,
        f.peak_method,
        f.peak_rss_mb,
        f.cpu_per_wall,
    )
}
