//! Running a node: open the store and the bus, make sure an admin token exists, record the start
//! in the system log, serve the API until asked to stop.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ledgerbridge_api::{AppState, BusHealth, HealthCheck, LedgerHealth, StoreHealth};
use ledgerbridge_bus::{Bus, EmbeddedLog, EmbeddedLogOptions, Record};
use ledgerbridge_config::Config;
use ledgerbridge_config::model::{BusBackend, LogFormat, StoreBackend};
use ledgerbridge_store::Store;

/// How the node was started; changes only what is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `ledgerbridge demo`: prints the admin token.
    Demo,
    /// `ledgerbridge serve`: prints where the admin token is, not the token.
    Serve,
}

/// A stage of the pipeline a process runs (`ledgerbridge serve --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Role {
    /// The connectors (and the sample systems with their load generator).
    Connector,
    /// The mapping worker: raw → canonical topics.
    Mapper,
    /// The anchoring worker: canonical topics → ledger.
    Anchor,
    /// The monitoring worker: canonical topics → rules → alerts.
    Monitor,
    /// The HTTP API and the admin UI.
    Api,
}

impl Role {
    /// Every stage (one process does everything).
    pub(crate) const ALL: [Self; 5] = [
        Self::Connector,
        Self::Mapper,
        Self::Anchor,
        Self::Monitor,
        Self::Api,
    ];
}

pub(crate) fn run(config: Config, mode: Mode, roles: &[Role]) -> Result<()> {
    init_logging(&config)?;
    // At least four workers: a task that blocks one for a moment (a library's synchronous call)
    // must not stall the HTTP server and the other stages on a two-core machine.
    let workers = std::thread::available_parallelism().map_or(4, |n| n.get().max(4));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve(config, mode, roles));
    // Blocking work still running (a long audit, a dry run over the history) is abandoned rather
    // than waited for: what it writes is transactional and resumes at the next start.
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

/// Waits for one stage of the shutdown until `deadline`; a stage still busy then is left behind
/// with a warning (its work is idempotent and resumes at the next start).
async fn stop_within<F: std::future::Future>(deadline: tokio::time::Instant, what: &str, stage: F) {
    tracing::info!("stopping: {what}");
    if tokio::time::timeout_at(deadline, stage).await.is_err() {
        tracing::warn!(
            "{what} did not stop within api.shutdown_grace; leaving it (its work resumes at the next start)"
        );
    }
}

/// Waits for SIGINT or SIGTERM (for processes without the HTTP server, which handles them
/// itself).
async fn shutdown_signal() -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot listen for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}

fn init_logging(config: &Config) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.filter))
        .with_context(|| format!("log.filter `{}` is not a valid filter", config.log.filter))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match config.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

async fn serve(config: Config, mode: Mode, roles: &[Role]) -> Result<()> {
    let data_dir = &config.node.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;

    let store = open_store(&config).await?;
    let bus = open_bus(&config).await?;
    let (token, token_is_new) = admin_token(&store, &config.admin_token_path()).await?;
    let ledger = open_ledger(&config, &store, mode).await?;

    let system_topic = format!("{}system", config.bus.topic_prefix);
    let started = serde_json::json!({
        "node": config.node.id,
        "version": env!("CARGO_PKG_VERSION"),
        "store": store.backend(),
        "bus": bus.backend(),
        "pid": std::process::id(),
    });
    publish_system_event(&*bus, &system_topic, "node.started", &started).await?;

    let registry = ledgerbridge_registry::Registry::new(store.clone());
    let connector_ctx = ledgerbridge_connectors::ConnectorContext {
        bus: Arc::clone(&bus),
        store: store.clone(),
        registry: match &config.registry.url {
            Some(url) => ledgerbridge_connectors::registry::SchemaRegistry::remote(
                url,
                config
                    .registry
                    .token
                    .as_ref()
                    .map(|t| t.resolve().context("registry.token"))
                    .transpose()?,
            ),
            None => ledgerbridge_connectors::registry::SchemaRegistry::Local(registry.clone()),
        },
        topic_prefix: config.bus.topic_prefix.clone(),
    };
    let mut connector_configs = if roles.contains(&Role::Connector) {
        config.connectors.clone()
    } else {
        Vec::new()
    };
    let samples = if config.samples.enabled && roles.contains(&Role::Connector) {
        let samples = crate::legacy::start(&config).await?;
        for c in &samples.connectors {
            if !connector_configs.iter().any(|mine| mine.name == c.name) {
                connector_configs.push(c.clone());
            }
        }
        Some(samples)
    } else {
        None
    };
    // A monitoring process without the connector role still reads the sources for the
    // scheduled reconciliation: it knows the connectors, disabled (it never polls them).
    if roles.contains(&Role::Monitor) && !roles.contains(&Role::Connector) {
        let mut known = config.connectors.clone();
        if config.samples.enabled {
            known.extend(crate::legacy::connectors(&config)?);
        }
        connector_configs = known
            .into_iter()
            .map(|mut c| {
                c.enabled = false;
                c
            })
            .collect();
    }
    // Connectors and the mapping worker run below the anchoring worker's priority
    // (`crate::lanes`).
    let upstream = crate::lanes::Lane::lowered("upstream", crate::lanes::UPSTREAM_NICE)?;
    let connectors = {
        let _on_lane = upstream.handle().enter();
        Arc::new(ledgerbridge_connectors::Connectors::start(
            connector_ctx,
            &connector_configs,
        ))
    };
    let mappings = Arc::new(open_mappings(&config, &store, &bus, &registry).await?);
    let (stop_mapper, mapper_stopped) = tokio::sync::watch::channel(false);
    let mapper = (config.mappings.worker && roles.contains(&Role::Mapper)).then(|| {
        let ctx = mappings.worker_context();
        upstream.spawn(async move {
            if let Err(e) = ledgerbridge_mappings::worker::run(ctx, mapper_stopped).await {
                tracing::error!("the mapping worker stopped: {e}");
            }
        })
    });
    let anchor_stats = Arc::new(crate::anchor::AnchorStats::default());
    let anchorer = (config.ledger.anchor && roles.contains(&Role::Anchor)).then(|| {
        let ctx = crate::anchor::AnchorContext {
            bus: Arc::clone(&bus),
            ledger: ledger.clone(),
            mappings: Arc::clone(&mappings),
            registry: registry.clone(),
            store: store.clone(),
            prefix: config.bus.topic_prefix.clone(),
            stats: Arc::clone(&anchor_stats),
        };
        let stopped = stop_mapper.subscribe();
        tokio::spawn(async move {
            if let Err(e) = crate::anchor::run(ctx, stopped).await {
                tracing::error!("the anchoring worker stopped: {e}");
            }
        })
    });
    let monitor_stats = Arc::new(crate::monitor::MonitorStats::default());
    let monitorer = roles.contains(&Role::Monitor).then(|| {
        let ctx = crate::monitor::MonitorContext {
            bus: Arc::clone(&bus),
            store: store.clone(),
            mappings: Arc::clone(&mappings),
            registry: registry.clone(),
            prefix: config.bus.topic_prefix.clone(),
            stats: Arc::clone(&monitor_stats),
        };
        let stopped = stop_mapper.subscribe();
        tokio::spawn(async move {
            if let Err(e) = crate::monitor::run(ctx, stopped).await {
                tracing::error!("the monitoring worker stopped: {e}");
            }
        })
    });
    let overseer = roles.contains(&Role::Monitor).then(|| {
        let ctx = crate::oversight::OversightContext {
            store: store.clone(),
            ledger: ledger.clone(),
            config: config.monitoring.clone(),
            connectors: Arc::clone(&connectors),
            mappings: Arc::clone(&mappings),
            api_url: api_url(&config.api.listen),
        };
        let stopped = stop_mapper.subscribe();
        tokio::spawn(async move {
            if let Err(e) = crate::oversight::run(ctx, stopped).await {
                tracing::error!("alert anchoring, delivery and audits stopped: {e}");
            }
        })
    });
    let components: Vec<Arc<dyn HealthCheck>> = vec![
        Arc::new(StoreHealth(store.clone())),
        Arc::new(BusHealth(Arc::clone(&bus))),
        Arc::new(LedgerHealth(ledger.clone())),
        Arc::new(crate::anchor::PipelineHealth {
            mappings: Arc::clone(&mappings),
            anchor: Arc::clone(&anchor_stats),
        }),
    ];
    let state = actix_web::web::Data::new(AppState {
        node_id: config.node.id.clone(),
        store: store.clone(),
        bus: Arc::clone(&bus),
        ledger,
        registry,
        connectors: Arc::clone(&connectors),
        mappings: Arc::clone(&mappings),
        system_topic: system_topic.clone(),
        components,
        metrics: vec![Arc::new(crate::anchor::PipelineMetrics {
            anchor: Arc::clone(&anchor_stats),
            monitor: Arc::clone(&monitor_stats),
        })],
        started: Instant::now(),
        audits: config
            .monitoring
            .audits
            .iter()
            .map(|a| ledgerbridge_api::audits::AuditSchedule {
                name: a.name.clone(),
                job: serde_json::to_value(a.job)
                    .ok()
                    .and_then(|j| j.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                schedule: a.schedule.clone(),
            })
            .collect(),
        alerts_channel: config.monitoring.channel.clone(),
    });
    if roles.contains(&Role::Api) {
        let listen: SocketAddr = config
            .api
            .listen
            .parse()
            .with_context(|| format!("api.listen `{}` is not an address", config.api.listen))?;
        let server = actix_web::HttpServer::new(move || ledgerbridge_api::app(state.clone()))
            .workers(2)
            .shutdown_timeout(config.api.shutdown_grace.get().as_secs())
            .bind(listen)
            .with_context(|| format!("cannot listen on {listen} (api.listen / --listen)"))?;
        let bound = server.addrs().first().copied().unwrap_or(listen);
        print_banner(&config, mode, &store, &*bus, bound, &token, token_is_new).await;
        server.run().await.context("the HTTP server failed")?;
    } else {
        let names: Vec<String> = roles
            .iter()
            .map(|r| format!("{r:?}").to_lowercase())
            .collect();
        println!(
            "ledgerbridge {} — node {:?}, roles {} (no HTTP API in this process). Stop with Ctrl-C.",
            env!("CARGO_PKG_VERSION"),
            config.node.id,
            names.join(", ")
        );
        drop(state);
        shutdown_signal().await?;
    }
    // After the HTTP server, the rest gets `api.shutdown_grace` in all.
    let deadline = tokio::time::Instant::now() + config.api.shutdown_grace.get();
    if let Some(samples) = samples {
        stop_within(deadline, "the sample load generator", samples.stop()).await;
    }
    stop_within(deadline, "the connectors", connectors.shutdown()).await;
    let _ = stop_mapper.send(true);
    for (name, task) in [
        ("the mapping worker", mapper),
        ("the anchoring worker", anchorer),
        ("the monitoring worker", monitorer),
        ("the oversight worker", overseer),
    ] {
        if let Some(task) = task {
            stop_within(deadline, name, task).await;
        }
    }
    upstream.shutdown(Duration::from_secs(5)).await;
    let stopped = serde_json::json!({ "node": config.node.id, "pid": std::process::id() });
    let published = tokio::time::timeout(
        Duration::from_secs(5),
        publish_system_event(&*bus, &system_topic, "node.stopped", &stopped),
    )
    .await;
    tracing::info!("stopped");
    match published {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!("the bus did not take the node.stopped event within 5 s");
            Ok(())
        }
    }
}

/// The API's base URL as other machines may reach it, for links in mails (none when it listens
/// on a wildcard address or a random port).
fn api_url(listen: &str) -> Option<String> {
    let addr: SocketAddr = listen.parse().ok()?;
    (addr.port() != 0 && !addr.ip().is_unspecified()).then(|| format!("http://{addr}"))
}

/// The mappings: the configured files and, with `[samples]`, the sample systems' mappings,
/// deployed at start; the pseudonym key from the configuration or the data directory.
async fn open_mappings(
    config: &Config,
    store: &Store,
    bus: &Arc<dyn Bus>,
    registry: &ledgerbridge_registry::Registry,
) -> Result<ledgerbridge_mappings::Mappings> {
    let key = match &config.mappings.pseudonym_key {
        Some(secret) => secret
            .resolve()
            .context("mappings.pseudonym_key")?
            .into_bytes(),
        None => local_pseudonym_key(&config.node.data_dir.join("pseudonym.key"))?,
    };
    let mut files: Vec<(String, String)> = Vec::new();
    for path in &config.mappings.files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("mappings.files: {}", path.display()))?;
        files.push((path.display().to_string(), text));
    }
    if config.samples.enabled {
        for (name, text) in ledgerbridge_mappings::SAMPLE_SPECS {
            files.push(((*name).to_owned(), (*text).to_owned()));
        }
    }
    let (store, bus, registry) = (store.clone(), Arc::clone(bus), registry.clone());
    let prefix = config.bus.topic_prefix.clone();
    tokio::task::spawn_blocking(move || {
        let initial: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        ledgerbridge_mappings::Mappings::open(
            store,
            bus,
            registry,
            &prefix,
            ledgerbridge_mappings::Pseudonymiser::new(&key),
            &initial,
            "configuration",
        )
        .map_err(|e| anyhow::anyhow!("{e}"))
    })
    .await
    .context("opening the mappings was interrupted")?
    .context("mappings")
}

/// A random pseudonym key kept in the data directory (owner-only), for a node without a
/// configured consortium key.
fn local_pseudonym_key(path: &Path) -> Result<Vec<u8>> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok(text.trim().as_bytes().to_vec());
    }
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("no random source for the pseudonym key"))?;
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(path, &key)
        .with_context(|| format!("cannot save the pseudonym key to {}", path.display()))?;
    tracing::warn!(file = %path.display(), "created a pseudonym key for this node only; set mappings.pseudonym_key to the consortium's key");
    Ok(key.into_bytes())
}

async fn open_store(config: &Config) -> Result<Store> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || match config.store.backend {
        StoreBackend::Sqlite => {
            let path = config.sqlite_path();
            Store::open_sqlite(&path).with_context(|| format!("store.sqlite ({})", path.display()))
        }
        StoreBackend::Postgres => open_postgres(&config),
    })
    .await
    .context("opening the store was interrupted")?
}

async fn open_bus(config: &Config) -> Result<Arc<dyn Bus>> {
    match config.bus.backend {
        BusBackend::Embedded => {
            let dir = config.embedded_log_dir();
            let options = EmbeddedLogOptions {
                segment_bytes: config.bus.embedded.segment_bytes,
                fsync: config.bus.embedded.fsync,
            };
            let log = tokio::task::spawn_blocking(move || EmbeddedLog::open(dir, options))
                .await
                .context("opening the embedded log was interrupted")?
                .context("bus.embedded")?;
            Ok(Arc::new(log))
        }
        BusBackend::Kafka => {
            let Some(kafka) = &config.bus.kafka else {
                bail!("bus.backend = \"kafka\" needs [bus.kafka]");
            };
            let mut properties = kafka.properties.clone();
            properties.insert(
                "security.protocol".into(),
                kafka.security_protocol.as_librdkafka().into(),
            );
            if let Some(m) = &kafka.sasl_mechanism {
                properties.insert("sasl.mechanism".into(), m.clone());
            }
            if let Some(u) = &kafka.sasl_username {
                properties.insert("sasl.username".into(), u.clone());
            }
            if let Some(p) = &kafka.sasl_password {
                let password = p.resolve().context("bus.kafka.sasl_password")?;
                properties.insert("sasl.password".into(), password);
            }
            let settings = ledgerbridge_bus::KafkaSettings {
                bootstrap_servers: kafka.bootstrap_servers.clone(),
                client_id: config.node.id.clone(),
                properties,
                timeout: kafka.timeout.get(),
                partitions: kafka.partitions,
                replication: kafka.replication_factor,
            };
            let bus = ledgerbridge_bus::KafkaBus::connect(settings)
                .await
                .with_context(|| format!("bus.kafka ({})", kafka.bootstrap_servers))?;
            Ok(Arc::new(bus))
        }
    }
}

/// `ledgerbridge ledger audit`: audits every channel (or one), with a progress bar on a
/// terminal; exit status 1 when something is inconsistent.
pub(crate) fn audit(config: &Config, only: Option<&str>) -> Result<std::process::ExitCode> {
    let ledger = open_ledger_offline(config)?;
    let channels = match only {
        Some(c) => vec![c.to_owned()],
        None => ledger.channels().context("listing the channels")?,
    };
    let mut clean = true;
    for channel in channels {
        let bar = indicatif::ProgressBar::new(0).with_message(channel.clone());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>10} [{bar:40}] {pos}/{len} entries ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let report = ledger
            .audit(&channel, |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
            .with_context(|| format!("auditing `{channel}`"))?;
        bar.finish_and_clear();
        match &report.finding {
            None => println!(
                "{channel}: OK — {} entries, {} tiles, {} checkpoints, {} blocks verified",
                report.entries, report.tiles, report.checkpoints, report.blocks
            ),
            Some(f) => {
                clean = false;
                println!("{channel}: INCONSISTENT at {}: {}", f.location, f.problem);
            }
        }
    }
    Ok(if clean {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// Opens the ledger of a node that may not be running (for audits and key management): the store
/// must exist already.
pub(crate) fn open_ledger_offline(config: &Config) -> Result<ledgerbridge_ledger::Ledger> {
    let store = match config.store.backend {
        StoreBackend::Sqlite => {
            let path = config.sqlite_path();
            if !path.exists() {
                bail!(
                    "no store at {}: start the node once, or give --config / --data-dir",
                    path.display()
                );
            }
            Store::open_sqlite(&path)
                .with_context(|| format!("store.sqlite ({})", path.display()))?
        }
        StoreBackend::Postgres => open_postgres(config)?,
    };
    ledgerbridge_ledger::Ledger::open(
        store,
        config.ledger_keys_dir(),
        &config.ledger_origin_prefix(),
    )
    .context("ledger")
}

fn open_postgres(config: &Config) -> Result<Store> {
    let Some(pg) = &config.store.postgres else {
        bail!("store.backend = \"postgres\" needs [store.postgres]");
    };
    let mut url = url::Url::parse(&pg.url).context("store.postgres.url")?;
    if let Some(secret) = &pg.password {
        let password = secret.resolve().context("store.postgres.password")?;
        url.set_password(Some(&password))
            .map_err(|()| anyhow::anyhow!("store.postgres.url cannot carry a password"))?;
    }
    Store::open_postgres(url.as_str(), pg.pool_size, pg.connect_timeout.get())
        .context("store.postgres")
}

/// Opens the ledger and creates the configured channels; the demo also anchors a few sample
/// events per channel (idempotently: their ids are fixed), so every auditor endpoint answers
/// from the first start.
async fn open_ledger(
    config: &Config,
    store: &Store,
    mode: Mode,
) -> Result<ledgerbridge_ledger::Ledger> {
    let config = config.clone();
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let ledger = ledgerbridge_ledger::Ledger::open(
            store,
            config.ledger_keys_dir(),
            &config.ledger_origin_prefix(),
        )
        .context("ledger")?;
        for channel in &config.ledger.channels {
            ledger
                .ensure_channel(channel)
                .with_context(|| format!("ledger channel `{channel}`"))?;
            if mode == Mode::Demo {
                ledger
                    .append(channel, &crate::samples::events(channel))
                    .with_context(|| format!("anchoring the sample events of `{channel}`"))?;
            }
        }
        Ok(ledger)
    })
    .await
    .context("opening the ledger was interrupted")?
}

/// Reuses the admin token saved in the data directory when the store still knows it; creates
/// (and saves, readable by the owner only) a new one otherwise. Returns it and whether it is new.
async fn admin_token(store: &Store, path: &Path) -> Result<(String, bool)> {
    let store = store.clone();
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        if let Ok(saved) = std::fs::read_to_string(&path) {
            let saved = saved.trim().to_owned();
            if store.verify_token(&saved)?.is_some() {
                return Ok((saved, false));
            }
            tracing::warn!(file = %path.display(), "the saved admin token is unknown to the store; creating a new one");
        }
        let (token, _) = store.create_token("admin (created at first start)", ledgerbridge_store::Role::Admin)?;
        write_private(&path, &token)
            .with_context(|| format!("cannot save the admin token to {}", path.display()))?;
        Ok((token, true))
    })
    .await
    .context("creating the admin token was interrupted")?
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(format!("{text}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

async fn publish_system_event(
    bus: &dyn Bus,
    topic: &str,
    kind: &str,
    data: &serde_json::Value,
) -> Result<()> {
    let record = Record::new(None, data.to_string().into_bytes()).with_header("type", kind);
    bus.publish(topic, vec![record])
        .await
        .with_context(|| format!("cannot record `{kind}` on the {topic} topic"))?;
    Ok(())
}

async fn print_banner(
    config: &Config,
    mode: Mode,
    store: &Store,
    bus: &dyn Bus,
    addr: SocketAddr,
    token: &str,
    token_is_new: bool,
) {
    let url = format!("http://{addr}");
    let token_file = config.admin_token_path();
    let store_detail = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.health())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| store_backend_name(config))
    };
    let bus_detail = bus.health().await.unwrap_or_else(|e| e.to_string());
    let token_line = match (mode, token_is_new) {
        (Mode::Demo, true) => format!("{token}  (new; saved in {})", token_file.display()),
        (Mode::Demo, false) => format!("{token}  (from {})", token_file.display()),
        (Mode::Serve, true) => format!("new, saved in {} (owner-only)", token_file.display()),
        (Mode::Serve, false) => format!("in {}", token_file.display()),
    };
    println!(
        "ledgerbridge {version} — node {node:?} ({what})\n\
         \n  data directory  {data}\n  store           {store_detail}\n  bus             {bus_detail}\n  \
         API and UI      {url}/\n  admin token     {token_line}\n\
         \nTry next:\n  curl {url}/api/v1/health\n  \
         curl -H \"Authorization: Bearer $(cat {token_file})\" {url}/api/v1/system/events\n  \
         open {url}/ in a browser; the API is described at {url}/api/v1/openapi.json\n\
         \nStop with Ctrl-C; everything stays in {data}.",
        version = env!("CARGO_PKG_VERSION"),
        node = config.node.id,
        what = match mode {
            Mode::Demo => "embedded default",
            Mode::Serve => "production node",
        },
        data = config.node.data_dir.display(),
        token_file = token_file.display(),
    );
}

fn store_backend_name(config: &Config) -> String {
    format!("{:?}", config.store.backend).to_lowercase()
}
