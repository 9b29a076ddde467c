//! Tests of the verifier and the writer on real files.

use super::*;

fn header_of(content: &[u8], name: &str) -> ArtifactHeader {
    ArtifactHeader {
        sha256: hex(&Sha256::digest(content)),
        size_bytes: content.len() as u64,
        name: name.into(),
    }
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(TEMP_SUFFIX))
        .collect()
}

#[test]
fn file_chunks_split_at_the_chunk_size_and_hash_like_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..ARTIFACT_CHUNK_BYTES * 2 + 10)
        .map(|i| i as u8)
        .collect();
    let path = dir.path().join("w.safetensors");
    std::fs::write(&path, &content).unwrap();
    let sizes: Vec<usize> = FileChunks::new(File::open(&path).unwrap())
        .map(|chunk| chunk.unwrap().len())
        .collect();
    assert_eq!(sizes, [ARTIFACT_CHUNK_BYTES, ARTIFACT_CHUNK_BYTES, 10]);
    let (sha, size) = sha256_file(&path).unwrap();
    assert_eq!(
        (sha, size),
        (header_of(&content, "").sha256, content.len() as u64)
    );
}

#[test]
fn a_writer_commits_a_verified_artifact_under_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let content = b"weights".repeat(1000);
    let header = header_of(&content, "w");
    let mut writer = ArtifactWriter::create(dir.path(), header.clone(), 1 << 30).unwrap();
    for chunk in content.chunks(3000) {
        writer.write(chunk).unwrap();
    }
    let path = writer.commit().unwrap();
    assert_eq!(path, dir.path().join(&header.sha256));
    assert_eq!(std::fs::read(path).unwrap(), content);
    assert!(temp_files(dir.path()).is_empty());
}

#[test]
fn a_wrong_hash_short_or_long_stream_is_refused_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let content = b"0123456789".to_vec();
    let mut wrong = header_of(&content, "w");
    wrong.sha256 = header_of(b"other", "w").sha256;
    let mut writer = ArtifactWriter::create(dir.path(), wrong.clone(), 100).unwrap();
    writer.write(&content).unwrap();
    let err = writer.commit().unwrap_err().to_string();
    assert!(
        err.contains(&wrong.sha256) && err.contains("hashes to"),
        "{err}"
    );

    let mut writer = ArtifactWriter::create(dir.path(), header_of(&content, "w"), 100).unwrap();
    writer.write(&content[..4]).unwrap();
    let err = writer.commit().unwrap_err().to_string();
    assert!(err.contains("ended after 4 bytes"), "{err}");

    let mut writer = ArtifactWriter::create(dir.path(), header_of(&content, "w"), 100).unwrap();
    let err = writer
        .write(&[content.clone(), content].concat())
        .unwrap_err();
    assert!(err.to_string().contains("carried more"), "{err}");
    drop(writer);
    assert!(temp_files(dir.path()).is_empty());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_header_over_the_limit_or_with_a_bad_hash_is_refused_at_once() {
    let content = vec![7u8; 50];
    let err = Verifier::new(header_of(&content, "big"), 49).unwrap_err();
    assert!(
        err.to_string().contains("over the limit of 49 bytes"),
        "{err}"
    );
    let mut bad = header_of(&content, "w");
    bad.sha256 = "../etc/passwd".into();
    assert!(matches!(
        Verifier::new(bad, 100),
        Err(ArtifactError::BadSha { .. })
    ));
}
