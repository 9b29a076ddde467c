//! `worker`: flags, tracing and signals; the work is in the library.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use ecobench_proto::tls::ClientTls;
use ecobench_shared::SvmConfig;
use ecobench_shared::metrics::MetricsListener;
use ecobench_shared::process::read_token_file;
use ecobench_worker::agent::{self, WorkerConfig};
use ecobench_worker::bench::BenchOptions;
use ecobench_worker::bench::svm::{SvmBenchConfig, bench_svm, parse_multiclass, parse_solver};
use ecobench_worker::energy::MeterConfig;
use ecobench_worker::exec::{self, ExecConfig};
use ecobench_worker::metrics::WorkerMetrics;
use ecobench_worker::models::svm::dcd::{DcdOptions, Loss};

/// An ecobench worker: joins a coordinator and trains the jobs it leases, one at a time,
/// each in a metered child process.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A TOML file of these flags: `join = "coordinator:50051"`, one key per long flag with
    /// `-` → `_` (deploy/config/worker.toml lists them all). Every flag can also come from an
    /// environment variable (`ECOBENCH_` and its name, upper-cased, `-` → `_`); a flag wins
    /// over the environment, which wins over the file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The coordinator's host:port.
    #[arg(long, value_name = "HOST:PORT")]
    join: Option<String>,
    /// File holding the token (the worker token, or the shared one).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Connect with TLS, trusting this CA bundle (PEM) for the coordinator's certificate.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Client certificate (PEM) for a coordinator that requires one (--client-ca); needs
    /// --key and --ca.
    #[arg(long, value_name = "FILE", requires_all = ["key", "ca"])]
    cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// This worker's id (default: the one remembered in the state folder, else the host
    /// name and a random suffix, remembered there).
    #[arg(long)]
    worker_id: Option<String>,
    /// Country whose grid powers this machine (ISO-3166 alpha-3, e.g. FRA); world average
    /// (475 gCO2e/kWh) when neither it nor --region is given.
    #[arg(long)]
    country: Option<String>,
    /// Cloud region whose grid powers this machine, provider:region (e.g. aws:eu-west-3,
    /// azure:francecentral, gcp:europe-west9); wins over --country. `--region list` prints
    /// the known ones.
    #[arg(long, value_name = "PROVIDER:REGION")]
    region: Option<String>,
    /// Carbon intensity in gCO2e/kWh, overriding the region's and the country's.
    #[arg(long)]
    carbon_intensity: Option<f64>,
    /// Power usage effectiveness of the room (default 1.0: no overhead counted).
    #[arg(long)]
    pue: Option<f64>,
    /// The CPU's TDP in watts (one package), overriding the built-in table.
    #[arg(long)]
    tdp_w: Option<f64>,
    /// Watts of one vCPU (or hardware thread) at full load as a TDP share (TDP ÷ threads of
    /// the host part), overriding the table and the per-vCPU coefficients.
    #[arg(long, value_name = "W")]
    cpu_w_per_vcpu: Option<f64>,
    /// Folder holding datasets (<dir>/fashion-mnist/…); may be repeated; searched before ./data.
    #[arg(long)]
    data_dir: Vec<PathBuf>,
    /// Compute threads for jobs that ask for all cores (0: every core).
    #[arg(long, default_value_t = 0)]
    threads: u32,
    /// Folder for the worker's state (finished results not yet delivered).
    /// Default: $XDG_STATE_HOME/ecobench, else ~/.local/state/ecobench.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (conventionally port 9465; port 0
    /// picks a free port, logged). Off when not given.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Root of the powercap sysfs tree (for tests and containers).
    #[arg(long, default_value = "/sys/class/powercap")]
    powercap_root: PathBuf,
    /// Root of procfs (for tests and containers).
    #[arg(long, default_value = "/proc")]
    proc_root: PathBuf,
    /// The DMI strings directory, read to tell a VM (for tests and containers).
    #[arg(long, default_value = "/sys/class/dmi/id")]
    dmi_root: PathBuf,
    /// The RAPL perf PMU directory (for tests and containers).
    #[arg(long, default_value = ecobench_worker::energy::perf::DEFAULT_PMU_DIR)]
    perf_pmu_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Internal: train one job read from stdin, printing JSON-line events.
    #[command(hide = true)]
    Exec,
    /// Train models on fixed data with a fixed seed and print their speed: train images/s,
    /// forward/backward/optimizer seconds, GFLOP/s against the measured peak, peak memory.
    Bench(BenchArgs),
    /// Fit and evaluate the linear SVM once on a dataset folder, on the subsets a job with
    /// the same seed and sizes would use, and print the times and accuracy.
    BenchSvm(BenchSvmArgs),
    /// Run the calibration benchmark the worker sends when it joins (fixed f32 matrix
    /// products on one thread) and print its score in GFLOP/s with the CPU model.
    Calibrate {
        /// Print one JSON object instead of a line.
        #[arg(long)]
        json: bool,
    },
    /// The energy meter on its own: which counters it reads, the model's estimate for a
    /// machine, a metered command, its cost.
    Meter {
        #[command(subcommand)]
        command: MeterCommand,
    },
}

/// `worker meter …` subcommands.
#[derive(Debug, Subcommand)]
enum MeterCommand {
    /// The CPU model's watts for the machine described (bare metal with one socket unless
    /// the flags say otherwise, whatever machine this runs on) at a load, and the table row
    /// or rule used.
    Estimate(EstimateArgs),
    /// Which RAPL interface the meter uses (perf_event, powercap or none), the zones it
    /// found, and why it passed over the others, with the fix.
    Probe {
        #[command(flatten)]
        sources: MeterSources,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Run a command and meter its process tree: duration, cpu/ram/total kWh, average W,
    /// kg CO2 and method, printed on stderr; exits with the command's status.
    Run {
        #[command(flatten)]
        sources: MeterSources,
        /// Country whose grid powers this machine (ISO-3166 alpha-3); world average if omitted.
        #[arg(long)]
        country: Option<String>,
        /// Cloud region whose grid powers this machine (`aws:eu-west-3`); wins over --country.
        #[arg(long)]
        region: Option<String>,
        /// Power usage effectiveness of the room (default 1.0).
        #[arg(long)]
        pue: Option<f64>,
        /// Print one JSON object (on stderr: the command keeps stdout).
        #[arg(long)]
        json: bool,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Measure the meter's own CPU time at 1 Hz against a busy child's (the README's figure).
    Overhead {
        #[command(flatten)]
        sources: MeterSources,
        /// Seconds the busy child runs.
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        /// Cores the busy child keeps busy.
        #[arg(long, default_value_t = 1)]
        threads: u32,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Internal: keep cores busy (the overhead benchmark's child).
    #[command(hide = true)]
    Spin {
        #[arg(long)]
        seconds: f64,
        #[arg(long, default_value_t = 1)]
        threads: u32,
    },
}

/// Where `worker meter` reads counters from.
#[derive(Debug, Clone, clap::Args)]
struct MeterSources {
    /// Root of the powercap sysfs tree.
    #[arg(long, default_value = "/sys/class/powercap")]
    powercap_root: PathBuf,
    /// The RAPL perf PMU directory.
    #[arg(long, default_value = ecobench_worker::energy::perf::DEFAULT_PMU_DIR)]
    perf_pmu_dir: PathBuf,
    /// Root of procfs.
    #[arg(long, default_value = "/proc")]
    proc_root: PathBuf,
    /// The DMI strings directory, read to tell a VM.
    #[arg(long, default_value = "/sys/class/dmi/id")]
    dmi_root: PathBuf,
}

impl MeterSources {
    fn config(&self, country: Option<String>) -> MeterConfig {
        MeterConfig {
            powercap_root: self.powercap_root.clone(),
            perf_pmu_dir: self.perf_pmu_dir.clone(),
            proc_root: self.proc_root.clone(),
            dmi_root: self.dmi_root.clone(),
            country,
            ..MeterConfig::default()
        }
    }
}

/// `worker meter estimate` flags.
#[derive(Debug, clap::Args)]
struct EstimateArgs {
    /// The CPU model string, as /proc/cpuinfo gives it (`Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz`).
    #[arg(long)]
    cpu: String,
    /// Busy fraction of the CPUs, 0 to 1.
    #[arg(long)]
    load: f64,
    /// Packages (bare metal).
    #[arg(long, default_value_t = 1, conflicts_with = "vm")]
    sockets: u32,
    /// A virtual machine on a host with this CPU (needs --vcpus).
    #[arg(long, requires = "vcpus")]
    vm: bool,
    /// The VM's vCPUs.
    #[arg(long, value_name = "N", requires = "vm")]
    vcpus: Option<u32>,
    /// The TDP of one package, overriding the table.
    #[arg(long, value_name = "W")]
    tdp_w: Option<f64>,
    /// Watts of one vCPU at full load as a TDP share, overriding the table and rules.
    #[arg(long, value_name = "W")]
    cpu_w_per_vcpu: Option<f64>,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    json: bool,
}

/// `worker bench` flags.
#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Models to run, one after the other (repeat the flag or separate with commas):
    /// cnn, densenet, vgg, svm-linear.
    #[arg(
        long = "model",
        value_delimiter = ',',
        default_value = "cnn,densenet,vgg,svm-linear"
    )]
    models: Vec<String>,
    /// Training images per epoch (the first of the training split; for the SVM, a seeded
    /// stratified subset of that size; 0: the whole split).
    #[arg(long, default_value_t = 4000)]
    images: usize,
    /// Test images to evaluate on after training (0: no evaluation).
    #[arg(long, default_value_t = 0)]
    test_images: usize,
    /// Images per step.
    #[arg(long, default_value_t = 32)]
    batch: u32,
    /// Compute threads (0: every core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Epochs.
    #[arg(long, default_value_t = 1)]
    epochs: u32,
    /// Steps trained before timing starts.
    #[arg(long, default_value_t = 5)]
    warmup_batches: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Seed of the initial weights and the shuffling.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Dataset: a known name or a folder of IDX files.
    #[arg(long, default_value = "fashion-mnist")]
    data: String,
    /// Folder holding datasets, searched before ./data.
    #[arg(long)]
    data_dir: Vec<PathBuf>,
    /// DenseNet growth rate.
    #[arg(long, default_value_t = 12)]
    growth_rate: u32,
    /// DenseNet blocks.
    #[arg(long, default_value_t = 3)]
    n_blocks: u32,
    /// DenseNet layers per block.
    #[arg(long, default_value_t = 4)]
    layers_per_block: u32,
    /// VGG width multiplier.
    #[arg(long, default_value_t = 0.25)]
    width: f64,
    /// VGG without batch norm.
    #[arg(long)]
    no_batch_norm: bool,
    /// SVM penalty C.
    #[arg(long, default_value_t = 1.0)]
    c: f64,
    /// SVM solver: dcd (dual coordinate descent) or smo (smartcore).
    #[arg(long, default_value = "dcd", value_parser = parse_solver)]
    solver: ecobench_shared::SvmSolver,
    /// SVM multiclass scheme: ovo or ovr (default: the solver's own, one-vs-one).
    #[arg(long, value_parser = parse_multiclass)]
    multiclass: Option<ecobench_shared::SvmMulticlass>,
    /// Print one JSON object per model.
    #[arg(long)]
    json: bool,
}

/// `worker bench-svm` flags.
#[derive(Debug, Clone, clap::Args)]
struct BenchSvmArgs {
    /// Dataset folder holding the four IDX files (gzipped or not).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Training images (a seeded stratified subset); the whole training split if omitted.
    #[arg(long, value_name = "N")]
    images: Option<u32>,
    /// Test images (a seeded stratified subset); the whole test split if omitted.
    #[arg(long, value_name = "N")]
    test_images: Option<u32>,
    /// The solver: dcd (dual coordinate descent) or smo (smartcore).
    #[arg(long, default_value = "dcd", value_parser = parse_solver)]
    solver: ecobench_shared::SvmSolver,
    /// ovr (one-vs-rest) or ovo (one-vs-one); default: the solver's own (dcd: ovr, smo: ovo).
    #[arg(long, value_parser = parse_multiclass)]
    multiclass: Option<ecobench_shared::SvmMulticlass>,
    /// Compute threads (0: every core); only dcd's one-vs-one uses more than one.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// The seed of a job: fixes the subsets and the solver's randomness.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Soft-margin penalty C.
    #[arg(long, default_value_t = 1.0)]
    c: f64,
    /// Write the training and test subsets used as IDX files into this folder.
    #[arg(long, value_name = "DIR")]
    save_data: Option<PathBuf>,
    /// Print one JSON object instead of a line.
    #[arg(long)]
    json: bool,
    /// dcd tuning: stopping tolerance on max − min projected gradient.
    #[arg(long, hide = true)]
    eps: Option<f64>,
    /// dcd tuning: most passes over the data.
    #[arg(long, hide = true)]
    max_epochs: Option<u32>,
    /// dcd tuning: the loss, l1 (hinge) or l2 (squared hinge).
    #[arg(long, hide = true)]
    loss: Option<String>,
    /// dcd tuning: turn shrinking off.
    #[arg(long, hide = true)]
    no_shrinking: bool,
}

fn main() -> Result<()> {
    let cli: Cli = ecobench_shared::config::parse(&[]);
    match &cli.command {
        Some(Command::Exec) => {
            ecobench_worker::nn::keep_freed_memory();
            std::process::exit(exec::child_main())
        }
        Some(Command::Bench(args)) => {
            ecobench_worker::nn::keep_freed_memory();
            return bench(args);
        }
        Some(Command::BenchSvm(args)) => {
            ecobench_shared::telemetry::init();
            return run_bench_svm(args.clone());
        }
        Some(Command::Calibrate { json }) => return calibrate(&cli.proc_root, *json),
        Some(Command::Meter { command }) => return meter(command),
        None => {}
    }
    if cli.region.as_deref() == Some("list") {
        print!("{}", region_list());
        return Ok(());
    }
    ecobench_shared::telemetry::init();
    let Some(coordinator) = cli.join.clone() else {
        bail!("say which coordinator to join: worker --join HOST:PORT");
    };
    let state_dir = cli.state_dir.clone().unwrap_or_else(default_state_dir);
    // Held until the worker exits: one worker per state folder.
    let state = ecobench_worker::state::StateDir::lock(&state_dir)?;
    let worker_id = state.worker_id(cli.worker_id.as_deref(), || {
        format!(
            "{}-{:08x}",
            ecobench_worker::fingerprint::hostname(),
            rand::random::<u32>()
        )
    })?;
    let metrics = WorkerMetrics::new();
    let metrics_listener = cli
        .metrics
        .map(|addr| {
            MetricsListener::bind(addr).with_context(|| {
                format!("cannot serve metrics on {addr} (--metrics): pick a free port")
            })
        })
        .transpose()?;
    let config = WorkerConfig {
        coordinator,
        token: cli.token_file.as_deref().map(read_token_file).transpose()?,
        tls: ClientTls::from_flags(cli.ca.as_deref(), cli.cert.as_deref(), cli.key.as_deref())?,
        worker_id,
        exec: ExecConfig {
            exe: std::env::current_exe().context("cannot find the worker's own executable")?,
            data_dirs: data_dirs(&cli.data_dir),
            threads: cli.threads,
            metrics: metrics.clone(),
        },
        meter: MeterConfig {
            powercap_root: cli.powercap_root,
            perf_pmu_dir: cli.perf_pmu_dir,
            proc_root: cli.proc_root,
            country: cli.country,
            region: cli.region,
            carbon_intensity_g_per_kwh: cli.carbon_intensity,
            pue: cli.pue,
            cpu_tdp_w: cli.tdp_w,
            cpu_w_per_vcpu: cli.cpu_w_per_vcpu,
            dmi_root: cli.dmi_root,
        },
        state_dir,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        if let Some(listener) = metrics_listener {
            serve_metrics(listener, metrics)?;
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            ecobench_shared::process::shutdown_signal().await;
            let _ = stop.send(true);
        });
        agent::run(config, stopped).await
    })
}

/// Serves `metrics` on `listener` for as long as the runtime runs.
fn serve_metrics(listener: MetricsListener, metrics: WorkerMetrics) -> Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(url = %format!("http://{addr}/metrics"), "serving metrics");
    let render: ecobench_shared::metrics::Render = std::sync::Arc::new(move || metrics.render());
    tokio::spawn(async move {
        let forever = std::future::pending::<()>();
        if let Err(err) = ecobench_shared::metrics::serve(&listener, render, forever).await {
            tracing::error!(error = %err, "the metrics server failed");
        }
    });
    Ok(())
}

/// `worker meter estimate`: the model's CPU watts for the machine described.
fn meter_estimate(args: &EstimateArgs) -> Result<()> {
    let overrides = ecobench_worker::energy::PowerOverrides {
        tdp_w: args.tdp_w,
        w_per_vcpu: args.cpu_w_per_vcpu,
    };
    let estimate = ecobench_worker::energy::power::estimate(
        &args.cpu,
        args.load,
        args.sockets,
        args.vcpus,
        overrides,
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&estimate)?);
    } else {
        println!(
            "{:.2} W CPU at load {} (idle {:.2} W, ±{:.0} %): {}",
            estimate.cpu_watts,
            estimate.load,
            estimate.idle_watts,
            estimate.uncertainty * 100.0,
            estimate.rule
        );
    }
    Ok(())
}

/// `worker meter …`.
fn meter(command: &MeterCommand) -> Result<()> {
    use ecobench_worker::meter_cli;
    match command {
        MeterCommand::Estimate(args) => meter_estimate(args),
        MeterCommand::Probe { sources, json } => meter_cli::probe(sources.config(None), *json),
        MeterCommand::Run {
            sources,
            country,
            region,
            pue,
            json,
            command,
        } => {
            let config = MeterConfig {
                country: country.clone(),
                region: region.clone(),
                pue: *pue,
                ..sources.config(None)
            };
            let code = meter_cli::run(config, command, *json)?;
            std::process::exit(code)
        }
        MeterCommand::Overhead {
            sources,
            seconds,
            threads,
            json,
        } => {
            let exe = std::env::current_exe().context("cannot find the worker's own executable")?;
            let figures = meter_cli::overhead(sources.config(None), &exe, *seconds, *threads)?;
            if *json {
                println!("{}", serde_json::to_string(&figures)?);
            } else {
                println!(
                    "meter overhead at 1 Hz: {:.4} % ({:.4} s of meter CPU for {:.2} s of busy \
                     child CPU over {:.1} s, {} samples); one sample costs {:.1} µs of CPU; {}",
                    figures.overhead_pct,
                    figures.meter_cpu_s,
                    figures.child_cpu_s,
                    figures.duration_s,
                    figures.n_samples,
                    figures.sample_cpu_us,
                    figures.source
                );
            }
            Ok(())
        }
        MeterCommand::Spin { seconds, threads } => {
            meter_cli::spin(*seconds, *threads);
            Ok(())
        }
    }
}

/// `worker calibrate`: the score the worker would send, with the CPU it was measured on.
fn calibrate(proc_root: &Path, json: bool) -> Result<()> {
    let cpu = ecobench_worker::energy::procfs::cpu_info(proc_root).with_context(|| {
        format!(
            "cannot read the CPU model from {}/cpuinfo: pass --proc-root",
            proc_root.display()
        )
    })?;
    let calibration = ecobench_worker::calibrate::run();
    if json {
        let object = serde_json::json!({
            "calibration_gflops": calibration.gflops,
            "runs_gflops": calibration.runs,
            "cpu_model": cpu.model,
            "matrix_size": ecobench_worker::calibrate::SIZE,
        });
        println!("{object}");
    } else {
        println!(
            "calibration: {:.2} GFLOP/s (median of {} runs of {} f32 {n}x{n} products, one thread) on {}",
            calibration.gflops,
            ecobench_worker::calibrate::RUNS,
            ecobench_worker::calibrate::PRODUCTS_PER_RUN,
            cpu.model,
            n = ecobench_worker::calibrate::SIZE,
        );
    }
    Ok(())
}

/// `worker --region list`: every known cloud region with its intensity and source.
fn region_list() -> String {
    let mut out = format!(
        "{:<34} {:>7}  {:<3}  {:<40}  source\n",
        "region", "g/kWh", "iso", "name, city"
    );
    for region in ecobench_shared::carbon::regions() {
        let place = [region.region_name.as_str(), region.city.as_str()]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "{:<34} {:>7}  {:<3}  {:<40}  {}\n",
            region.label(),
            region.g_per_kwh,
            region.iso3,
            place,
            region.source
        ));
    }
    out.push_str("(CodeCarbon's impact.csv, MIT license; give one as --region provider:region)\n");
    out
}

/// `worker bench-svm`: one measured fit, printed as a line or as JSON.
fn run_bench_svm(args: BenchSvmArgs) -> Result<()> {
    let mut dcd = DcdOptions::default();
    dcd.eps = args.eps.unwrap_or(dcd.eps);
    dcd.max_epochs = args.max_epochs.unwrap_or(dcd.max_epochs);
    dcd.shrinking = !args.no_shrinking;
    dcd.loss = match args.loss.as_deref() {
        None => dcd.loss,
        Some("l1") => Loss::Hinge,
        Some("l2") => Loss::SquaredHinge,
        Some(other) => bail!("unknown --loss {other:?}: use l1 (hinge) or l2 (squared hinge)"),
    };
    let config = SvmBenchConfig {
        data_dir: args.data,
        n_train: args.images,
        n_test: args.test_images,
        seed: args.seed,
        svm: SvmConfig {
            multiclass: (args.multiclass).unwrap_or(args.solver.default_multiclass()),
            ..SvmConfig::new(args.c, args.solver)
        },
        dcd,
        save_data: args.save_data,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .context("cannot start the compute threads")?;
    let report = pool
        .install(|| bench_svm(&config))
        .with_context(|| format!("cannot benchmark the SVM on {}", config.data_dir.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", report.line());
    }
    Ok(())
}

/// The worker's state folder when `--state-dir` is not given.
fn default_state_dir() -> PathBuf {
    let home_state =
        || std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state"));
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(home_state)
        .unwrap_or_else(std::env::temp_dir)
        .join("ecobench")
}

/// The folders searched for datasets: `--data-dir`s, `./data`, and the
/// `data/` of the checkout the binary was built in.
fn data_dirs(given: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = given.to_vec();
    dirs.push(PathBuf::from("data"));
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../data"));
    dirs
}

/// `worker bench`: fixes the thread count, resolves the data, runs the benchmark.
fn bench(args: &BenchArgs) -> Result<()> {
    // SAFETY: no other thread runs yet; candle reads the variable when it starts its pool.
    unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    let data = ecobench_worker::data::resolve_dataset(&args.data, &data_dirs(&args.data_dir))?;
    let options = BenchOptions {
        models: args.models.clone(),
        images: args.images,
        test_images: args.test_images,
        batch: args.batch,
        threads: args.threads,
        epochs: args.epochs,
        warmup_batches: args.warmup_batches,
        learning_rate: args.lr,
        seed: args.seed,
        data,
        growth_rate: args.growth_rate,
        n_blocks: args.n_blocks,
        layers_per_block: args.layers_per_block,
        width: args.width,
        batch_norm: !args.no_batch_norm,
        svm: SvmConfig {
            c: args.c,
            solver: args.solver,
            multiclass: args.multiclass.unwrap_or(args.solver.default_multiclass()),
        },
    };
    ecobench_worker::bench::run(&options, args.json)
}
