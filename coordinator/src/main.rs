//! `coordinator`: flags, tracing, binding and signals; the work is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use ecobench_coordinator::artifacts::DEFAULT_MAX_ARTIFACT_BYTES;
use ecobench_coordinator::client::Client;
use ecobench_coordinator::commands::{self, RunOptions};
use ecobench_coordinator::service::{
    DEFAULT_JOIN_BURST, DEFAULT_JOIN_RATE, JoinLimit, Security, Tokens,
};
use ecobench_coordinator::{CoordinatorConfig, ServeConfig};
use ecobench_proto::tls::{ClientTls, ServerTls};
use ecobench_shared::metrics::MetricsListener;
use ecobench_shared::process::read_token_file;

/// The ecobench coordinator: stores campaigns and results, leases jobs to workers, serves reports.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the cluster: workers join it, clients submit campaigns and fetch reports.
    ///
    /// Every flag can also come from an environment variable (`ECOBENCH_` and the flag's
    /// name, upper-cased, `-` → `_`) and from the `--config` file; a flag wins over the
    /// environment, which wins over the file.
    Serve {
        /// A TOML file of flags: `db = "/var/lib/ecobench/db"`, one key per long flag with
        /// `-` → `_` (deploy/config/coordinator.toml lists them all).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Address to listen on (port 0 picks a free port; the address is printed).
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
        /// The sled database folder.
        #[arg(long, default_value = "results/ecobench.db")]
        db: PathBuf,
        #[command(flatten)]
        security: SecurityArgs,
        /// Seconds a lease lives without a heartbeat: a worker that stops heartbeating
        /// loses its job after this long.
        #[arg(long, default_value_t = 15)]
        lease_s: u64,
        /// Seconds after a start during which no lease expires, so that workers that kept
        /// training through an outage reconnect first.
        #[arg(long, default_value_t = 60)]
        restart_grace_s: u64,
        /// Failed attempts before a job is failed for good (expired leases, outages and
        /// hand-backs do not count).
        #[arg(long, default_value_t = 3)]
        max_attempts: u32,
        /// Largest campaign matrix accepted.
        #[arg(long, default_value_t = ecobench_shared::campaign::DEFAULT_MAX_JOBS)]
        max_jobs: usize,
        /// Largest artifact (weights file) accepted, in bytes.
        #[arg(long, default_value_t = DEFAULT_MAX_ARTIFACT_BYTES)]
        max_artifact_bytes: u64,
        /// Serve Prometheus metrics at http://ADDR/metrics (conventionally port 9464; port
        /// 0 picks a free port, printed on the second line). Off when not given.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<SocketAddr>,
    },
    /// Submit a campaign file; prints the campaign id as the last line.
    Submit {
        /// The campaign TOML file.
        file: PathBuf,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show campaigns (or one) and workers.
    Status {
        /// Campaign id or name; all campaigns when omitted.
        campaign: Option<String>,
        #[command(flatten)]
        conn: Connection,
        /// Follow the campaign live (the one named, else the only one running) until it
        /// ends: a progress bar on a terminal, one line per event otherwise.
        #[arg(long)]
        watch: bool,
    },
    /// Fetch a campaign's report: print the table, write its files (by default jobs.csv,
    /// summary.csv, emissions.csv, report.json).
    Report {
        /// Campaign id or name.
        campaign: String,
        #[command(flatten)]
        conn: Connection,
        /// Output folder.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Wait until every job has ended.
        #[arg(long)]
        wait: bool,
        /// Files to write: table, csv, json, md, html or all (repeatable, or a comma list);
        /// default csv and json.
        #[arg(long = "format", value_name = "FORMAT")]
        formats: Vec<String>,
        /// Another campaign (id or name) to compare with: per model and configuration, the
        /// change in accuracy, time and energy, and whether it is beyond the intervals.
        #[arg(long, value_name = "CAMPAIGN")]
        compare: Option<String>,
    },
    /// All in one: a loopback coordinator, local workers, the campaign, the report.
    Run {
        /// The campaign TOML file.
        file: PathBuf,
        /// Local worker processes.
        #[arg(long, default_value_t = 2)]
        workers: u32,
        /// Output folder (report files, worker logs, and the database by default).
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// The sled database folder; default <out>/ecobench.db.
        #[arg(long)]
        db: Option<PathBuf>,
        /// Dataset folder handed to the workers.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Country (ISO-3166 alpha-3) for the carbon intensity.
        #[arg(long)]
        country: Option<String>,
        /// Cloud region (provider:region, e.g. aws:eu-west-3) for the carbon intensity;
        /// wins over --country.
        #[arg(long, value_name = "PROVIDER:REGION")]
        region: Option<String>,
        /// Largest artifact (weights file) accepted, in bytes.
        #[arg(long, default_value_t = DEFAULT_MAX_ARTIFACT_BYTES)]
        max_artifact_bytes: u64,
        /// Log the coordinator to stderr instead of <out>/coordinator.log.
        #[arg(short, long)]
        verbose: bool,
    },
}

/// How `serve` guards its door: tokens, TLS, the join rate.
#[derive(Debug, clap::Args)]
struct SecurityArgs {
    /// File holding the shared token callers must present (workers and clients alike).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// File holding the token workers must present (the shared one works too).
    #[arg(long)]
    worker_token_file: Option<PathBuf>,
    /// File holding the token clients (submit, status, report) must present (the shared
    /// one works too).
    #[arg(long)]
    client_token_file: Option<PathBuf>,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM bundle): mTLS. Needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// Joins per second one address may sustain.
    #[arg(long, default_value_t = DEFAULT_JOIN_RATE, value_name = "PER_S")]
    join_rate: f64,
    /// Joins one address may make at once (every worker a host starts together).
    #[arg(long, default_value_t = DEFAULT_JOIN_BURST, value_name = "N")]
    join_burst: u32,
    /// Allow a non-loopback address that lets workers or clients in without a token or a
    /// client certificate.
    #[arg(long)]
    insecure: bool,
}

impl SecurityArgs {
    fn load(&self) -> Result<Security> {
        let token = |path: &Option<PathBuf>| path.as_deref().map(read_token_file).transpose();
        if !(self.join_rate.is_finite() && self.join_rate > 0.0) || self.join_burst == 0 {
            bail!(
                "--join-rate {} --join-burst {}: both must be above zero",
                self.join_rate,
                self.join_burst
            );
        }
        Ok(Security {
            tokens: Tokens {
                shared: token(&self.token_file)?,
                worker: token(&self.worker_token_file)?,
                client: token(&self.client_token_file)?,
            },
            tls: ServerTls::from_flags(
                self.tls_cert.as_deref(),
                self.tls_key.as_deref(),
                self.client_ca.as_deref(),
            )?,
            join_limit: JoinLimit {
                per_second: self.join_rate,
                burst: self.join_burst,
            },
            insecure: self.insecure,
        })
    }
}

/// Where the coordinator is and how to authenticate.
#[derive(Debug, clap::Args)]
struct Connection {
    /// The coordinator's host:port.
    #[arg(long, env = "ECOBENCH_ADDR", default_value = "127.0.0.1:50051")]
    addr: String,
    /// File holding the token (the client token, or the shared one).
    #[arg(long, env = "ECOBENCH_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Connect with TLS, trusting this CA bundle (PEM) for the coordinator's certificate.
    #[arg(long, env = "ECOBENCH_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Client certificate (PEM) for a coordinator that requires one (--client-ca); needs
    /// --key and --ca.
    #[arg(long, env = "ECOBENCH_CERT", value_name = "FILE", requires_all = ["key", "ca"])]
    cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, env = "ECOBENCH_KEY", value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
}

impl Connection {
    async fn connect(&self) -> Result<Client> {
        let token = self
            .token_file
            .as_deref()
            .map(read_token_file)
            .transpose()?;
        let tls = ClientTls::from_flags(
            self.ca.as_deref(),
            self.cert.as_deref(),
            self.key.as_deref(),
        )?;
        Client::connect_with(&self.addr, token.as_deref(), tls.as_ref()).await
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli: Cli = ecobench_shared::config::parse(&["serve"]);
    match &cli.command {
        // `run` keeps the terminal for its progress display: logs go to a file.
        Command::Run {
            out,
            verbose: false,
            ..
        } => {
            std::fs::create_dir_all(out)
                .with_context(|| format!("cannot create the output folder {}", out.display()))?;
            let path = out.join("coordinator.log");
            let log = std::fs::File::create(&path)
                .with_context(|| format!("cannot create the log file {}", path.display()))?;
            ecobench_shared::telemetry::init_to_file(log);
        }
        _ => ecobench_shared::telemetry::init(),
    }
    match cli.command {
        Command::Serve {
            config: _,
            listen,
            db,
            security,
            lease_s,
            restart_grace_s,
            max_attempts,
            max_jobs,
            max_artifact_bytes,
            metrics,
        } => {
            let security = security.load()?;
            security
                .check_exposure(listen)
                .map_err(anyhow::Error::msg)?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            println!("listening on {}", listener.local_addr()?);
            let metrics = metrics
                .map(|addr| {
                    MetricsListener::bind(addr).with_context(|| {
                        format!("cannot serve metrics on {addr} (--metrics): pick a free port")
                    })
                })
                .transpose()?;
            if let Some(metrics) = &metrics {
                println!("metrics on http://{}/metrics", metrics.local_addr()?);
            }
            let coordinator = CoordinatorConfig {
                lease_ms: lease_s * 1000,
                restart_grace_ms: restart_grace_s * 1000,
                max_attempts,
                max_jobs,
                ..CoordinatorConfig::default()
            };
            ecobench_coordinator::run(
                listener,
                ServeConfig {
                    db,
                    security,
                    coordinator,
                    max_artifact_bytes,
                    metrics,
                },
                ecobench_shared::process::shutdown_signal(),
            )
            .await
        }
        Command::Submit { file, conn } => {
            let toml = commands::read_campaign(&file)?;
            commands::submit(&mut conn.connect().await?, &file, toml)
                .await
                .map(drop)
        }
        Command::Status {
            campaign,
            conn,
            watch,
        } => commands::status(&mut conn.connect().await?, campaign.as_deref(), watch).await,
        Command::Report {
            campaign,
            conn,
            out,
            wait,
            formats,
            compare,
        } => commands::report_with(
            &mut conn.connect().await?,
            &campaign,
            &out,
            wait,
            &formats,
            compare.as_deref(),
        )
        .await
        .map(drop),
        Command::Run {
            file,
            workers,
            out,
            db,
            data_dir,
            country,
            region,
            max_artifact_bytes,
            verbose: _,
        } => {
            let mut worker_args = Vec::new();
            if let Some(dir) = data_dir {
                worker_args.extend(["--data-dir".to_string(), dir.display().to_string()]);
            }
            if let Some(country) = country {
                worker_args.extend(["--country".to_string(), country]);
            }
            if let Some(region) = region {
                worker_args.extend(["--region".to_string(), region]);
            }
            commands::run(RunOptions {
                file,
                n_workers: workers.max(1),
                out,
                db,
                worker_args,
                max_artifact_bytes,
            })
            .await
        }
    }
}
