//! The benchmark of one net: warm-up steps, then timed epochs, then (optionally) evaluation.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use ecobench_shared::{DensenetConfig, ModelConfig, NetConfig, VggConfig};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{BenchOptions, Figures, peak};
use crate::data::{self, Dataset};
use crate::energy::procfs;
use crate::models::{self, net};
use crate::nn;

/// The model configuration the options describe.
pub fn model_config(options: &BenchOptions, kind: &str) -> ModelConfig {
    let net = NetConfig {
        n_epochs: options.epochs,
        batch_size: options.batch,
        learning_rate: options.learning_rate,
    };
    match kind {
        "densenet" => ModelConfig::Densenet(DensenetConfig {
            net,
            growth_rate: options.growth_rate,
            n_blocks: options.n_blocks,
            layers_per_block: options.layers_per_block,
        }),
        "vgg" => ModelConfig::Vgg(VggConfig {
            net,
            width: options.width,
            batch_norm: options.batch_norm,
        }),
        _ => ModelConfig::Cnn(net),
    }
}

/// Trains `kind` as `options` say and measures it, on a pool of `options.threads`
/// compute threads as a job would.
pub fn bench(options: &BenchOptions, kind: &str) -> Result<Figures> {
    let threads = u32::try_from(options.threads).context("too many threads")?;
    crate::train::with_threads(threads, || Ok(measure(options, kind)))?
}

fn measure(options: &BenchOptions, kind: &str) -> Result<Figures> {
    let (train, test) = data::load_split(&options.data).with_context(|| {
        format!(
            "cannot load the benchmark data from {}",
            options.data.display()
        )
    })?;
    let train = first(&train, options.images);
    let config = model_config(options, kind);
    let built = models::build_net(
        &config,
        models::NetShape::grey(train.rows, train.cols),
        options.seed,
    )?;
    let (images, labels) = net::to_tensors(&train, None)?;
    let mut trainer = net::Trainer::new(built.module.as_ref(), built.trainable(false), &built.net)?;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut order: Vec<u32> = (0..train.len() as u32).collect();
    let mut warmup = options.warmup_batches;
    let (mut n_timed, mut loss_sum) = (0usize, 0.0);
    let (mut flops0, mut ticks0, mut wall0) = (nn::flops::done(), cpu_ticks(), Instant::now());
    for _ in 0..options.epochs {
        order.shuffle(&mut rng);
        loss_sum = 0.0;
        for batch in order.chunks(options.batch as usize) {
            loss_sum += trainer.step(&images, &labels, batch)? * batch.len() as f64;
            if warmup > 0 {
                warmup -= 1;
                if warmup == 0 {
                    trainer.times = net::StepTimes::default();
                    (flops0, ticks0, wall0) = (nn::flops::done(), cpu_ticks(), Instant::now());
                }
                continue;
            }
            n_timed += batch.len();
        }
    }
    let wall_s = wall0.elapsed().as_secs_f64();
    let cpu_s = (cpu_ticks() - ticks0) as f64 / procfs::clock_ticks_per_s();
    let flops = (nn::flops::done() - flops0) as f64;
    let times = trainer.times;
    let accuracy = if options.test_images > 0 {
        let test = first(&test, options.test_images);
        let (x, y) = net::to_tensors(&test, None)?;
        Some(net::evaluate(built.module.as_ref(), &x, &y)?)
    } else {
        None
    };
    let threads = nn::par::n_threads();
    let peak = peak::measure(threads);
    let memory = procfs::process_memory(Path::new("/proc"), std::process::id())?;
    let gflops = flops / times.total_s() / 1e9;
    Ok(Figures {
        solver: net::SOLVER.to_string(),
        model: kind.to_string(),
        config: config.label(),
        threads,
        batch: options.batch,
        images: n_timed,
        images_per_s: n_timed as f64 / times.total_s(),
        forward_s: Some(times.forward_s),
        backward_s: Some(times.backward_s),
        optimizer_s: Some(times.optimizer_s),
        train_s: times.total_s(),
        gflops: Some(gflops),
        peak_gflops: peak.gflops,
        peak_method: format!("FMA-only loop, {}, {threads} thread(s)", peak.isa),
        fraction_of_peak: Some(gflops / peak.gflops),
        peak_rss_mb: memory.peak_rss_bytes as f64 / (1024.0 * 1024.0),
        cpu_per_wall: cpu_s / wall_s,
        loss: Some(loss_sum / train.len() as f64),
        accuracy,
    })
}

/// The first `n` images of a split (all of them when `n` is 0 or larger).
fn first(split: &Dataset, n: usize) -> Dataset {
    let n = if n == 0 {
        split.len()
    } else {
        n.min(split.len())
    };
    split.select(&(0..n).collect::<Vec<_>>())
}

fn cpu_ticks() -> u64 {
    procfs::process_ticks(Path::new("/proc"), std::process::id()).unwrap_or(0)
}
