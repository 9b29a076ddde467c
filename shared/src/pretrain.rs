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

#[cfg(test)]
mod tests {
    use super::*;

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
