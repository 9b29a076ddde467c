//! Single-precision matrix products through the `gemm` crate (the one candle uses),
//! behind a safe interface: strided matrix views whose bounds are checked once per call.
//!
//! Every call runs on the calling thread; the ops split their batch over threads instead
//! (`par`), which measured faster than `gemm`'s own threading on these small shapes.

/// A read-only matrix view: element (r, c) is `data[r * row_stride + c * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows × cols` matrix (rows contiguous, `cols` apart).
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// A matrix with explicit strides.
    pub fn strided(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * row_stride + (cols - 1) * col_stride;
            assert!(
                last < data.len(),
                "matrix view {rows}×{cols} (strides {row_stride}, {col_stride}) overruns {} elements",
                data.len()
            );
        }
        Mat {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The transpose (a view of the same data).
    pub fn t(self) -> Self {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

/// `dst = a · b` (or `dst += a · b` when `accumulate`), `dst` row-major with `a.rows`
/// rows of `b.cols` elements.
pub fn matmul(dst: &mut [f32], accumulate: bool, a: Mat<'_>, b: Mat<'_>) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(
        b.rows, k,
        "inner dimensions differ: {m}×{k} · {}×{n}",
        b.rows
    );
    assert!(dst.len() >= m * n, "destination too small for {m}×{n}");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: the views' bounds were checked when they were made, `dst` holds m × n
    // elements, and `dst` (a unique borrow) overlaps neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: Mat<'_>, b: Mat<'_>) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for r in 0..a.rows {
            for c in 0..b.cols {
                out[r * b.cols + c] = (0..a.cols)
                    .map(|i| {
                        a.data[r * a.row_stride + i * a.col_stride]
                            * b.data[i * b.row_stride + c * b.col_stride]
                    })
                    .sum();
            }
        }
        out
    }

    #[test]
    fn products_of_views_and_transposes_match_a_naive_loop() {
        let a: Vec<f32> = (0..15).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..20).map(|i| (i as f32 * 0.91).cos()).collect();
        let a = Mat::rows(&a, 3, 5);
        let b = Mat::rows(&b, 5, 4);
        let mut out = vec![0.0; 12];
        matmul(&mut out, false, a, b);
        let expected = naive(a, b);
        assert!(out.iter().zip(&expected).all(|(x, y)| (x - y).abs() < 1e-5));
        // (bᵀ · aᵀ) = (a · b)ᵀ, accumulated onto ones.
        let mut out_t = vec![1.0; 12];
        matmul(&mut out_t, true, b.t(), a.t());
        for r in 0..3 {
            for c in 0..4 {
                assert!((out_t[c * 3 + r] - 1.0 - expected[r * 4 + c]).abs() < 1e-5);
            }
        }
    }

    #[test]
    #[should_panic(expected = "overruns")]
    fn a_view_beyond_its_data_is_refused() {
        let data = [0.0; 5];
        let _ = Mat::rows(&data, 2, 3);
    }
}
