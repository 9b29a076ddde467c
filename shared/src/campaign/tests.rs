//! Tests of campaign parsing, validation and expansion.

use super::*;
use crate::job::NetConfig;
use crate::transform::DataTransform;

const SEED: &str = r#"
name = "seed"
dataset = "fashion-mnist"
train_samples = 1000
test_samples = 200
seeds = [1, 2, 3]

[defaults]
epochs = 2
batch_size = 32

[[model]]
kind = "svm-linear"
c = [0.1, 1.0]

[[model]]
kind = "cnn"
learning_rate = [1e-3, 3e-3]
"#;

#[test]
fn expands_axes_times_seeds() {
    let spec = parse("seed.toml", SEED, DEFAULT_MAX_JOBS).unwrap();
    assert_eq!(spec.jobs.len(), (2 + 2) * 3);
    assert_eq!(spec.id.len(), 16);
    let idx: Vec<u32> = spec.jobs.iter().map(|job| job.job_idx).collect();
    assert_eq!(idx, (0..12).collect::<Vec<_>>());
    assert!(spec.jobs.iter().all(|job| job.campaign_id == spec.id));
    assert_eq!(
        spec.jobs[0].model,
        ModelConfig::SvmLinear(SvmConfig::new(0.1, SvmSolver::Dcd))
    );
    assert_eq!(spec.jobs[2].seed, 3);
    assert_eq!(
        spec.jobs[11].model,
        ModelConfig::Cnn(NetConfig {
            n_epochs: 2,
            batch_size: 32,
            learning_rate: 3e-3
        })
    );
    assert_eq!(spec.jobs[11].train_samples, Some(1000));
}

#[test]
fn same_content_same_id_and_changes_change_it() {
    let a = parse("a.toml", SEED, DEFAULT_MAX_JOBS).unwrap();
    let b = parse("b.toml", &format!("# a comment\n{SEED}"), DEFAULT_MAX_JOBS).unwrap();
    assert_eq!(a.id, b.id);
    let c = parse(
        "c.toml",
        &SEED.replace("seeds = [1, 2, 3]", "seeds = [1, 2]"),
        DEFAULT_MAX_JOBS,
    )
    .unwrap();
    assert_ne!(a.id, c.id);
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let text = SEED.replace(
        "test_samples = 200",
        "test_samples = 200\nlearning_rat = 0.1",
    );
    let err = parse("bad.toml", &text, DEFAULT_MAX_JOBS)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("bad.toml"), "{err}");
    assert!(err.contains("learning_rat"), "{err}");
    assert!(err.contains("line 6"), "{err}");
}

#[test]
fn unknown_key_inside_a_model_is_named() {
    let text = SEED.replace("c = [0.1, 1.0]", "c = [0.1, 1.0]\ngamma = 2");
    let err = parse("bad.toml", &text, DEFAULT_MAX_JOBS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gamma"), "{err}");
}

#[test]
fn unknown_kind_lists_the_valid_ones() {
    let text = SEED.replace("kind = \"cnn\"", "kind = \"resnet\"");
    let err = parse("bad.toml", &text, DEFAULT_MAX_JOBS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("resnet"), "{err}");
    assert!(err.starts_with("bad.toml:17: key `kind`"), "{err}");
    for kind in MODEL_KINDS {
        assert!(err.contains(kind), "{err} should list {kind}");
    }
}

#[test]
fn wrong_type_is_explained() {
    let text = SEED.replace("c = [0.1, 1.0]", "c = \"high\"");
    let err = parse("bad.toml", &text, DEFAULT_MAX_JOBS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 14"), "{err}");
    assert!(err.contains("list of values"), "{err}");
}

#[test]
fn out_of_range_values_name_key_line_and_value() {
    let text = SEED.replace("batch_size = 32", "batch_size = 0");
    let err = parse("bad.toml", &text, DEFAULT_MAX_JOBS).unwrap_err();
    assert_eq!(
        err,
        CampaignError::Invalid {
            file: "bad.toml".into(),
            line: 10,
            key: "batch_size".into(),
            value: "0".into(),
            reason: "use a positive, finite number".into(),
        }
    );
}

#[test]
fn too_large_is_refused() {
    let err = parse("big.toml", SEED, 5).unwrap_err();
    assert_eq!(
        err,
        CampaignError::TooLarge {
            file: "big.toml".into(),
            n_jobs: 12,
            max_jobs: 5
        }
    );
}

#[test]
fn a_campaign_without_models_is_refused() {
    let err = parse("empty.toml", "name = \"x\"\n", DEFAULT_MAX_JOBS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[[model]]"), "{err}");
}

#[test]
fn a_key_of_another_kind_is_refused() {
    let text = SEED.replace("learning_rate = [1e-3, 3e-3]", "c = 2.0");
    let err = parse("bad.toml", &text, DEFAULT_MAX_JOBS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`c` does not apply to kind \"cnn\""), "{err}");
}

#[test]
fn a_model_may_train_on_fewer_samples() {
    let text = SEED.replace("c = [0.1, 1.0]", "c = [0.1, 1.0]\ntrain_samples = 800");
    let spec = parse("seed.toml", &text, DEFAULT_MAX_JOBS).unwrap();
    assert_eq!(spec.jobs[0].train_samples, Some(800));
    assert_eq!(spec.jobs[11].train_samples, Some(1000));
}

#[test]
fn svm_solver_is_an_axis_and_defaults_to_dcd() {
    let spec = parse("seed.toml", SEED, DEFAULT_MAX_JOBS).unwrap();
    assert_eq!(
        spec.jobs[0].model,
        ModelConfig::SvmLinear(SvmConfig::new(0.1, SvmSolver::Dcd))
    );
    let text = SEED.replace(
        "c = [0.1, 1.0]",
        "c = [0.1, 1.0]\nsolver = [\"dcd\", \"smo\"]",
    );
    let spec = parse("seed.toml", &text, DEFAULT_MAX_JOBS).unwrap();
    assert_eq!(spec.jobs.len(), (2 * 2 + 2) * 3);
    let svms: Vec<(f64, SvmSolver)> = spec
        .jobs
        .iter()
        .filter_map(|job| match &job.model {
            ModelConfig::SvmLinear(svm) if job.seed == 1 => Some((svm.c, svm.solver)),
            _ => None,
        })
        .collect();
    assert_eq!(
        svms,
        vec![
            (0.1, SvmSolver::Dcd),
            (0.1, SvmSolver::Smo),
            (1.0, SvmSolver::Dcd),
            (1.0, SvmSolver::Smo)
        ]
    );
}

#[test]
fn one_svm_solver_may_be_given_alone() {
    let text = SEED.replace("c = [0.1, 1.0]", "solver = \"smo\"");
    let spec = parse("seed.toml", &text, DEFAULT_MAX_JOBS).unwrap();
    assert_eq!(
        spec.jobs[0].model,
        ModelConfig::SvmLinear(SvmConfig::new(1.0, SvmSolver::Smo))
    );
}

#[test]
fn unknown_svm_solver_names_file_line_value_and_the_valid_ones() {
    let text = SEED.replace("c = [0.1, 1.0]", "c = 1.0\nsolver = [\"dcd\", \"sgd\"]");
    let err = parse("bad.toml", &text, DEFAULT_MAX_JOBS).unwrap_err();
    let CampaignError::Invalid {
        file,
        line,
        key,
        value,
        reason,
    } = &err
    else {
        panic!("expected Invalid, got {err:?}");
    };
    assert_eq!(
        (file.as_str(), *line, key.as_str(), value.as_str()),
        ("bad.toml", 15, "solver", "\"sgd\"")
    );
    assert!(reason.contains("valid solvers: dcd, smo"), "{reason}");
    assert!(
        err.to_string()
            .starts_with("bad.toml:15: key `solver` = \"sgd\""),
        "{err}"
    );
}

#[test]
fn a_solver_of_the_wrong_type_is_explained() {
    let text = SEED.replace("c = [0.1, 1.0]", "solver = 3");
    let err = parse("bad.toml", &text, DEFAULT_MAX_JOBS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 14"), "{err}");
    assert!(err.contains("names for `solver`"), "{err}");
}

#[test]
fn solver_does_not_apply_to_a_cnn() {
    let text = SEED.replace("learning_rate = [1e-3, 3e-3]", "solver = \"dcd\"");
    let err = parse("bad.toml", &text, DEFAULT_MAX_JOBS)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`solver` does not apply to kind \"cnn\""),
        "{err}"
    );
}

/// The SVM table of [`SEED`] with `keys` instead of its `c` line.
fn svm_with(keys: &str) -> String {
    SEED.replace("c = [0.1, 1.0]", keys)
}

/// The (solver, multiclass) of the seed-1 SVM jobs, in matrix order.
fn svm_schemes(spec: &CampaignSpec) -> Vec<(SvmSolver, SvmMulticlass)> {
    (spec.jobs.iter())
        .filter_map(|job| match &job.model {
            ModelConfig::SvmLinear(svm) if job.seed == 1 => Some((svm.solver, svm.multiclass)),
            _ => None,
        })
        .collect()
}

#[test]
fn svm_multiclass_is_an_axis_and_defaults_to_the_solvers_own() {
    let spec = parse("a.toml", &svm_with("solver = [\"dcd\", \"smo\"]"), 100).unwrap();
    assert_eq!(
        svm_schemes(&spec),
        [
            (SvmSolver::Dcd, SvmMulticlass::Ovo),
            (SvmSolver::Smo, SvmMulticlass::Ovo)
        ]
    );
    let text = svm_with("multiclass = [\"ovr\", \"ovo\"]");
    let spec = parse("a.toml", &text, 100).unwrap();
    assert_eq!(spec.jobs.len(), (2 + 2) * 3);
    assert_eq!(
        svm_schemes(&spec),
        [
            (SvmSolver::Dcd, SvmMulticlass::Ovr),
            (SvmSolver::Dcd, SvmMulticlass::Ovo)
        ]
    );
    let labels: Vec<String> = [&spec.jobs[0], &spec.jobs[3]]
        .iter()
        .map(|job| job.model.label())
        .collect();
    assert_eq!(labels, ["c=1 solver=dcd multiclass=ovr", "c=1 solver=dcd"]);
    let text = svm_with("solver = [\"dcd\", \"smo\"]\nmulticlass = \"ovo\"");
    let spec = parse("a.toml", &text, 100).unwrap();
    assert_eq!(
        svm_schemes(&spec),
        [
            (SvmSolver::Dcd, SvmMulticlass::Ovo),
            (SvmSolver::Smo, SvmMulticlass::Ovo)
        ]
    );
}

#[test]
fn unknown_multiclass_names_file_line_value_and_the_valid_ones() {
    let text = svm_with("multiclass = [\"ovo\", \"all\"]");
    let err = parse("bad.toml", &text, 100).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "bad.toml:14: key `multiclass` = \"all\": unknown svm-linear multiclass scheme; \
             valid schemes: ovr, ovo"
        ),
        "{err}"
    );
}

#[test]
fn smo_one_vs_rest_is_refused_with_what_to_do() {
    let text = svm_with("solver = [\"dcd\", \"smo\"]\nmulticlass = [\"ovo\", \"ovr\"]");
    let err = parse("bad.toml", &text, 100).unwrap_err().to_string();
    assert_eq!(
        err,
        "bad.toml:15: key `multiclass` = \"ovr\": solver \"smo\" is always one-vs-one: \
         leave `multiclass` out or set it to \"ovo\" (give smo a [[model]] table of its \
         own if dcd needs \"ovr\"), or use solver = \"dcd\" for one-vs-rest"
    );
}

#[test]
fn multiclass_of_the_wrong_type_or_kind_is_explained() {
    let err = parse("bad.toml", &svm_with("multiclass = 2"), 100)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 14"), "{err}");
    assert!(err.contains("names for `solver` and `multiclass`"), "{err}");
    let text = SEED.replace("learning_rate = [1e-3, 3e-3]", "multiclass = \"ovo\"");
    let err = parse("bad.toml", &text, 100).unwrap_err().to_string();
    assert!(
        err.contains("`multiclass` does not apply to kind \"cnn\""),
        "{err}"
    );
}

#[test]
fn densenet_and_vgg_tables_expand_their_own_axes_with_defaults() {
    let text = r#"
name = "nets"
seeds = [1, 2]
[defaults]
epochs = 2
[[model]]
kind = "densenet"
growth_rate = [8, 12]
[[model]]
kind = "vgg"
batch_norm = [true, false]
threads = 1
"#;
    let spec = parse("nets.toml", text, DEFAULT_MAX_JOBS).unwrap();
    assert_eq!(spec.jobs.len(), (2 + 2) * 2);
    let labels: Vec<String> = spec.jobs.iter().map(|j| j.model.label()).collect();
    assert!(
        labels.contains(&"epochs=2 batch=64 lr=0.001 k=8 blocks=3x4".to_string()),
        "{labels:?}"
    );
    assert!(
        labels.contains(&"epochs=2 batch=64 lr=0.001 width=0.25 bn".to_string()),
        "{labels:?}"
    );
    assert!(
        labels.contains(&"epochs=2 batch=64 lr=0.001 width=0.25".to_string()),
        "{labels:?}"
    );
    let vgg_threads: Vec<u32> = spec
        .jobs
        .iter()
        .filter(|j| j.model.kind() == "vgg")
        .map(|j| j.threads)
        .collect();
    assert_eq!(vgg_threads, vec![1, 1, 1, 1]);
    assert!(
        spec.jobs
            .iter()
            .filter(|j| j.model.kind() == "densenet")
            .all(|j| j.threads == 0)
    );
}

#[test]
fn net_keys_out_of_range_or_on_another_kind_are_refused_with_their_line() {
    let base = "name = \"x\"\n[[model]]\nkind = \"densenet\"\n";
    let err = parse("a.toml", &format!("{base}n_blocks = 9\n"), DEFAULT_MAX_JOBS).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a.toml:4: key `n_blocks` = 9: use 1 to 5 (each block after the first halves the image)"
    );
    let err = parse("a.toml", &format!("{base}width = 0.5\n"), DEFAULT_MAX_JOBS).unwrap_err();
    assert!(
        err.to_string()
            .contains("`width` does not apply to kind \"densenet\""),
        "{err}"
    );
    let vgg = "name = \"x\"\n[[model]]\nkind = \"vgg\"\nwidth = -1.0\n";
    let err = parse("b.toml", vgg, DEFAULT_MAX_JOBS).unwrap_err();
    assert!(
        err.to_string().starts_with("b.toml:4: key `width` = -1"),
        "{err}"
    );
}

#[test]
fn transform_table_reaches_every_job() {
    let text = format!("{SEED}\n[transform]\ngrayscale = true\nresize = 28\npad = 2\n");
    let spec = parse("t.toml", &text, DEFAULT_MAX_JOBS).unwrap();
    let expected = DataTransform {
        grayscale: true,
        resize: Some(28),
        pad: 2,
        channels: None,
        normalize: false,
    };
    assert!(spec.jobs.iter().all(|job| job.transform == expected));
    let plain = parse("p.toml", SEED, DEFAULT_MAX_JOBS).unwrap();
    assert!(plain.jobs.iter().all(|job| job.transform.is_identity()));
    assert_ne!(spec.id, plain.id, "a transform changes the campaign id");
}

/// Campaigns without `[transform]` serialise as before the table existed, so their
/// content id is unchanged; an identity table is the same campaign.
#[test]
fn no_transform_keeps_the_campaign_id() {
    let plain = parse("p.toml", SEED, DEFAULT_MAX_JOBS).unwrap();
    let json = serde_json::to_string(&plain).unwrap();
    assert!(!json.contains("transform"), "{json}");
    let empty_table = parse(
        "e.toml",
        &format!("{SEED}\n[transform]\n"),
        DEFAULT_MAX_JOBS,
    )
    .unwrap();
    assert_eq!(plain.id, empty_table.id);
}

#[test]
fn bad_transform_values_name_file_line_and_key() {
    let cases = [
        ("resize = 0", "resize", "1 to 1024"),
        ("resize = 4096", "resize", "1 to 1024"),
        ("pad = 65", "pad", "0 to 64"),
        ("channels = 2", "channels", "1 (grey) or 3"),
        (
            "grayscale = true\nchannels = 3",
            "channels",
            "grayscale = true",
        ),
    ];
    for (body, key, hint) in cases {
        let text = format!("{SEED}\n[transform]\n{body}\n");
        let line = text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
        let err = parse("t.toml", &text, DEFAULT_MAX_JOBS)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("t.toml:{line}: key `{key}`")),
            "{body}: {err}"
        );
        assert!(err.contains(hint), "{body}: {err}");
    }
}

#[test]
fn unknown_transform_key_is_a_syntax_error_with_its_line() {
    let text = format!("{SEED}\n[transform]\ngreyscale = true\n");
    let err = parse("t.toml", &text, DEFAULT_MAX_JOBS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("greyscale"), "{err}");
    assert!(err.contains("line 21"), "{err}");
}

#[test]
fn normalize_with_an_svm_is_refused_with_its_line() {
    let text = format!("{SEED}\n[transform]\nnormalize = true\n");
    let line = text
        .lines()
        .position(|l| l.starts_with("normalize"))
        .unwrap()
        + 1;
    let err = parse("t.toml", &text, DEFAULT_MAX_JOBS)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("t.toml:{line}: key `normalize`")),
        "{err}"
    );
    assert!(err.contains("svm-linear"), "{err}");
    let nets_only = text.replace("[[model]]\nkind = \"svm-linear\"\nc = [0.1, 1.0]\n", "");
    assert!(!nets_only.contains("svm-linear"));
    let spec = parse("t.toml", &nets_only, DEFAULT_MAX_JOBS);
    assert!(spec.is_ok(), "{:?}", spec.err());
}

#[test]
fn placement_defaults_to_any_and_leaves_the_id_of_campaigns_without_it() {
    let plain = parse("seed.toml", SEED, DEFAULT_MAX_JOBS).unwrap();
    assert_eq!(plain.placement, Placement::Any);
    let canonical = serde_json::to_string(&plain).unwrap();
    assert!(!canonical.contains("placement"), "{canonical}");
    let with = |value: &str| {
        let text = SEED.replacen(
            "seeds = [1, 2, 3]",
            &format!("seeds = [1, 2, 3]\nplacement = \"{value}\""),
            1,
        );
        parse("seed.toml", &text, DEFAULT_MAX_JOBS)
    };
    let any = with("any").unwrap();
    assert_eq!(
        any.id, plain.id,
        "the default spelled out is the same campaign"
    );
    let same = with("same-worker-per-seed").unwrap();
    assert_eq!(same.placement, Placement::SameWorkerPerSeed);
    assert_ne!(same.id, plain.id, "another placement is another campaign");
    assert_eq!(same.jobs.len(), plain.jobs.len());
    let read: CampaignSpec = serde_json::from_str(&serde_json::to_string(&same).unwrap()).unwrap();
    assert_eq!(read, same);
}

#[test]
fn an_unknown_placement_is_refused_with_its_line_and_the_valid_values() {
    let text = SEED.replacen(
        "seeds = [1, 2, 3]",
        "seeds = [1, 2, 3]\nplacement = \"one-per-seed\"",
        1,
    );
    let err = parse("seed.toml", &text, DEFAULT_MAX_JOBS).unwrap_err();
    let CampaignError::Invalid { line, key, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!((*line, key.as_str()), (7, "placement"));
    let message = err.to_string();
    assert!(
        message.starts_with("seed.toml:7: key `placement`"),
        "{message}"
    );
    assert!(
        message.contains("one-per-seed") && message.contains("any, same-worker-per-seed"),
        "{message}"
    );
}
