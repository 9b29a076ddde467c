//! Raw access to the f32 data of CPU tensors for the ops' kernels.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Device, Layout, Result, Shape, Storage, Tensor, bail};

/// The elements of a contiguous f32 CPU storage as a slice (offset applied).
pub fn slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{op}: expected f32 data, got {:?}", storage.dtype())
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: the input is not contiguous; call .contiguous() first"),
    }
}

/// The elements of a contiguous u32 CPU storage as a slice (offset applied).
pub fn slice_u32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [u32]> {
    let CpuStorage::U32(data) = storage else {
        bail!("{op}: expected u32 labels, got {:?}", storage.dtype())
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: the labels are not contiguous"),
    }
}

/// Runs `f` on the f32 elements of `tensor` (made contiguous first if it is not).
pub fn with_slice<R>(tensor: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let tensor = tensor.contiguous()?;
    let (storage, layout) = tensor.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        bail!("{op}: runs on the CPU only")
    };
    Ok(f(slice(cpu, layout, op)?))
}

/// Copies the f32 elements of `tensor` into a vector.
pub fn to_vec(tensor: &Tensor, op: &str) -> Result<Vec<f32>> {
    with_slice(tensor, op, <[f32]>::to_vec)
}

/// A CPU tensor owning `data`, of the given shape.
pub fn tensor(data: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
    Tensor::from_vec(data, shape.into(), &Device::Cpu)
}

/// Whether a gradient should flow into `t`: it is a variable or computed from one.
pub fn needs_grad(t: &Tensor) -> bool {
    t.track_op()
}

/// Four dimensions of an NCHW tensor's layout, or an error naming the op.
pub fn dims4(layout: &Layout, op: &str) -> Result<(usize, usize, usize, usize)> {
    match layout.shape().dims() {
        &[n, c, h, w] => Ok((n, c, h, w)),
        dims => {
            bail!("{op}: expected a (batch, channels, height, width) input, got shape {dims:?}")
        }
    }
}

/// The f32 elements of a locked storage (see `Tensor::storage_and_layout`), which must be
/// contiguous and on the CPU.
pub fn storage_slice<'a>(storage: &'a Storage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    match storage {
        Storage::Cpu(cpu) => slice(cpu, layout, op),
        _ => bail!("{op}: runs on the CPU only"),
    }
}
