//! Tests of saving and loading pretrained weights, and of fine-tuning from them.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use ecobench_shared::{ModelConfig, NetConfig, VggConfig};

use super::*;
use crate::models::testdata::synthetic_split;
use crate::models::{NetShape, Weights, build_net, train_net};

fn vgg(batch_norm: bool) -> ModelConfig {
    ModelConfig::Vgg(VggConfig {
        net: NetConfig {
            n_epochs: 1,
            batch_size: 16,
            learning_rate: 0.003,
        },
        width: 0.125,
        batch_norm,
    })
}

fn values(built: &BuiltNet) -> HashMap<String, Vec<f32>> {
    let vars = built.varmap.data().lock().unwrap();
    vars.iter()
        .map(|(name, var)| {
            let flat = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (name.clone(), flat)
        })
        .collect()
}

#[test]
fn saved_weights_load_into_every_variable_but_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let config = vgg(true);
    // A net for other classes (5 → 10) from another seed.
    let shape = NetShape {
        n_classes: 10,
        ..NetShape::grey(12, 12)
    };
    let source = build_net(
        &config,
        NetShape {
            n_classes: 5,
            ..shape
        },
        1,
    )
    .unwrap();
    save(&source, &path).unwrap();
    let target = build_net(&config, shape, 2).unwrap();
    load(&target, &config, &path).unwrap();
    let (from, to) = (values(&source), values(&target));
    for (name, value) in &to {
        if name.starts_with("classifier.") {
            assert_ne!(
                from[name].len(),
                value.len(),
                "{name}: the head has 10 classes"
            );
        } else {
            assert_eq!(&from[name], value, "{name}");
        }
    }
    assert!(to.contains_key("features.0.weight") && to.contains_key("features.1.running_mean"));
}

#[test]
fn a_missing_tensor_or_a_wrong_shape_names_the_tensor_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let narrow = build_net(&vgg(true), NetShape::grey(12, 12), 1).unwrap();
    save(&narrow, &path).unwrap();
    let wide = ModelConfig::Vgg(VggConfig {
        width: 0.25,
        ..match vgg(true) {
            ModelConfig::Vgg(v) => v,
            _ => unreachable!(),
        }
    });
    let target = build_net(&wide, NetShape::grey(12, 12), 1).unwrap();
    let err = load(&target, &wide, &path).unwrap_err().to_string();
    assert!(
        err.contains("`features.0.weight` has shape [8, 1, 3, 3], the model expects [16, 1, 3, 3]"),
        "{err}"
    );
    assert!(
        !crate::models::ModelError::Weights {
            path: String::new(),
            reason: err
        }
        .is_retryable()
    );
    let no_bn = vgg(false);
    let target = build_net(&no_bn, NetShape::grey(12, 12), 1).unwrap();
    let err = load(&target, &no_bn, &path).unwrap_err().to_string();
    assert!(
        err.contains("tensor `features.0.bias` (shape [8]) is missing"),
        "{err}"
    );
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not safetensors").unwrap();
    let err = load(&target, &no_bn, &garbage).unwrap_err().to_string();
    assert!(
        err.contains("garbage.safetensors") && err.contains("not a readable"),
        "{err}"
    );
}

/// What a user who converted torchvision's `vgg11_bn` has: 3-channel first convolution,
/// convolution biases before the norms, its own classifier, `num_batches_tracked`.
#[test]
fn torchvision_vgg11_bn_weights_load_with_the_first_conv_summed_and_biases_folded() {
    let config = vgg(true);
    let target = build_net(&config, NetShape::grey(12, 12), 1).unwrap();
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let own = values(&target);
    let dims =
        |name: &str| -> Vec<usize> { target.varmap.data().lock().unwrap()[name].dims().to_vec() };
    for name in own.keys().filter(|n| !n.starts_with("classifier.")) {
        let mut shape = dims(name);
        if name == "features.0.weight" {
            shape[1] = 3;
        }
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.1).collect();
        tensors.insert(
            name.clone(),
            Tensor::from_vec(values, shape, &Device::Cpu).unwrap(),
        );
    }
    for n in crate::models::vgg::torchvision_indices(true) {
        let c = dims(&format!("features.{n}.weight"))[0];
        tensors.insert(
            format!("features.{n}.bias"),
            Tensor::full(0.5f32, c, &Device::Cpu).unwrap(),
        );
        tensors.insert(
            format!("features.{}.num_batches_tracked", n + 1),
            Tensor::new(&[3i64], &Device::Cpu).unwrap(),
        );
    }
    tensors.insert(
        "classifier.0.weight".into(),
        Tensor::zeros((4096, 512), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vgg11_bn.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    load(&target, &config, &path).unwrap();
    let loaded = values(&target);
    let rgb = tensors["features.0.weight"].clone();
    let summed = rgb
        .sum_keepdim(1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(loaded["features.0.weight"], summed);
    let mean = tensors["features.1.running_mean"].to_vec1::<f32>().unwrap();
    let folded: Vec<f32> = mean.iter().map(|m| m - 0.5).collect();
    assert_eq!(loaded["features.1.running_mean"], folded);
}

#[test]
fn a_frozen_fine_tune_trains_the_head_alone_and_learns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pre.safetensors");
    let train = synthetic_split(800, 12, 1);
    let test = synthetic_split(100, 12, 2);
    let config = vgg(true);
    let pretrained = train_net(
        &config,
        &train,
        &test,
        10,
        3,
        Weights {
            save: Some(&path),
            ..Weights::default()
        },
        &mut |_| {},
    )
    .unwrap();
    assert!(path.is_file());
    let frozen = Weights {
        init: Some(&path),
        freeze: true,
        save: Some(&dir.path().join("after.safetensors")),
        normalize: None,
    };
    let tuned = train_net(&config, &train, &test, 10, 4, frozen, &mut |_| {}).unwrap();
    assert!(
        tuned.accuracy > 0.3,
        "frozen features still serve: {}",
        tuned.accuracy
    );
    let before = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let after =
        candle_core::safetensors::load(dir.path().join("after.safetensors"), &Device::Cpu).unwrap();
    for (name, value) in &after {
        let same = value.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            == before[name]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
        assert_eq!(same, !name.starts_with("classifier."), "{name}");
    }
    assert!(pretrained.accuracy > 0.3);
}
