//! Tests of the artifact store over a real folder and a temporary database.

use ecobench_shared::artifact::{ArtifactHeader, sha256_file};

use super::*;

fn header(content: &[u8], name: &str) -> ArtifactHeader {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, content).unwrap();
    let (sha256, size_bytes) = sha256_file(&path).unwrap();
    ArtifactHeader {
        sha256,
        size_bytes,
        name: name.into(),
    }
}

#[test]
fn the_folder_sits_beside_the_database() {
    assert_eq!(
        artifacts_dir(Path::new("results/ecobench.db")),
        Path::new("results/ecobench.db.artifacts")
    );
}

#[test]
fn opening_sweeps_unfinished_puts_and_keeps_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("a".repeat(64));
    std::fs::write(&kept, b"x").unwrap();
    std::fs::write(
        dir.path().join(format!("{}.1.0.tmp", "a".repeat(64))),
        b"half",
    )
    .unwrap();
    ArtifactStore::open(dir.path().into(), Store::temporary().unwrap(), 10).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(names, [kept]);
}

#[tokio::test]
async fn a_put_is_recorded_readable_and_idempotent() {
    let artifacts = ArtifactStore::temporary(Store::temporary().unwrap(), 1 << 20);
    let header = header(b"weights", "w.safetensors");
    for already_present in [false, true] {
        let mut upload = artifacts.begin_put(header.clone()).unwrap();
        upload.write(b"weights".to_vec()).await.unwrap();
        let outcome = upload.finish().await.unwrap();
        assert_eq!(outcome.already_present, already_present);
        assert_eq!(outcome.record.size, 7);
    }
    let (record, chunks) = artifacts.read(&header.sha256).unwrap();
    assert_eq!(record.name, "w.safetensors");
    let content: Vec<u8> = chunks.flat_map(Result::unwrap).collect();
    assert_eq!(content, b"weights");
    assert!(artifacts.path("../x").is_none());
}

#[tokio::test]
async fn a_short_put_is_refused_and_leaves_nothing() {
    let artifacts = ArtifactStore::temporary(Store::temporary().unwrap(), 1 << 20);
    let header = header(b"weights", "w");
    let mut upload = artifacts.begin_put(header.clone()).unwrap();
    upload.write(b"wei".to_vec()).await.unwrap();
    let err = upload.finish().await.unwrap_err();
    assert!(matches!(err, CoordinatorError::InvalidArgument(_)), "{err}");
    assert!(artifacts.get(&header.sha256).unwrap().is_none());
    assert_eq!(std::fs::read_dir(artifacts.dir()).unwrap().count(), 0);
    let err = artifacts.read(&header.sha256).unwrap_err();
    assert!(matches!(err, CoordinatorError::NotFound(_)), "{err}");
}
