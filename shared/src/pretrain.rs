//! Transfer learning: what a job does with a net's weights (train from scratch, pretrain
//! on a source task and publish them, or fine-tune from them), and the `pretrained` values
//! of campaign files.
//!
//! `pretrained = "fashion-mnist:classes0-4"` names a source task: the classes 0 to 4 of
//! Fashion-MNIST (a range `classesA-B` or a list `classes0,3,7`). The campaign gets one
//! pretrain job per source task and model configuration; its weights become an artifact
//! (content-addressed by SHA-256) that every fine-tune of that configuration starts from.
//! `pretrained = "file:PATH.safetensors"` names weights the submitter uploads.

use serde::{Deserialize, Serialize};

/// Where a fine-tune's first weights come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum PretrainSource {
    /// A pretrain job on `classes` of `dataset` (labels renumbered 0.. in that order).
    Task {
        /// The source dataset (a known name or a folder).
        dataset: String,
        /// The source classes, ascending, without repeats.
        classes: Vec<u8>,
    },
    /// A safetensors file uploaded at submission.
    File {
        /// The path as written in the campaign file.
        path: String,
        /// SHA-256 (hex) of the file's content.
        sha256: String,
    },
}

impl PretrainSource {
    /// As written in campaign files: `fashion-mnist:classes0-4`, `file:w.safetensors`.
    pub fn label(&self) -> String {
        match self {
            PretrainSource::Task { dataset, classes } => {
                format!("{dataset}:{}", classes_label(classes))
            }
            PretrainSource::File { path, .. } => format!("file:{path}"),
        }
    }
}

/// A `pretrained` value as parsed, before a file's hash is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PretrainedValue {
    /// `<dataset>:<selection>`.
    Task {
        /// The source dataset.
        dataset: String,
        /// The selected classes, ascending.
        classes: Vec<u8>,
    },
    /// `file:PATH`.
    File(String),
}

/// Parses a `pretrained` value; the error says what is wrong and the accepted forms.
pub fn parse_pretrained(value: &str) -> Result<PretrainedValue, String> {
    if let Some(path) = value.strip_prefix("file:") {
        if path.trim().is_empty() {
            return Err("`file:` needs a path, e.g. \"file:weights/vgg11_bn.safetensors\"".into());
        }
        return Ok(PretrainedValue::File(path.to_string()));
    }
    let Some((dataset, selection)) = value.rsplit_once(':') else {
        return Err(
            "expected \"<dataset>:classes<A>-<B>\" (e.g. \"fashion-mnist:classes0-4\"), \
             \"<dataset>:classes<A>,<B>,…\" or \"file:<weights>.safetensors\""
                .into(),
        );
    };
    if dataset.trim().is_empty() {
        return Err("the source dataset before `:` is empty".into());
    }
    let classes = parse_classes(selection)?;
    Ok(PretrainedValue::Task {
        dataset: dataset.to_string(),
        classes,
    })
}

/// Parses `classes0-4` or `classes0,3,7` into ascending class numbers.
pub fn parse_classes(selection: &str) -> Result<Vec<u8>, String> {
    let Some(list) = selection.strip_prefix("classes") else {
        return Err(format!(
            "selection {selection:?} must start with `classes`: classes0-4 or classes0,3,7"
        ));
    };
    let number = |text: &str| -> Result<u8, String> {
        text.trim().parse::<u8>().map_err(|_| {
            format!("{text:?} in selection {selection:?} is not a class number (0 to 255)")
        })
    };
    let mut classes = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (number(from)?, number(to)?);
                if from > to {
                    return Err(format!(
                        "range {part:?} in selection {selection:?} runs backwards: write {to}-{from}"
                    ));
                }
                classes.extend(from..=to);
            }
            None => classes.push(number(part)?),
        }
    }
    classes.sort_unstable();
    let n = classes.len();
    classes.dedup();
    if classes.len() != n {
        return Err(format!(
            "selection {selection:?} names a class twice: list each once"
        ));
    }
    if classes.len() < 2 {
        return Err(format!(
            "selection {selection:?} has {} class: a source task needs at least two",
            classes.len()
        ));
    }
    Ok(classes)
}

/// `classes0-4` for a contiguous run, else `classes0,3,7`.
pub fn classes_label(classes: &[u8]) -> String {
    let contiguous = classes.windows(2).all(|w| w[1] == w[0] + 1);
    match (classes.first(), classes.last()) {
        (Some(first), Some(last)) if contiguous && classes.len() > 1 => {
            format!("classes{first}-{last}")
        }
        _ => format!(
            "classes{}",
            classes
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// The upstream cost a campaign declares for uploaded weights.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct DeclaredCost {
    /// Energy spent making the weights, kWh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kwh: Option<f64>,
    /// Carbon emitted making the weights, kg CO₂e.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub co2_kg: Option<f64>,
}

/// What a job does with its net's weights.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "kebab-case")]
pub enum Stage {
    /// Trains from a seeded initialisation on every class (the default).
    #[default]
    Scratch,
    /// Trains on `classes` of `dataset` (renumbered 0..) and publishes the weights as an
    /// artifact; fine-tunes start from them.
    Pretrain {
        /// The source dataset.
        dataset: String,
        /// The source classes, ascending.
        classes: Vec<u8>,
        /// Content key of the pretraining (16 hex digits): the same dataset, classes,
        /// model configuration, seed, subset sizes and threads give the same key, in any
        /// campaign, so its artifact is trained once and reused.
        key: String,
    },
    /// Starts from pretrained weights with a new head for the target classes.
    FineTune {
        /// Where the weights come from.
        source: PretrainSource,
        /// The campaign's pretrain job for a task source.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pretrain_job: Option<u32>,
        /// SHA-256 of the weights: known at submission for a file, filled in at lease
        /// time from the pretrain job's result for a task.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        artifact_sha256: Option<String>,
        /// Trains only the head; the rest of the net stays as pretrained (batch norm
        /// with its running statistics).
        #[serde(default)]
        freeze: bool,
        /// Upstream cost declared for uploaded weights.
        #[serde(default)]
        declared: DeclaredCost,
    },
}

impl Stage {
    /// Whether this is the default stage (serialisation skips it, so campaigns without
    /// transfer learning keep their content ids).
    pub fn is_scratch(&self) -> bool {
        matches!(self, Stage::Scratch)
    }

    /// Appended to a configuration's label in reports: ` pretrain=fashion-mnist:classes0-4`,
    /// ` pretrained=… frozen`, or nothing.
    pub fn label(&self) -> String {
        match self {
            Stage::Scratch => String::new(),
            Stage::Pretrain {
                dataset, classes, ..
            } => format!(" pretrain={dataset}:{}", classes_label(classes)),
            Stage::FineTune { source, freeze, .. } => format!(
                " pretrained={}{}",
                source.label(),
                if *freeze { " frozen" } else { "" }
            ),
        }
    }
}

/// VGG-11's widths; 0 marks a 2×2 max pool.
pub const VGG11_LAYOUT: [usize; 13] = [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];

/// The channels of a VGG-11 width scaled by `width` (at least 1).
pub fn vgg_scaled(channels: usize, width: f64) -> usize {
    ((channels as f64 * width).round() as usize).max(1)
}

/// torchvision's index in `features` of each convolution of [`VGG11_LAYOUT`], with batch
/// norm (`vgg11_bn`: conv, norm, ReLU) or without (`vgg11`: conv, ReLU); pools take one.
pub fn vgg_torchvision_indices(batch_norm: bool) -> Vec<usize> {
    let mut indices = Vec::new();
    let mut at = 0;
    for &width in &VGG11_LAYOUT {
        if width == 0 {
            at += 1;
        } else {
            indices.push(at);
            at += if batch_norm { 3 } else { 2 };
        }
    }
    indices
}

/// The tensors pretrained weights must hold for a VGG of `config` on `channels`-channel
/// images (name and shape, torchvision's names; the classifier, which fine-tuning
/// replaces, is not among them). A `vgg11_bn` file also holds convolution biases, which
/// the loader folds into the norms.
pub fn vgg_expected_tensors(
    config: &crate::VggConfig,
    channels: usize,
) -> Vec<(String, Vec<usize>)> {
    let mut tensors = Vec::new();
    let mut c_in = channels;
    let widths = VGG11_LAYOUT.iter().filter(|&&w| w > 0);
    for (&width, n) in widths.zip(vgg_torchvision_indices(config.batch_norm)) {
        let c_out = vgg_scaled(width, config.width);
        tensors.push((format!("features.{n}.weight"), vec![c_out, c_in, 3, 3]));
        if config.batch_norm {
            for part in ["weight", "bias", "running_mean", "running_var"] {
                tensors.push((format!("features.{}.{part}", n + 1), vec![c_out]));
            }
        } else {
            tensors.push((format!("features.{n}.bias"), vec![c_out]));
        }
        c_in = c_out;
    }
    tensors
}

/// Checks the tensors of a weights file (name → shape) against `expected`; a first
/// convolution over 3 channels is accepted for 1 (the loader sums it). The error names
/// the tensor, the expected and the found shape.
pub fn check_tensor_shapes(
    found: &std::collections::BTreeMap<String, Vec<usize>>,
    expected: &[(String, Vec<usize>)],
) -> Result<(), String> {
    for (name, shape) in expected {
        let Some(have) = found.get(name) else {
            return Err(format!(
                "tensor `{name}` (shape {shape:?}) is missing: the file does not hold this \
                 model's weights (check the campaign's width and batch_norm)"
            ));
        };
        let rgb_for_grey = have.len() == 4
            && shape.len() == 4
            && have[1] == 3
            && shape[1] == 1
            && (have[0], have[2], have[3]) == (shape[0], shape[2], shape[3]);
        if have != shape && !rgb_for_grey {
            return Err(format!(
                "tensor `{name}` has shape {have:?}, the model expects {shape:?}: the file \
                 holds another configuration (check the campaign's width and batch_norm)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vgg_tensors_are_named_as_torchvision_names_them() {
        assert_eq!(
            vgg_torchvision_indices(true),
            vec![0, 4, 8, 11, 15, 18, 22, 25]
        );
        assert_eq!(
            vgg_torchvision_indices(false),
            vec![0, 3, 6, 8, 11, 13, 16, 18]
        );
        let full = crate::VggConfig {
            net: crate::NetConfig {
                n_epochs: 1,
                batch_size: 1,
                learning_rate: 1e-3,
            },
            width: 1.0,
            batch_norm: true,
        };
        let expected = vgg_expected_tensors(&full, 1);
        assert_eq!(
            expected[0],
            ("features.0.weight".to_string(), vec![64, 1, 3, 3])
        );
        assert_eq!(expected[1], ("features.1.weight".to_string(), vec![64]));
        assert_eq!(expected.len(), 8 * 5);
        let mut found: std::collections::BTreeMap<String, Vec<usize>> =
            expected.iter().cloned().collect();
        found.insert("features.0.weight".into(), vec![64, 3, 3, 3]);
        found.insert("classifier.0.weight".into(), vec![4096, 25088]);
        assert_eq!(check_tensor_shapes(&found, &expected), Ok(()));
        found.insert("features.4.weight".into(), vec![32, 64, 3, 3]);
        let err = check_tensor_shapes(&found, &expected).unwrap_err();
        assert!(
            err.contains(
                "`features.4.weight` has shape [32, 64, 3, 3], the model expects [128, 64, 3, 3]"
            ),
            "{err}"
        );
        found.remove("features.26.running_var");
        found.insert("features.4.weight".into(), vec![128, 64, 3, 3]);
        let err = check_tensor_shapes(&found, &expected).unwrap_err();
        assert!(
            err.contains("tensor `features.26.running_var` (shape [512]) is missing"),
            "{err}"
        );
    }

    #[test]
    fn selections_parse_as_ranges_and_lists() {
        assert_eq!(parse_classes("classes0-4").unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(parse_classes("classes7,0,3").unwrap(), vec![0, 3, 7]);
        assert_eq!(parse_classes("classes0-1,5").unwrap(), vec![0, 1, 5]);
        for (bad, says) in [
            ("0-4", "must start with `classes`"),
            ("classes4-0", "runs backwards"),
            ("classes1,1", "twice"),
            ("classes3", "at least two"),
            ("classesx", "not a class number"),
            ("classes0-300", "not a class number"),
        ] {
            let err = parse_classes(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn pretrained_values_parse_and_label_as_written() {
        let task = parse_pretrained("fashion-mnist:classes0-4").unwrap();
        assert_eq!(
            task,
            PretrainedValue::Task {
                dataset: "fashion-mnist".into(),
                classes: vec![0, 1, 2, 3, 4]
            }
        );
        let source = PretrainSource::Task {
            dataset: "fashion-mnist".into(),
            classes: vec![0, 1, 2, 3, 4],
        };
        assert_eq!(source.label(), "fashion-mnist:classes0-4");
        assert_eq!(
            classes_label(&[0, 3, 7]),
            "classes0,3,7",
            "a list stays a list"
        );
        assert_eq!(
            parse_pretrained("file:w/vgg.safetensors").unwrap(),
            PretrainedValue::File("w/vgg.safetensors".into())
        );
        assert!(parse_pretrained("file:").is_err());
        assert!(
            parse_pretrained("imagenet")
                .unwrap_err()
                .contains("expected")
        );
        // A dataset path with a colon-free folder and the selection after the last colon.
        assert_eq!(
            parse_pretrained("/data/fm:classes5-9").unwrap(),
            PretrainedValue::Task {
                dataset: "/data/fm".into(),
                classes: vec![5, 6, 7, 8, 9]
            }
        );
    }

    #[test]
    fn the_scratch_stage_is_not_serialised_and_others_round_trip() {
        assert!(Stage::default().is_scratch());
        let stage = Stage::FineTune {
            source: PretrainSource::Task {
                dataset: "fashion-mnist".into(),
                classes: vec![0, 1],
            },
            pretrain_job: Some(3),
            artifact_sha256: None,
            freeze: true,
            declared: DeclaredCost::default(),
        };
        let json = serde_json::to_string(&stage).unwrap();
        assert_eq!(serde_json::from_str::<Stage>(&json).unwrap(), stage);
        assert_eq!(stage.label(), " pretrained=fashion-mnist:classes0-1 frozen");
    }
}
