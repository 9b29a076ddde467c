//! Artifacts end to end: a real `coordinator serve` process over a sled
//! database in a temporary folder, the CLI's and the worker's clients, the
//! worker's cache on disk.

use std::path::{Path, PathBuf};

use ecobench_coordinator::artifacts::artifacts_dir;
use ecobench_coordinator::client::Client as CliClient;
use ecobench_coordinator::store::Store;
use ecobench_proto::artifact::{self, ArtifactClient};
use ecobench_proto::auth::BearerToken;
use ecobench_proto::pb;
use ecobench_shared::artifact::{ARTIFACT_CHUNK_BYTES, sha256_file};
use ecobench_worker::artifacts::ArtifactCache;
use ecobench_worker::client::{Client as WorkerClient, ClientError};
use tonic::transport::Channel;

use crate::support::CoordinatorProcess;

/// `n` seeded pseudo-random bytes (xorshift).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Writes 2.5 MiB of seeded noise (three chunks) to `dir/name`.
fn weights_file(dir: &Path, name: &str, seed: u64) -> (PathBuf, Vec<u8>) {
    let content = noise(ARTIFACT_CHUNK_BYTES * 5 / 2, seed);
    let path = dir.join(name);
    std::fs::write(&path, &content).unwrap();
    (path, content)
}

async fn raw_client(addr: &str, token: Option<&str>) -> ArtifactClient {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    artifact::artifact_client(channel, BearerToken::new(token).unwrap())
}

async fn worker(addr: &str, token: Option<&str>) -> WorkerClient {
    WorkerClient::connect(addr, token, "w1").await.unwrap()
}

/// Puts chunks as given, header on the first.
async fn put_raw(
    client: &mut ArtifactClient,
    header: pb::ArtifactHeader,
    content: &[u8],
) -> Result<pb::PutArtifactResponse, tonic::Status> {
    let mut header = Some(header);
    let chunks: Vec<pb::ArtifactChunk> = content
        .chunks(ARTIFACT_CHUNK_BYTES)
        .map(|data| pb::ArtifactChunk {
            header: header.take(),
            data: data.to_vec(),
        })
        .collect();
    client
        .put_artifact(tokio_stream::iter(chunks))
        .await
        .map(tonic::Response::into_inner)
}

/// Files in the artifacts folder of `db`.
fn stored_files(db: &Path) -> Vec<String> {
    match std::fs::read_dir(artifacts_dir(db)) {
        Ok(entries) => entries
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_artifact_put_by_the_cli_is_fetched_by_a_worker_and_survives_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("ecobench.db");
    let (path, content) = weights_file(tmp.path(), "pretrained.safetensors", 7);
    let mut coordinator = CoordinatorProcess::start(&db, &[]);

    let mut cli = CliClient::connect(&coordinator.addr, None).await.unwrap();
    let sha = cli
        .put_artifact(&path, "pretrained.safetensors")
        .await
        .unwrap();
    assert_eq!(sha, sha256_file(&path).unwrap().0);
    assert_eq!(stored_files(&db), std::slice::from_ref(&sha));
    assert_eq!(
        std::fs::read(artifacts_dir(&db).join(&sha)).unwrap(),
        content
    );
    // A second put of the same content is verified and acknowledged.
    let mut raw = raw_client(&coordinator.addr, None).await;
    let again = artifact::put_file(&mut raw, &path, "again").await.unwrap();
    assert!(again.already_present);
    assert_eq!(again.size_bytes, content.len() as u64);

    let cache = ArtifactCache::new(&tmp.path().join("worker-state"));
    let mut client = worker(&coordinator.addr, None).await;
    let fetched = cache.fetch(&mut client, &sha).await.unwrap();
    assert_eq!(fetched, cache.dir().join(&sha));
    assert_eq!(std::fs::read(&fetched).unwrap(), content);

    // With the coordinator gone, the cache serves it.
    coordinator.kill();
    assert_eq!(cache.fetch(&mut client, &sha).await.unwrap(), fetched);
    let store = Store::open(&db).unwrap();
    let record = store
        .artifact(&sha)
        .unwrap()
        .expect("the record is in sled");
    assert_eq!(
        (record.size, record.name.as_str()),
        (content.len() as u64, "pretrained.safetensors")
    );
    drop(store);

    // A restarted coordinator serves it; a corrupt cached copy is fetched again.
    let coordinator = CoordinatorProcess::start(&db, &[]);
    std::fs::write(&fetched, b"not the weights").unwrap();
    let mut client = worker(&coordinator.addr, None).await;
    let refetched = cache.fetch(&mut client, &sha).await.unwrap();
    assert_eq!(std::fs::read(&refetched).unwrap(), content);
    let names: Vec<_> = std::fs::read_dir(cache.dir()).unwrap().collect();
    assert_eq!(names.len(), 1, "no temporary file left in the cache");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_hash_or_an_oversized_stream_is_refused_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("ecobench.db");
    let limit = (3 * ARTIFACT_CHUNK_BYTES).to_string();
    let mut coordinator = CoordinatorProcess::start(&db, &["--max-artifact-bytes", &limit]);
    let mut client = raw_client(&coordinator.addr, None).await;
    let (path, content) = weights_file(tmp.path(), "w.safetensors", 3);
    let (sha, size) = sha256_file(&path).unwrap();
    let other_sha = sha256_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .unwrap()
        .0;

    let wrong_hash = pb::ArtifactHeader {
        sha256: other_sha.clone(),
        size_bytes: size,
        name: "w.safetensors".into(),
    };
    let status = put_raw(&mut client, wrong_hash, &content)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    for part in [sha.as_str(), other_sha.as_str(), "w.safetensors"] {
        assert!(status.message().contains(part), "{status:?}");
    }

    let over_limit = pb::ArtifactHeader {
        sha256: sha.clone(),
        size_bytes: 4 * ARTIFACT_CHUNK_BYTES as u64,
        name: "big".into(),
    };
    let status = put_raw(&mut client, over_limit, &content)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("limit of {limit} bytes")),
        "{status:?}"
    );

    let longer = [content.as_slice(), &content].concat();
    let lying = pb::ArtifactHeader {
        sha256: sha.clone(),
        size_bytes: size,
        name: "lying".into(),
    };
    let status = put_raw(&mut client, lying, &longer).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains(&format!("declared {size} bytes")),
        "{status:?}"
    );

    let short = pb::ArtifactHeader {
        sha256: sha.clone(),
        size_bytes: size,
        name: "short".into(),
    };
    let status = put_raw(&mut client, short, &content[..1000])
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("ended after 1000 bytes"),
        "{status:?}"
    );

    assert_eq!(
        stored_files(&db),
        Vec::<String>::new(),
        "no artifact and no temporary file"
    );
    coordinator.kill();
    let store = Store::open(&db).unwrap();
    assert!(store.artifact(&sha).unwrap().is_none());
    assert!(store.artifact(&other_sha).unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn fetching_an_unknown_artifact_is_not_found_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let coordinator = CoordinatorProcess::start(&tmp.path().join("db"), &[]);
    let cache = ArtifactCache::new(tmp.path());
    let mut client = worker(&coordinator.addr, None).await;
    let unknown = "ab".repeat(32);
    let err = cache.fetch(&mut client, &unknown).await.unwrap_err();
    let ClientError::Refused { code, message } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*code, tonic::Code::NotFound);
    assert!(
        message.contains(&unknown) && message.contains("put it first"),
        "{message}"
    );
    assert_eq!(std::fs::read_dir(cache.dir()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_is_required_for_artifacts_when_set() {
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let token_arg = token_file.display().to_string();
    let db = tmp.path().join("db");
    let coordinator = CoordinatorProcess::start(&db, &["--token-file", &token_arg]);
    let (path, _) = weights_file(tmp.path(), "w", 1);
    let sha = sha256_file(&path).unwrap().0;

    let mut anonymous = worker(&coordinator.addr, None).await;
    let err = anonymous.put_artifact(&path, "w").await.unwrap_err();
    assert!(err.is_unauthenticated(), "{err:?}");
    let cache = ArtifactCache::new(tmp.path());
    let err = cache.fetch(&mut anonymous, &sha).await.unwrap_err();
    assert!(err.is_unauthenticated(), "{err:?}");
    assert_eq!(stored_files(&db), Vec::<String>::new());

    let mut client = worker(&coordinator.addr, Some("s3cret")).await;
    assert_eq!(client.put_artifact(&path, "w").await.unwrap(), sha);
    assert!(cache.fetch(&mut client, &sha).await.is_ok());
}
