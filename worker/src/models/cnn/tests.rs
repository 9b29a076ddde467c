//! Tests of the nets: shapes, seeded initialisation, learning on a tiny synthetic set.

use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use ecobench_shared::{DensenetConfig, ModelConfig, NetConfig, VggConfig};

use super::*;
use crate::models::testdata::synthetic_split;
use crate::models::{NetShape, Weights, build_net, train_net};

fn config(n_epochs: u32) -> NetConfig {
    NetConfig {
        n_epochs,
        batch_size: 16,
        learning_rate: 0.003,
    }
}

#[test]
fn output_has_ten_logits_for_8x8_and_28x28() {
    for side in [8, 28, 9] {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = Cnn::new(vb, NetShape::grey(side, side)).unwrap();
        let x = Tensor::zeros((3, 1, side, side), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(model.forward_t(&x, true).unwrap().dims(), &[3, 10]);
    }
}

#[test]
fn seeded_init_is_reproducible_and_bounded() {
    let weights = |seed| {
        let built = build_net(&ModelConfig::Cnn(config(1)), NetShape::grey(8, 8), seed).unwrap();
        let vars = built.varmap.data().lock().unwrap();
        let flat = |name: &str| vars[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        (flat("conv2.weight"), flat("conv2.bias"))
    };
    let (w, b) = weights(5);
    assert_eq!((w.clone(), b.clone()), weights(5));
    assert_ne!(w, weights(6).0);
    let bound = 1.0 / ((CHANNELS[0] * 9) as f32).sqrt();
    assert!(w.iter().chain(&b).all(|v| v.abs() <= bound));
    assert!(w.iter().any(|v| v.abs() > bound / 2.0));
}

#[test]
fn learns_a_tiny_synthetic_set_reproducibly() {
    let train = synthetic_split(300, 8, 1);
    let test = synthetic_split(100, 8, 2);
    let mut seen = Vec::new();
    let cnn = ModelConfig::Cnn(config(2));
    let report = train_net(&cnn, &train, &test, 10, 7, Weights::default(), &mut |m| {
        seen.push(m.clone())
    })
    .unwrap();
    assert!(report.accuracy > 0.3, "accuracy {}", report.accuracy);
    assert_eq!(seen, report.epochs);
    assert_eq!(seen.iter().map(|m| m.epoch).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!((report.n_train, report.n_test), (300, 100));
    assert!(report.train_s > 0.0 && report.samples_per_s > 0.0);
    let again = train_net(&cnn, &train, &test, 10, 7, Weights::default(), &mut |_| {}).unwrap();
    assert_eq!(again.accuracy, report.accuracy);
    assert_eq!(again.epochs[1].loss, report.epochs[1].loss);
}

/// One epoch on tiny data, well above chance (0.1), for the two other nets; batch norm's
/// running statistics move and are used in evaluation; the same seed repeats exactly.
#[test]
fn densenet_and_vgg_learn_a_tiny_set_in_one_epoch() {
    let train = synthetic_split(800, 12, 1);
    let test = synthetic_split(100, 12, 2);
    let net = NetConfig {
        n_epochs: 1,
        batch_size: 16,
        learning_rate: 0.003,
    };
    let models = [
        ModelConfig::Densenet(DensenetConfig {
            net: net.clone(),
            growth_rate: 6,
            n_blocks: 2,
            layers_per_block: 2,
        }),
        ModelConfig::Vgg(VggConfig {
            net: net.clone(),
            width: 0.125,
            batch_norm: true,
        }),
    ];
    for model in models {
        let report = train_net(
            &model,
            &train,
            &test,
            10,
            3,
            Weights::default(),
            &mut |_| {},
        )
        .unwrap();
        assert!(
            report.accuracy > 0.3,
            "{}: accuracy {}",
            model.label(),
            report.accuracy
        );
        let again = train_net(
            &model,
            &train,
            &test,
            10,
            3,
            Weights::default(),
            &mut |_| {},
        )
        .unwrap();
        let figures = |r: &ecobench_shared::TrainReport| (r.accuracy, r.epochs[0].loss);
        assert_eq!(figures(&again), figures(&report), "{}", model.label());
    }
}

/// Without batch norm, VGG from PyTorch's default initialisation needs a smaller step and
/// a few epochs before it moves (as in PyTorch).
#[test]
fn vgg_without_batch_norm_learns_in_three_epochs() {
    let train = synthetic_split(800, 12, 1);
    let test = synthetic_split(100, 12, 2);
    let net = NetConfig {
        n_epochs: 3,
        batch_size: 16,
        learning_rate: 0.001,
    };
    let model = ModelConfig::Vgg(VggConfig {
        net,
        width: 0.125,
        batch_norm: false,
    });
    let report = train_net(
        &model,
        &train,
        &test,
        10,
        3,
        Weights::default(),
        &mut |_| {},
    )
    .unwrap();
    assert!(report.accuracy > 0.3, "accuracy {}", report.accuracy);
}

#[test]
fn images_smaller_than_8x8_are_refused() {
    let tiny = synthetic_split(20, 7, 1);
    let err = train_net(
        &ModelConfig::Cnn(config(1)),
        &tiny,
        &tiny,
        10,
        0,
        Weights::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("at least 8×8"), "{err}");
}

#[test]
fn zero_batch_size_is_refused() {
    let split = synthetic_split(20, 8, 1);
    let bad = NetConfig {
        batch_size: 0,
        ..config(1)
    };
    let err = train_net(
        &ModelConfig::Cnn(bad),
        &split,
        &split,
        10,
        0,
        Weights::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("batch_size"), "{err}");
}

/// `[transform] normalize`: the inputs are standardised with the training split's
/// statistics (mean 0, deviation 1 on that split) and the net still learns.
#[test]
fn normalized_inputs_are_standardised_and_still_learn() {
    let train = synthetic_split(300, 8, 1);
    let test = synthetic_split(100, 8, 2);
    let stats = crate::data::Normalization::of(&train);
    let (x, _) = crate::models::net::to_tensors(&train, Some(&stats)).unwrap();
    let values = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!(mean.abs() < 1e-4, "mean {mean}");
    assert!((var.sqrt() - 1.0).abs() < 1e-3, "std {}", var.sqrt());
    let (plain, _) = crate::models::net::to_tensors(&train, None).unwrap();
    let plain = plain.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(plain.iter().all(|v| (0.0..=1.0).contains(v)));

    let weights = Weights {
        normalize: Some(&stats),
        ..Weights::default()
    };
    let report = train_net(
        &ModelConfig::Cnn(config(2)),
        &train,
        &test,
        10,
        7,
        weights,
        &mut |_| {},
    )
    .unwrap();
    assert!(report.accuracy > 0.3, "accuracy {}", report.accuracy);
    let unnormalised = train_net(
        &ModelConfig::Cnn(config(2)),
        &train,
        &test,
        10,
        7,
        Weights::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_ne!(
        report.epochs[0].loss, unnormalised.epochs[0].loss,
        "normalize changes what the net sees"
    );
}

/// A learning rate that makes the loss blow up stops training at the first non-finite
/// loss, naming the epoch and batch, and is not worth a retry.
#[test]
fn a_diverging_net_fails_naming_epoch_and_batch_without_retry() {
    let train = synthetic_split(300, 8, 1);
    let test = synthetic_split(100, 8, 2);
    let wild = NetConfig {
        n_epochs: 3,
        batch_size: 16,
        learning_rate: 1e6,
    };
    let err = train_net(
        &ModelConfig::Cnn(wild),
        &train,
        &test,
        10,
        7,
        Weights::default(),
        &mut |_| {},
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, crate::models::ModelError::Diverged { .. }),
        "{message}"
    );
    assert!(message.starts_with("diverged at epoch "), "{message}");
    assert!(message.contains("lower the learning_rate"), "{message}");
    assert!(!err.is_retryable());
}
