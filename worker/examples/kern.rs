use ecobench_worker::nn::conv::{Geom, direct};
use std::time::Instant;

fn main() {
    // (c_in, h, c_out, k, p)
    let shapes = [
        (1usize, 28usize, 16usize, 3usize, 1usize),
        (16, 14, 32, 3, 1),
        (32, 7, 64, 3, 1),
        (60, 28, 12, 3, 1),
        (32, 16, 32, 3, 1),
        (64, 8, 64, 3, 1),
        (128, 4, 128, 3, 1),
        (72, 28, 36, 1, 0),
    ];
    for &(ci, h, co, k, p) in &shapes {
        let g = Geom::new((ci, h, h), co, k, 1, p).unwrap();
        let plan = direct::Plan::new(&g);
        let tile = direct::forward_tile(co);
        let w: Vec<f32> = (0..co * g.k_dim())
            .map(|i| (i as f32 * 0.01).sin())
            .collect();
        let packed = direct::pack_weights(&w, co, tile);
        let x: Vec<f32> = (0..g.in_len()).map(|i| (i as f32 * 0.03).cos()).collect();
        let mut xp = vec![0.0; plan.input.len()];
        plan.input.fill(&x, &mut xp, &direct::Pre::Identity);
        let rows = direct::padded_rows(co, tile).max(co.div_ceil(4) * 4);
        let mut z = vec![0.0; rows * plan.input.nq];
        let reps = 2000;
        let t = Instant::now();
        for _ in 0..reps {
            direct::forward(
                &xp,
                &plan.input.offsets,
                &packed,
                tile,
                plan.input.nq,
                &mut z,
            );
        }
        let fwd = t.elapsed().as_secs_f64() / reps as f64;
        let useful = 2.0 * (co * g.k_dim() * g.out_hw()) as f64;
        // dW over 8 images
        let n = 8;
        let xs: Vec<f32> = xp.iter().cycle().take(n * xp.len()).copied().collect();
        let dz: Vec<f32> = z.iter().cycle().take(n * z.len()).copied().collect();
        let mut dw = vec![0.0; co * g.k_dim()];
        let t = Instant::now();
        for _ in 0..reps / 8 {
            direct::weight_grad(
                &xs,
                xp.len(),
                &plan.input.offsets,
                &dz,
                z.len(),
                plan.input.nq,
                n,
                co,
                &mut dw,
            );
        }
        let dwt = t.elapsed().as_secs_f64() / (reps / 8 * n) as f64;
        println!(
            "{ci:>3}x{h:>2}x{h:<2} -> {co:>3} k{k}: nq {} ({:.0}% useful) tile {:?}: fwd {:.1} µs = {:.0} GFLOP/s useful; dW {:.1} µs/img = {:.0} GFLOP/s",
            plan.input.nq,
            100.0 * g.out_hw() as f64 / plan.input.nq as f64,
            tile,
            fwd * 1e6,
            useful / fwd / 1e9,
            dwt * 1e6,
            useful / dwt / 1e9
        );
    }
}
