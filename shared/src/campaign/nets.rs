//! The nets' axes: the training settings every net shares (`epochs`, `batch_size`,
//! `learning_rate`, from `[defaults]` unless the `[[model]]` sets them) and the keys of
//! each net kind, counted and expanded into configurations.

use super::{Axis, RawDefaults, RawModel};
use crate::job::{DensenetConfig, ModelConfig, NetConfig, VggConfig};

/// DenseNet's growth rate when the campaign does not set it.
pub const DEFAULT_GROWTH_RATE: u32 = 12;
/// DenseNet's dense blocks when unset.
pub const DEFAULT_N_BLOCKS: u32 = 3;
/// DenseNet's layers per block when unset.
pub const DEFAULT_LAYERS_PER_BLOCK: u32 = 4;
/// VGG's width multiplier when unset.
pub const DEFAULT_WIDTH: f64 = 0.25;

/// The values of an optional axis, or the default alone.
fn or_default<T: Clone>(axis: &Option<Axis<T>>, default: T) -> Vec<T> {
    axis.as_ref().map_or_else(|| vec![default], Axis::values)
}

/// Every training setting of a net table, in axis order.
fn settings(model: &RawModel, d: &RawDefaults) -> Vec<NetConfig> {
    let mut nets = Vec::new();
    for n_epochs in model.epochs.as_ref().unwrap_or(&d.epochs).values() {
        for batch_size in model.batch_size.as_ref().unwrap_or(&d.batch_size).values() {
            let rates = model
                .learning_rate
                .as_ref()
                .unwrap_or(&d.learning_rate)
                .values();
            for learning_rate in rates {
                nets.push(NetConfig {
                    n_epochs,
                    batch_size,
                    learning_rate,
                });
            }
        }
    }
    nets
}

/// How many configurations a net table expands to, without expanding it.
pub(super) fn count(model: &RawModel, d: &RawDefaults) -> usize {
    let len = |n: Option<usize>| n.unwrap_or(1);
    let shared = model.epochs.as_ref().unwrap_or(&d.epochs).values().len()
        * model
            .batch_size
            .as_ref()
            .unwrap_or(&d.batch_size)
            .values()
            .len()
        * model
            .learning_rate
            .as_ref()
            .unwrap_or(&d.learning_rate)
            .values()
            .len();
    let own = match model.kind.as_str() {
        "densenet" => {
            len(model.growth_rate.as_ref().map(|a| a.values().len()))
                * len(model.n_blocks.as_ref().map(|a| a.values().len()))
                * len(model.layers_per_block.as_ref().map(|a| a.values().len()))
        }
        "vgg" => {
            len(model.width.as_ref().map(|a| a.values().len()))
                * len(model.batch_norm.as_ref().map(|a| a.values().len()))
        }
        _ => 1,
    };
    shared * own
}

/// Every configuration of a net table.
pub(super) fn expand(model: &RawModel, d: &RawDefaults) -> Vec<ModelConfig> {
    let mut configs = Vec::new();
    for net in settings(model, d) {
        match model.kind.as_str() {
            "densenet" => {
                for growth_rate in or_default(&model.growth_rate, DEFAULT_GROWTH_RATE) {
                    for n_blocks in or_default(&model.n_blocks, DEFAULT_N_BLOCKS) {
                        for layers in or_default(&model.layers_per_block, DEFAULT_LAYERS_PER_BLOCK)
                        {
                            configs.push(ModelConfig::Densenet(DensenetConfig {
                                net: net.clone(),
                                growth_rate,
                                n_blocks,
                                layers_per_block: layers,
                            }));
                        }
                    }
                }
            }
            "vgg" => {
                for width in or_default(&model.width, DEFAULT_WIDTH) {
                    for batch_norm in or_default(&model.batch_norm, true) {
                        configs.push(ModelConfig::Vgg(VggConfig {
                            net: net.clone(),
                            width,
                            batch_norm,
                        }));
                    }
                }
            }
            _ => configs.push(ModelConfig::Cnn(net)),
        }
    }
    configs
}
