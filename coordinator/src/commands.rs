//! What the CLI's client subcommands do: submit, status, report, and the
//! all-in-one `run`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ecobench_proto::pb;

use crate::client::Client;
use crate::local::LocalWorkers;

/// Reads a campaign file, before anything connects, so that a wrong path is said first.
pub fn read_campaign(file: &Path) -> Result<String> {
    std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the campaign file {}", file.display()))
}

/// The `file:` weights a campaign names: each path as written, and where it is on disk
/// (relative paths are relative to the campaign file's folder).
fn weight_files(file: &Path, toml: &str) -> Result<Vec<(String, PathBuf)>> {
    let base = file.parent().unwrap_or(Path::new("."));
    ecobench_shared::campaign::weight_files(toml)
        .into_iter()
        .map(|written| {
            let on_disk = base.join(&written);
            if !on_disk.is_file() {
                bail!(
                    "{}: pretrained = \"file:{written}\": there is no file {}: give a path \
                     relative to the campaign file, or an absolute one",
                    file.display(),
                    on_disk.display()
                );
            }
            Ok((written, on_disk))
        })
        .collect()
}

/// Submits a campaign file's text, after uploading the weights files it names; prints and
/// returns the campaign id.
pub async fn submit(client: &mut Client, file: &Path, toml: String) -> Result<String> {
    let mut uploads = std::collections::HashMap::new();
    for (written, on_disk) in weight_files(file, &toml)? {
        let sha = client.put_artifact(&on_disk, &written).await?;
        println!("uploaded {} (sha256 {sha})", on_disk.display());
        uploads.insert(written, sha);
    }
    let answer = client
        .submit(&file.display().to_string(), toml, uploads)
        .await?;
    let how = if answer.created {
        "stored"
    } else {
        "already stored, unchanged"
    };
    println!("campaign {}: {} jobs ({how})", answer.name, answer.n_jobs);
    println!("{}", answer.campaign_id);
    Ok(answer.campaign_id)
}

/// Prints every campaign's counts and the workers; with `watch`, then follows the
/// campaign (the one named, else the only one still running) live until its end.
pub async fn status(client: &mut Client, campaign: Option<&str>, watch: bool) -> Result<()> {
    if watch {
        let target = match campaign {
            Some(campaign) => campaign.to_string(),
            None => {
                let running: Vec<pb::CampaignStatus> = client
                    .campaigns()
                    .await?
                    .into_iter()
                    .filter(|c| c.pending + c.leased > 0)
                    .collect();
                match running.as_slice() {
                    [] => {
                        println!("no campaign is running; nothing to watch");
                        return print_status(client, None).await;
                    }
                    [one] => one.campaign_id.clone(),
                    several => bail!(
                        "several campaigns are running ({}): name the one to watch, e.g. \
                         `coordinator status {} --watch`",
                        several
                            .iter()
                            .map(|c| format!("{} ({})", c.name, c.campaign_id))
                            .collect::<Vec<_>>()
                            .join(", "),
                        several[0].name
                    ),
                }
            }
        };
        crate::live::watch(client, &target).await?;
        return Ok(());
    }
    print_status(client, campaign).await
}

async fn print_status(client: &mut Client, campaign: Option<&str>) -> Result<()> {
    let campaigns = match campaign {
        Some(campaign) => vec![client.status(campaign).await?],
        None => client.campaigns().await?,
    };
    for c in &campaigns {
        println!("{}", status_line(c));
    }
    for w in client.workers().await? {
        let f = w.fingerprint.unwrap_or_default();
        println!(
            "worker {}: {} ({} cores), {}, {} jobs done",
            w.worker_id, f.cpu_model, f.logical_cores, f.energy_source, w.jobs_done
        );
    }
    Ok(())
}

fn status_line(c: &pb::CampaignStatus) -> String {
    format!(
        "{} ({}): {}/{} done, {} succeeded, {} failed, {} running, {} pending",
        c.name,
        c.campaign_id,
        c.succeeded + c.failed,
        c.n_jobs,
        c.succeeded,
        c.failed,
        c.leased,
        c.pending
    )
}

/// Waits until every job of the campaign has succeeded or failed, printing progress.
pub async fn wait_until_done(client: &mut Client, campaign: &str) -> Result<()> {
    let mut last = String::new();
    loop {
        let status = client.status(campaign).await?;
        let line = status_line(&status);
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        if status.pending + status.leased == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Fetches the report with the files of `formats` (names or comma lists; none = csv and
/// json), prints its table and writes its files into `out`; with `compare`, also
/// fetches that campaign's report and prints and writes (`compare.txt`,
/// `compare.json`) how it differs from `campaign`'s.
pub async fn report_with(
    client: &mut Client,
    campaign: &str,
    out: &Path,
    wait: bool,
    formats: &[String],
    compare: Option<&str>,
) -> Result<Vec<PathBuf>> {
    let formats: Vec<String> = formats
        .iter()
        .flat_map(|f| f.split(','))
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty())
        .collect();
    // Said before anything waits.
    crate::report::Format::parse_list(&formats).map_err(anyhow::Error::msg)?;
    if wait {
        wait_until_done(client, campaign).await?;
        if let Some(other) = compare {
            wait_until_done(client, other).await?;
        }
    }
    let report = client.report(campaign, &formats).await?;
    print!("{}", report.table);
    let mut written = write_files(&report.files, out)?;
    if let Some(other) = compare {
        let json = ["json".to_string()];
        let a = parse_report(&client.report(campaign, &json).await?, campaign)?;
        let b = parse_report(&client.report(other, &json).await?, other)?;
        let comparison = crate::report::compare(&a, &b);
        let table = comparison.table();
        print!("{table}");
        let files = [
            pb::ReportFile {
                name: "compare.txt".into(),
                content: table.into_bytes(),
            },
            pb::ReportFile {
                name: "compare.json".into(),
                content: serde_json::to_vec_pretty(&comparison)?,
            },
        ];
        written.extend(write_files(&files, out)?);
    }
    Ok(written)
}

/// The structured report in a `GetReport` answer's `report.json`.
fn parse_report(response: &pb::GetReportResponse, campaign: &str) -> Result<crate::report::Report> {
    let file = response
        .files
        .iter()
        .find(|f| f.name == "report.json")
        .with_context(|| format!("the coordinator sent no report.json for campaign {campaign}"))?;
    crate::report::Report::from_json(&String::from_utf8_lossy(&file.content)).with_context(|| {
        format!(
            "the report.json of campaign {campaign} does not read as a report: use a coordinator \
             of the same version as this client"
        )
    })
}

fn write_files(files: &[pb::ReportFile], out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the output folder {}", out.display()))?;
    let mut written = Vec::new();
    for file in files {
        let name = Path::new(&file.name);
        if name.components().count() != 1 {
            bail!(
                "the coordinator sent a report file with a path in its name ({:?}): refused",
                file.name
            );
        }
        let path = out.join(name);
        std::fs::write(&path, &file.content)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
        written.push(path);
    }
    Ok(written)
}

/// Options of the all-in-one `run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The campaign file.
    pub file: PathBuf,
    /// Local worker processes to start.
    pub n_workers: u32,
    /// Where the report and the database go.
    pub out: PathBuf,
    /// The database; default `<out>/ecobench.db`.
    pub db: Option<PathBuf>,
    /// Extra arguments for every worker (`--data-dir`, `--country`, …).
    pub worker_args: Vec<String>,
    /// Largest artifact the coordinator accepts, in bytes.
    pub max_artifact_bytes: u64,
}

/// Starts a coordinator on loopback and local workers, runs the campaign,
/// prints and writes the report.
pub async fn run(options: RunOptions) -> Result<()> {
    let toml = read_campaign(&options.file)?;
    // Refuse a bad file before anything starts.
    let file_name = options.file.display().to_string();
    let mut uploads = std::collections::BTreeMap::new();
    for (written, on_disk) in weight_files(&options.file, &toml)? {
        let (sha, _) = ecobench_shared::artifact::sha256_file(&on_disk)?;
        uploads.insert(written, sha);
    }
    ecobench_shared::campaign::parse_with_uploads(
        &file_name,
        &toml,
        crate::CoordinatorConfig::default().max_jobs,
        &uploads,
    )?;
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("cannot create the output folder {}", options.out.display()))?;
    let db = options
        .db
        .clone()
        .unwrap_or_else(|| options.out.join("ecobench.db"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind a loopback port")?;
    let addr = listener.local_addr()?.to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = crate::ServeConfig {
        max_artifact_bytes: options.max_artifact_bytes,
        ..crate::ServeConfig::new(db)
    };
    let mut server = tokio::spawn(crate::run(listener, config, async {
        let _ = stopped.await;
    }));
    // A coordinator that stops on its own (its database failed a write) ends the run.
    let outcome = tokio::select! {
        outcome = drive(&addr, &options, toml) => outcome,
        served = &mut server => {
            served.context("the coordinator task panicked")??;
            anyhow::bail!("the coordinator stopped before the campaign ended");
        }
    };
    let _ = stop.send(());
    server.await.context("the coordinator task panicked")??;
    outcome
}

async fn drive(addr: &str, options: &RunOptions, toml: String) -> Result<()> {
    let mut client = Client::connect(addr, None).await?;
    let campaign = submit(&mut client, &options.file, toml).await?;
    let threads = (std::thread::available_parallelism().map_or(1, |n| n.get()) as u32
        / options.n_workers)
        .max(1);
    let mut workers = LocalWorkers::spawn(
        addr,
        options.n_workers,
        threads,
        &options.worker_args,
        &options.out,
    )?;
    let mut watcher = client.clone();
    let waited = tokio::select! {
        waited = crate::live::watch(&mut watcher, &campaign) => waited.map(drop),
        died = workers.all_exited() => Err(anyhow::anyhow!("every local worker exited ({died}); see the worker-*.log files in {}", options.out.display())),
    };
    workers.stop().await;
    waited?;
    // `run` is the demo: every format, the HTML page and its charts included.
    report_with(
        &mut client,
        &campaign,
        &options.out,
        false,
        &["all".into()],
        None,
    )
    .await?;
    Ok(())
}
