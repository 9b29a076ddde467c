//! The direct convolution kernels alone on the layer shapes of the three nets: forward
//! and weight-gradient GFLOP/s (useful FLOPs only), to choose tiles and kernels.
//!
//!     cargo run --release -p ecobench-worker --example kernels

use std::time::Instant;

use ecobench_worker::nn::conv::{Geom, direct};

fn main() {
    // (c_in, side, c_out, kernel, padding)
    let shapes = [
        (1, 28, 16, 3, 1),
        (16, 14, 32, 3, 1),
        (32, 7, 64, 3, 1),
        (60, 28, 12, 3, 1),
        (32, 16, 32, 3, 1),
        (64, 8, 64, 3, 1),
        (128, 4, 128, 3, 1),
        (72, 28, 36, 1, 0),
    ];
    for (c_in, side, c_out, k, p) in shapes {
        let g = Geom::new((c_in, side, side), c_out, k, 1, p).expect("a valid shape");
        let plan = direct::Plan::new(&g);
        let il = &plan.input;
        let tile = direct::forward_tile(c_out);
        let w: Vec<f32> = (0..c_out * g.k_dim())
            .map(|i| (i as f32 * 0.01).sin())
            .collect();
        let packed = direct::pack_weights(&w, c_out, tile);
        let x: Vec<f32> = (0..g.in_len()).map(|i| (i as f32 * 0.03).cos()).collect();
        let mut xp = vec![0.0; il.len()];
        il.fill(&x, &mut xp, &direct::Pre::Identity);
        let mut z = vec![0.0; direct::padded_rows(c_out, tile) * il.nq];
        let reps = 2000;
        let started = Instant::now();
        for _ in 0..reps {
            direct::forward(&xp, &il.offsets, &packed, tile, il.nq, &mut z);
        }
        let forward_s = started.elapsed().as_secs_f64() / reps as f64;
        let n = 8;
        let xs: Vec<f32> = xp.iter().cycle().take(n * xp.len()).copied().collect();
        let dz: Vec<f32> = z.iter().cycle().take(n * z.len()).copied().collect();
        let kernel = direct::GradKernel::choose(c_out, g.k_dim());
        let mut dw = vec![0.0; kernel.len(c_out, g.k_dim())];
        let started = Instant::now();
        for _ in 0..reps / n {
            direct::weight_grad(
                kernel,
                &xs,
                xp.len(),
                &il.offsets,
                &dz,
                z.len(),
                il.nq,
                n,
                c_out,
                &mut dw,
            );
        }
        let dw_s = started.elapsed().as_secs_f64() / (reps / n * n) as f64;
        let flops = 2.0 * (c_out * g.k_dim() * g.out_hw()) as f64;
        println!(
            "{c_in:>3}×{side}×{side} → {c_out:>3}, {k}×{k}: {:.0} % useful pixels; forward {:.1} µs = {:.0} GFLOP/s; \
             weight gradient {:.1} µs = {:.0} GFLOP/s",
            100.0 * g.out_hw() as f64 / il.nq as f64,
            forward_s * 1e6,
            flops / forward_s / 1e9,
            dw_s * 1e6,
            flops / dw_s / 1e9,
        );
    }
}
