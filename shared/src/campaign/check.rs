//! Range and consistency checks that TOML types cannot express, reporting the
//! file, the key's line, the value and what to do.

use super::{Axis, COMMON_MODEL_KEYS, CampaignError, RawCampaign, RawModel, keys_of_kind};
use crate::job::{MODEL_KINDS, SvmMulticlass, SvmSolver};
use crate::pretrain::{PretrainedValue, parse_pretrained};
use crate::transform::DataTransform;

/// Largest square side `[transform] resize` accepts.
const MAX_RESIZE: u32 = 1024;
/// Largest `[transform] pad`.
const MAX_PAD: u32 = 64;

/// Range checks that TOML types cannot express, reporting the key's line.
pub(super) struct Checker<'a> {
    pub(super) file: &'a str,
    pub(super) text: &'a str,
}

impl Checker<'_> {
    pub(super) fn validate(&self, raw: &RawCampaign) -> Result<(), CampaignError> {
        if raw.name.trim().is_empty() {
            return Err(self.invalid("name", "\"\"", "give the campaign a name"));
        }
        if raw.model.is_empty() {
            return Err(self.invalid(
                "model",
                "(none)",
                &format!(
                    "add at least one [[model]] table with `kind` = one of: {}",
                    MODEL_KINDS.join(", ")
                ),
            ));
        }
        if raw.seeds.is_empty() {
            return Err(self.invalid(
                "seeds",
                "[]",
                "list at least one seed, e.g. seeds = [1, 2, 3]",
            ));
        }
        for (key, value) in [
            ("train_samples", raw.train_samples),
            ("test_samples", raw.test_samples),
        ] {
            if value == Some(0) {
                return Err(self.invalid(
                    key,
                    "0",
                    "use a positive count, or omit the key for the whole split",
                ));
            }
        }
        if let Some(target) = raw.target_accuracy
            && !(0.0..=1.0).contains(&target)
        {
            return Err(self.invalid(
                "target_accuracy",
                &target.to_string(),
                "use a fraction between 0 and 1",
            ));
        }
        if let Some(placement) = &raw.placement
            && super::Placement::from_name(placement).is_none()
        {
            let valid: Vec<&str> = super::Placement::ALL.iter().map(|p| p.as_str()).collect();
            return Err(self.invalid_value(
                "placement",
                placement,
                format!(
                    "unknown placement; use one of: {} (\"same-worker-per-seed\" runs every \
                     model of one seed on one worker)",
                    valid.join(", ")
                ),
            ));
        }
        if raw.defaults.optimizer != "adamw" {
            return Err(self.invalid(
                "optimizer",
                &format!("{:?}", raw.defaults.optimizer),
                "the only optimizer is \"adamw\"",
            ));
        }
        self.positive_all(
            "epochs",
            raw.defaults.epochs.values().iter().map(|&v| v as f64),
        )?;
        self.positive_all(
            "batch_size",
            raw.defaults.batch_size.values().iter().map(|&v| v as f64),
        )?;
        self.positive_all(
            "learning_rate",
            raw.defaults.learning_rate.values().into_iter(),
        )?;
        for model in &raw.model {
            self.validate_model(model)?;
        }
        self.validate_transform(&raw.transform)?;
        if raw.transform.normalize && raw.model.iter().any(|m| m.kind == "svm-linear") {
            return Err(self.invalid(
                "normalize",
                "true",
                "only the nets standardise their inputs; svm-linear reads pixels scaled to \
                 [0, 1]: set normalize = false, or put svm-linear in a campaign of its own",
            ));
        }
        Ok(())
    }

    /// The `[transform]` table: sizes within reason, a channel count the nets know, and
    /// no contradiction between `grayscale` and `channels`.
    fn validate_transform(&self, transform: &DataTransform) -> Result<(), CampaignError> {
        if let Some(side) = transform.resize
            && !(1..=MAX_RESIZE).contains(&side)
        {
            return Err(self.invalid(
                "resize",
                &side.to_string(),
                &format!("use a square side from 1 to {MAX_RESIZE} pixels, e.g. 32"),
            ));
        }
        if transform.pad > MAX_PAD {
            return Err(self.invalid(
                "pad",
                &transform.pad.to_string(),
                &format!("use 0 to {MAX_PAD} zero pixels on each side"),
            ));
        }
        match transform.channels {
            Some(channels) if channels != 1 && channels != 3 => Err(self.invalid(
                "channels",
                &channels.to_string(),
                "use 1 (grey) or 3 (RGB), or omit the key to keep the dataset's channels",
            )),
            Some(3) if transform.grayscale => Err(self.invalid(
                "channels",
                "3",
                "`grayscale = true` makes 1 channel: drop one of the two keys (or set \
                 channels = 1)",
            )),
            _ => Ok(()),
        }
    }

    fn validate_model(&self, model: &RawModel) -> Result<(), CampaignError> {
        if !MODEL_KINDS.contains(&model.kind.as_str()) {
            return Err(CampaignError::Invalid {
                file: self.file.to_string(),
                line: line_of(self.text, "kind", Some(&model.kind)),
                key: "kind".into(),
                value: format!("{:?}", model.kind),
                reason: format!(
                    "unknown model kind; valid kinds: {}",
                    MODEL_KINDS.join(", ")
                ),
            });
        }
        let allowed = keys_of_kind(&model.kind);
        if let Some(key) = model
            .keys_set()
            .into_iter()
            .find(|key| !allowed.contains(key))
        {
            return Err(self.invalid(
                key,
                "(set)",
                &format!(
                    "`{key}` does not apply to kind {:?}; its keys are: {}",
                    model.kind,
                    [allowed, COMMON_MODEL_KEYS].concat().join(", ")
                ),
            ));
        }
        if model.train_samples == Some(0) {
            return Err(self.invalid(
                "train_samples",
                "0",
                "use a positive count, or omit the key",
            ));
        }
        self.positive_all("c", model.c.iter().flat_map(Axis::values))?;
        self.known_solvers(model)?;
        self.known_multiclasses(model)?;
        self.positive_all(
            "epochs",
            model.epochs.iter().flat_map(Axis::values).map(f64::from),
        )?;
        self.positive_all(
            "batch_size",
            model
                .batch_size
                .iter()
                .flat_map(Axis::values)
                .map(f64::from),
        )?;
        self.positive_all(
            "learning_rate",
            model.learning_rate.iter().flat_map(Axis::values),
        )?;
        self.net_ranges(model)?;
        self.transfer(model)
    }

    /// `pretrained` parses; `freeze` and the declared costs come with the right source.
    fn transfer(&self, model: &RawModel) -> Result<(), CampaignError> {
        let Some(value) = model.pretrained.as_deref() else {
            if model.freeze.is_some() {
                return Err(self.invalid(
                    "freeze",
                    "(set)",
                    "`freeze` applies to a fine-tune: set `pretrained` as well",
                ));
            }
            for key in ["pretrain_kwh", "pretrain_co2_kg"] {
                if model.keys_set().contains(&key) {
                    return Err(self.invalid(
                        key,
                        "(set)",
                        "declares the cost of uploaded weights: set `pretrained = \"file:…\"`",
                    ));
                }
            }
            return Ok(());
        };
        let parsed = parse_pretrained(value)
            .map_err(|reason| self.invalid_value("pretrained", value, reason))?;
        if matches!(parsed, PretrainedValue::Task { .. }) {
            for key in ["pretrain_kwh", "pretrain_co2_kg"] {
                if model.keys_set().contains(&key) {
                    return Err(self.invalid(
                        key,
                        "(set)",
                        "a pretrain job's cost is measured; declare costs only for \
                         `pretrained = \"file:…\"` weights",
                    ));
                }
            }
        }
        for (key, declared) in [
            ("pretrain_kwh", model.pretrain_kwh),
            ("pretrain_co2_kg", model.pretrain_co2_kg),
        ] {
            if let Some(v) = declared
                && !(v >= 0.0 && v.is_finite())
            {
                return Err(self.invalid(key, &v.to_string(), "use a finite number ≥ 0"));
            }
        }
        Ok(())
    }

    /// Every `file:` weights path of the campaign has been uploaded.
    pub(super) fn uploaded(
        &self,
        raw: &RawCampaign,
        uploads: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), CampaignError> {
        for model in &raw.model {
            let Some(value) = model.pretrained.as_deref() else {
                continue;
            };
            if let Some(path) = value.strip_prefix("file:")
                && !uploads.contains_key(path)
            {
                return Err(self.invalid_value(
                    "pretrained",
                    value,
                    format!(
                        "the weights file {path} was not uploaded with the campaign: submit it \
                         with `coordinator submit` or `coordinator run`, which upload the files \
                         a campaign names"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The architecture keys of DenseNet and VGG, and a table's `threads`, within reason.
    fn net_ranges(&self, model: &RawModel) -> Result<(), CampaignError> {
        let counts = [
            (
                "growth_rate",
                &model.growth_rate,
                256,
                "channels each layer adds, e.g. 12",
            ),
            (
                "n_blocks",
                &model.n_blocks,
                5,
                "each block after the first halves the image",
            ),
            (
                "layers_per_block",
                &model.layers_per_block,
                64,
                "layers per dense block, e.g. 4",
            ),
        ];
        for (key, axis, max, what) in counts {
            for value in axis.iter().flat_map(Axis::values) {
                if value == 0 || value > max {
                    return Err(self.invalid(
                        key,
                        &value.to_string(),
                        &format!("use 1 to {max} ({what})"),
                    ));
                }
            }
        }
        for width in model.width.iter().flat_map(Axis::values) {
            if !(width.is_finite() && width > 0.0 && width <= 4.0) {
                return Err(self.invalid(
                    "width",
                    &width.to_string(),
                    "use a multiplier of VGG-11's widths above 0 and at most 4, e.g. 0.25",
                ));
            }
        }
        if let Some(threads) = model.threads
            && threads > 1024
        {
            return Err(self.invalid(
                "threads",
                &threads.to_string(),
                "use a thread count up to 1024, or 0 for every core of the worker",
            ));
        }
        Ok(())
    }

    /// Every `solver` value names a solver this build has.
    fn known_solvers(&self, model: &RawModel) -> Result<(), CampaignError> {
        let mut names = model.solver.iter().flat_map(Axis::values);
        if let Some(name) = names.find(|name| SvmSolver::from_name(name).is_none()) {
            let valid: Vec<&str> = SvmSolver::ALL.iter().map(|s| s.as_str()).collect();
            return Err(CampaignError::Invalid {
                file: self.file.to_string(),
                line: line_of(self.text, "solver", Some(&name)),
                key: "solver".into(),
                value: format!("{name:?}"),
                reason: format!(
                    "unknown svm-linear solver; valid solvers: {} (dcd scales to the full \
                     dataset, smo is exact but for small subsets only)",
                    valid.join(", ")
                ),
            });
        }
        Ok(())
    }

    /// Every `multiclass` value names a scheme, and one every listed solver fits with
    /// (smo is one-vs-one only).
    fn known_multiclasses(&self, model: &RawModel) -> Result<(), CampaignError> {
        for name in model.multiclass.iter().flat_map(Axis::values) {
            let Some(multiclass) = SvmMulticlass::from_name(&name) else {
                let valid: Vec<&str> = SvmMulticlass::ALL.iter().map(|m| m.as_str()).collect();
                return Err(self.invalid_value(
                    "multiclass",
                    &name,
                    format!(
                        "unknown svm-linear multiclass scheme; valid schemes: {} (ovr: one \
                         binary problem per class against the rest, ovo: one per pair of \
                         classes)",
                        valid.join(", ")
                    ),
                ));
            };
            let solvers = model.solver.iter().flat_map(Axis::values);
            let mut solvers = solvers.filter_map(|solver| SvmSolver::from_name(&solver));
            if let Some(solver) = solvers.find(|solver| !solver.supports(multiclass)) {
                return Err(self.invalid_value(
                    "multiclass",
                    &name,
                    format!(
                        "solver {:?} is always one-vs-one: leave `multiclass` out or set it \
                         to \"ovo\" (give smo a [[model]] table of its own if dcd needs \
                         {name:?}), or use solver = \"dcd\" for one-vs-rest",
                        solver.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn positive_all(
        &self,
        key: &str,
        values: impl Iterator<Item = f64>,
    ) -> Result<(), CampaignError> {
        for value in values {
            if !(value > 0.0 && value.is_finite()) {
                return Err(self.invalid(key, &value.to_string(), "use a positive, finite number"));
            }
        }
        Ok(())
    }

    /// A string `value` of `key` refused for `reason`, at the line that holds it.
    fn invalid_value(&self, key: &str, value: &str, reason: String) -> CampaignError {
        CampaignError::Invalid {
            file: self.file.to_string(),
            line: line_of(self.text, key, Some(value)),
            key: key.to_string(),
            value: format!("{value:?}"),
            reason,
        }
    }

    fn invalid(&self, key: &str, value: &str, reason: &str) -> CampaignError {
        CampaignError::Invalid {
            file: self.file.to_string(),
            line: line_of(self.text, key, None),
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// The 1-based line where `key = …` (holding `value`, if given) first appears, or 0.
fn line_of(text: &str, key: &str, value: Option<&str>) -> usize {
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            let assignment = line
                .strip_prefix(key)
                .and_then(|rest| rest.trim_start().strip_prefix('='));
            assignment.is_some_and(|rhs| value.is_none_or(|value| rhs.contains(value)))
        })
        .map_or(0, |idx| idx + 1)
}
