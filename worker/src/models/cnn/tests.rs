//! Tests of the CNN: shapes, seeded initialisation, learning on a tiny synthetic set.

use super::*;
use crate::models::testdata::synthetic_split;

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
        let model = Cnn::new(vb, side, side).unwrap();
        let x = Tensor::zeros((3, 1, side, side), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(model.forward(&x).unwrap().dims(), &[3, N_CLASSES]);
    }
}

#[test]
fn seeded_init_is_reproducible_and_bounded() {
    let weights = |seed| {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        Cnn::new(vb, 8, 8).unwrap();
        init_weights(&varmap, seed).unwrap();
        let vars = varmap.data().lock().unwrap();
        let w = vars["conv2.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = vars["conv2.bias"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        (w, b)
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
    let report = train_cnn(&train, &test, &config(2), 7, &mut |m| seen.push(m.clone())).unwrap();
    assert!(report.accuracy > 0.3, "accuracy {}", report.accuracy);
    assert_eq!(seen, report.epochs);
    assert_eq!(seen.iter().map(|m| m.epoch).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!((report.n_train, report.n_test), (300, 100));
    assert!(report.train_s > 0.0 && report.samples_per_s > 0.0);
    let again = train_cnn(&train, &test, &config(2), 7, &mut |_| {}).unwrap();
    assert_eq!(again.accuracy, report.accuracy);
    assert_eq!(again.epochs[1].loss, report.epochs[1].loss);
}

#[test]
fn images_smaller_than_8x8_are_refused() {
    let tiny = synthetic_split(20, 7, 1);
    let err = train_cnn(&tiny, &tiny, &config(1), 0, &mut |_| {}).unwrap_err();
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
    let err = train_cnn(&split, &split, &bad, 0, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("batch_size"), "{err}");
}
