//! A full disk, for real: the coordinator's database on a small tmpfs that is then filled
//! to the last byte. A write is refused as Unavailable and the coordinator stops by
//! itself, saying why (sled takes no write after an I/O error until the database is
//! reopened). Once the disk has room, a coordinator started again on the same database
//! has every campaign the first one accepted, and takes writes. Needs root (mount);
//! elsewhere it prints why and returns.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ecobench_proto::pb;

use crate::support::{CoordinatorProcess, client, submit};

/// The tmpfs: room for sled's first segments, little more.
const SIZE: &str = "32m";

/// A tmpfs mounted on a folder, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={SIZE}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|err| format!("cannot run mount: {err}"))?;
        if !out.status.success() {
            return Err(format!(
                "`mount -t tmpfs` is not permitted here (needs root or CAP_SYS_ADMIN): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A campaign of `seeds` jobs (a few hundred bytes each in the database).
fn campaign_text(name: &str, dataset: &Path, seeds: u32) -> String {
    let seeds: Vec<String> = (1..=seeds).map(|s| s.to_string()).collect();
    crate::support::campaign(
        name,
        dataset,
        &format!("[{}]", seeds.join(", ")),
        "[[model]]\nkind = \"cnn\"\n",
    )
}

/// Writes zeros into `path` until the file system refuses; the error it gave.
fn fill(path: &Path) -> std::io::Error {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 1 << 16];
    loop {
        if let Err(err) = file.write_all(&chunk).and_then(|()| file.sync_all()) {
            return err;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_stops_the_coordinator_and_a_restart_loses_nothing_it_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let tmpfs = match Tmpfs::mount(&tmp.path().join("disk")) {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            eprintln!("disk_full: not run: {why}");
            return;
        }
    };
    let db = tmpfs.0.join("db");
    let dataset = tmp.path().join("data");
    let log = tmp.path().join("coordinator-0.log");
    let mut first = CoordinatorProcess::start_logged(&db, &log);
    let mut client_a = client(&first.addr, None).await;
    let before = submit(
        &mut client_a,
        "before.toml",
        &campaign_text("before", &dataset, 4),
    )
    .await
    .unwrap();

    let full = fill(&tmpfs.0.join("filler"));
    assert_eq!(full.kind(), std::io::ErrorKind::StorageFull, "{full}");
    // sled may still have room in a page it holds: campaigns go in until one does not.
    let mut accepted = vec![(before.campaign_id, before.n_jobs)];
    let mut refused = None;
    for n in 0..50 {
        let name = format!("during-{n}");
        let text = campaign_text(&name, &dataset, 16);
        match submit(&mut client_a, &format!("{name}.toml"), &text).await {
            Ok(answer) => accepted.push((answer.campaign_id, answer.n_jobs)),
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let refused = refused.expect("a submission is refused once the disk is full");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("No space left on device")
            && refused.message().contains("retry once it is back"),
        "{refused:?}"
    );

    let status = first.wait_exit(Duration::from_secs(30));
    let text = read(&log);
    assert!(
        status.is_some_and(|s| !s.success()),
        "the coordinator stops by itself, failing: {status:?}\n{text}"
    );
    for what in [
        "failed a write",
        "No space left on device",
        "start the coordinator again",
        db.to_str().unwrap(),
    ] {
        assert!(text.contains(what), "the log says {what:?}:\n{text}");
    }

    // Room again: a new coordinator on the same database has what the first accepted.
    std::fs::remove_file(tmpfs.0.join("filler")).unwrap();
    let second = CoordinatorProcess::start_logged(&db, &tmp.path().join("coordinator-1.log"));
    let mut client_b = client(&second.addr, None).await;
    for (campaign, n_jobs) in &accepted {
        let request = pb::GetCampaignRequest {
            campaign: campaign.clone(),
        };
        let status = client_b
            .get_campaign(request)
            .await
            .unwrap_or_else(|err| panic!("campaign {campaign} accepted before is kept: {err:?}"))
            .into_inner();
        assert_eq!(status.n_jobs, *n_jobs);
        assert_eq!(status.pending, *n_jobs, "{status:?}");
    }
    let after = submit(
        &mut client_b,
        "after.toml",
        &campaign_text("after", &dataset, 2),
    )
    .await
    .expect("writes work once the disk has room");
    assert!(after.created);
    drop(second);
    drop(first);
}
