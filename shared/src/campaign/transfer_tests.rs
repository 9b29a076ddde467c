//! Tests of the transfer-learning keys: pretrain jobs, fine-tunes, uploaded weights.

use super::*;

const TRANSFER: &str = r#"
name = "transfer"
train_samples = 1000
test_samples = 200
seeds = [1, 2]

[[model]]
kind = "vgg"
pretrained = "fashion-mnist:classes0-4"
freeze = [false, true]

[[model]]
kind = "vgg"
width = 0.25
pretrained = "fashion-mnist:classes0-4"
"#;

#[test]
fn a_task_source_adds_one_pretrain_job_that_every_fine_tune_of_its_config_depends_on() {
    let spec = parse("t.toml", TRANSFER, DEFAULT_MAX_JOBS).unwrap();
    // One pretrain job (both tables are the same configuration and source), then
    // 2 freeze values × 2 seeds, then the second table's 2 seeds.
    assert_eq!(spec.jobs.len(), 1 + 4 + 2);
    let Stage::Pretrain {
        dataset,
        classes,
        key,
    } = &spec.jobs[0].stage
    else {
        panic!("{:?}", spec.jobs[0].stage)
    };
    assert_eq!(dataset, "fashion-mnist");
    assert_eq!(classes, &[0, 1, 2, 3, 4]);
    assert_eq!(key.len(), 16);
    assert_eq!(
        spec.jobs[0].seed, 1,
        "pretrains with the campaign's first seed"
    );
    let mut frozen = 0;
    for job in &spec.jobs[1..] {
        let Stage::FineTune {
            pretrain_job,
            artifact_sha256,
            freeze,
            ..
        } = &job.stage
        else {
            panic!("{:?}", job.stage)
        };
        assert_eq!(*pretrain_job, Some(0));
        assert_eq!(
            *artifact_sha256, None,
            "known only once the pretrain job ran"
        );
        frozen += usize::from(*freeze);
    }
    assert_eq!(frozen, 2);
    assert!(
        spec.jobs[1]
            .stage
            .label()
            .contains("pretrained=fashion-mnist:classes0-4")
    );
}

#[test]
fn the_pretrain_key_is_the_same_in_another_campaign_and_changes_with_the_pretraining() {
    let key = |text: &str| match &parse("t.toml", text, DEFAULT_MAX_JOBS).unwrap().jobs[0].stage {
        Stage::Pretrain { key, .. } => key.clone(),
        other => panic!("{other:?}"),
    };
    let base = key(TRANSFER);
    let renamed = TRANSFER.replace("name = \"transfer\"", "name = \"other\"");
    assert_eq!(
        key(&renamed),
        base,
        "the campaign's name is not part of the key"
    );
    let other_seed = TRANSFER.replace("seeds = [1, 2]", "seeds = [5, 2]");
    assert_ne!(key(&other_seed), base);
    let other_classes = TRANSFER.replace("classes0-4", "classes5-9");
    assert_ne!(key(&other_classes), base);
}

#[test]
fn campaigns_without_transfer_keep_their_content() {
    let spec = parse(
        "q.toml",
        "name = \"q\"\n[[model]]\nkind = \"cnn\"\n",
        DEFAULT_MAX_JOBS,
    )
    .unwrap();
    let json = serde_json::to_string(&spec.jobs[0]).unwrap();
    assert!(!json.contains("stage"), "{json}");
}

#[test]
fn file_weights_must_be_uploaded_and_their_hash_is_part_of_the_campaign() {
    let text = "name = \"f\"\nseeds = [1]\n[[model]]\nkind = \"vgg\"\n\
                pretrained = \"file:w/vgg11_bn.safetensors\"\npretrain_kwh = 12.5\n";
    let err = parse("f.toml", text, DEFAULT_MAX_JOBS).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("f.toml:5: key `pretrained`"),
        "{message}"
    );
    assert!(message.contains("not uploaded"), "{message}");
    assert_eq!(
        weight_files(text),
        vec!["w/vgg11_bn.safetensors".to_string()]
    );
    let upload =
        |sha: &str| BTreeMap::from([("w/vgg11_bn.safetensors".to_string(), sha.to_string())]);
    let a = parse_with_uploads("f.toml", text, DEFAULT_MAX_JOBS, &upload("aa")).unwrap();
    let b = parse_with_uploads("f.toml", text, DEFAULT_MAX_JOBS, &upload("bb")).unwrap();
    assert_ne!(a.id, b.id, "other weights, another campaign");
    assert_eq!(a.jobs.len(), 1, "no pretrain job for uploaded weights");
    let Stage::FineTune {
        artifact_sha256,
        declared,
        pretrain_job,
        ..
    } = &a.jobs[0].stage
    else {
        panic!("{:?}", a.jobs[0].stage)
    };
    assert_eq!(artifact_sha256.as_deref(), Some("aa"));
    assert_eq!(*pretrain_job, None);
    assert_eq!(declared.kwh, Some(12.5));
}

#[test]
fn misplaced_transfer_keys_are_refused_with_their_line() {
    let cases = [
        (
            "[[model]]\nkind = \"cnn\"\nfreeze = true\n",
            "key `freeze`",
            "set `pretrained`",
        ),
        (
            "[[model]]\nkind = \"svm-linear\"\npretrained = \"fashion-mnist:classes0-4\"\n",
            "key `pretrained`",
            "does not apply",
        ),
        (
            "[[model]]\nkind = \"cnn\"\npretrained = \"fashion-mnist:0-4\"\n",
            "key `pretrained`",
            "must start with `classes`",
        ),
        (
            "[[model]]\nkind = \"cnn\"\npretrained = \"fashion-mnist:classes0-4\"\npretrain_kwh = 1.0\n",
            "key `pretrain_kwh`",
            "is measured",
        ),
        (
            "[[model]]\nkind = \"vgg\"\npretrained = \"file:w.safetensors\"\npretrain_co2_kg = -1.0\n",
            "key `pretrain_co2_kg`",
            "≥ 0",
        ),
    ];
    for (tables, key, says) in cases {
        let text = format!("name = \"m\"\n{tables}");
        let err = parse("m.toml", &text, DEFAULT_MAX_JOBS)
            .unwrap_err()
            .to_string();
        assert!(err.contains(key) && err.contains(says), "{tables}: {err}");
        assert!(err.starts_with("m.toml:"), "{err}");
    }
}
