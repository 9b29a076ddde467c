//! Pretrained weights in and out: safetensors files named as the nets name their
//! variables (VGG as torchvision's `vgg11` / `vgg11_bn`).
//!
//! Loading sets every variable but the head's from the file. It accepts what a user who
//! converted torchvision weights has: extra tensors (torchvision's classifier,
//! `num_batches_tracked`) are ignored; a first convolution over 3 input channels loads
//! into a 1-channel one as the sum over its input channels (the same as feeding it the
//! grey image three times); `vgg11_bn`'s convolution biases, which a batch norm follows,
//! are folded into that norm's running mean. A missing tensor or a wrong shape is an
//! error naming the tensor, the expected and the found shape.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use ecobench_shared::ModelConfig;

use super::{BuiltNet, ModelError, vgg};

/// Writes every variable of the net to `path` (safetensors), through a temporary file
/// renamed into place.
pub fn save(built: &BuiltNet, path: &Path) -> Result<(), ModelError> {
    let tmp = path.with_extension("safetensors.tmp");
    built.varmap.save(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|err| ModelError::Weights {
        path: path.display().to_string(),
        reason: format!("cannot move the saved weights into place: {err}"),
    })
}

/// Sets every variable of the net but the head's from the safetensors file at `path`.
pub fn load(built: &BuiltNet, config: &ModelConfig, path: &Path) -> Result<(), ModelError> {
    let mut tensors =
        candle_core::safetensors::load(path, &Device::Cpu).map_err(|err| ModelError::Weights {
            path: path.display().to_string(),
            reason: format!("not a readable safetensors file: {err}"),
        })?;
    if let ModelConfig::Vgg(v) = config
        && v.batch_norm
    {
        fold_conv_biases(&mut tensors)?;
    }
    let head = format!("{}.", built.module.head());
    let vars = built
        .varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("the variable map's lock is poisoned".into()))?;
    let mut names: Vec<&String> = vars.keys().filter(|n| !n.starts_with(&head)).collect();
    names.sort();
    for name in names {
        let var = &vars[name];
        let Some(found) = tensors.get(name.as_str()) else {
            return Err(ModelError::Weights {
                path: path.display().to_string(),
                reason: format!(
                    "tensor `{name}` (shape {:?}) is missing: the file does not hold this \
                     model's weights (check its kind, width and batch_norm)",
                    var.dims()
                ),
            });
        };
        let value = fit_shape(name, found.to_dtype(DType::F32)?, var.dims(), path)?;
        var.set(&value)?;
    }
    Ok(())
}

/// `tensor` in the shape `expected`: as it is, or a 3-channel first convolution summed
/// over its input channels for a 1-channel net.
fn fit_shape(
    name: &str,
    tensor: Tensor,
    expected: &[usize],
    path: &Path,
) -> Result<Tensor, ModelError> {
    let found = tensor.dims().to_vec();
    if found == expected {
        return Ok(tensor);
    }
    let grey_from_rgb = found.len() == 4
        && expected.len() == 4
        && found[1] == 3
        && expected[1] == 1
        && (found[0], found[2], found[3]) == (expected[0], expected[2], expected[3]);
    if grey_from_rgb {
        return Ok(tensor.sum_keepdim(1)?);
    }
    Err(ModelError::Weights {
        path: path.display().to_string(),
        reason: format!(
            "tensor `{name}` has shape {found:?}, the model expects {expected:?}: the file \
             holds another configuration (check width and batch_norm)"
        ),
    })
}

/// torchvision's `vgg11_bn` gives its convolutions a bias although a batch norm follows
/// them; ours have none. The bias only shifts the norm's input, so it moves into the
/// running mean (`mean − bias`), which is all it changes in evaluation; in training the
/// batch statistics absorb it.
fn fold_conv_biases(tensors: &mut HashMap<String, Tensor>) -> Result<(), ModelError> {
    for n in vgg::torchvision_indices(true) {
        let bias_name = format!("features.{n}.bias");
        let mean_name = format!("features.{}.running_mean", n + 1);
        if let (Some(bias), Some(mean)) = (tensors.get(&bias_name), tensors.get(&mean_name)) {
            let folded = (mean.to_dtype(DType::F32)? - bias.to_dtype(DType::F32)?)?;
            tensors.insert(mean_name, folded);
            tensors.remove(&bias_name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
