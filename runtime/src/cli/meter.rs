//! `runtime meter`: TLS handshakes of a target cgroup (or pid tree), counted
//! in the kernel, priced by the vendor's sealed tariff, bought on chain ahead
//! (refused in the kernel past what is bought, unless the tariff allows
//! overage), exported to Prometheus. The tariff's file is watched: a valid,
//! licensed replacement takes over between two batches; any other is
//! refused while the old one keeps billing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use alloy::primitives::Address;
use anyhow::{Context as _, bail};
use sealbox_ebpf::{CgroupDir, Ports, Side, TlsConfig, TlsEvents, TlsMeter};
use sealbox_runtime::RuntimeError;
use sealbox_runtime::event_meter::metrics::Snapshot;
use sealbox_runtime::event_meter::tariff::{EventRecord, Tariff};
use sealbox_runtime::event_meter::{Allowance, Biller, Charged};
use sealbox_runtime::gate::check_and_record;
use sealbox_runtime::journal::{Usage, off_worker};
use sealbox_runtime::load::Loader;
use sealbox_runtime::purchase::{Buyer, PrepayPolicy};

use super::context::{ChainArgs, PrepayArgs, RunSession, SandboxArgs, StateArgs, read_file};

/// The unit a TLS-handshake tariff's manifest names.
pub const TLS_UNIT: &str = "tls_handshake";

/// Arguments of `runtime meter`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").args(["cgroup", "pid"])))]
pub struct Args {
    /// Meter TLS handshakes (the one kernel event metered so far; required, to say so).
    #[arg(long, required = true)]
    pub tls: bool,
    /// Remove the TLS meter from the kernel instead: detach its programs (which stay attached
    /// when the meter stops, so that counting and refusing go on) and delete its pins,
    /// totals included. What an uninstall does; the journal keeps what was billed.
    #[arg(long, conflicts_with_all = ["cgroup", "pid", "billing"])]
    pub uninstall: bool,
    /// The target: a cgroup v2 directory (e.g. /sys/fs/cgroup/unified/gateway); its processes
    /// and every cgroup below it are metered.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,
    /// The target: this process and the processes it starts from now on (it is moved into a
    /// new cgroup, sealbox-meter-PID under the cgroup v2 mount, which its children inherit;
    /// the cgroup stays after the meter stops).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// The sealed tariff (its manifest's unit must be `tls_handshake`). Replacing the file
    /// reloads it in place.
    #[arg(
        long,
        value_name = "TARIFF.sealed.wasm",
        required_unless_present = "uninstall"
    )]
    pub billing: Option<PathBuf>,
    /// Which end of the TLS connections the target is: `client` counts ClientHellos it sends
    /// (and can refuse connects past the allowance); `server` counts ServerHellos it sends
    /// (handshakes served; the kernel cannot refuse them, so only tariffs that allow overage
    /// can bill a server).
    #[arg(long, value_name = "SIDE", default_value = "client")]
    pub side: Side,
    /// A metered TCP port, the server's (repeatable; default 443).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<u16>,
    /// Serve /metrics (Prometheus) and /healthz on this address.
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// bpffs directory of the TLS meter's pinned maps (its counts outlive a restart).
    #[arg(long, value_name = "DIR", default_value = sealbox_ebpf::DEFAULT_TLS_PIN_DIR)]
    pub tls_pin_dir: PathBuf,
    /// Ring buffer size in bytes (a power of two, at least 4096). Events that do not fit are
    /// counted as dropped and still billed, from the kernel's counter.
    #[arg(long, value_name = "BYTES", default_value_t = sealbox_ebpf::DEFAULT_RING_BYTES)]
    pub ring_bytes: u32,
    /// How long a batch collects events before it is billed, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub batch_ms: u64,
    /// Re-check the tariff's license on chain this often (seconds); a lapsed license (or
    /// signer) empties the kernel's allowance: metered connects are refused until it holds
    /// again.
    #[arg(long, value_name = "S", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub refresh_secs: u64,
    /// Customer whose license is used (default: the key's own address).
    #[arg(long)]
    pub customer: Option<Address>,
    #[command(flatten)]
    pub prepay: PrepayArgs,
    #[command(flatten)]
    pub chain: ChainArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// The file a tariff was loaded from, as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// Runs `runtime meter` until SIGTERM or SIGINT (or, with `--uninstall`, removes it).
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.uninstall {
        TlsMeter::remove_pinned(&args.tls_pin_dir).with_context(|| {
            format!(
                "cannot remove the TLS meter pinned in {}",
                args.tls_pin_dir.display()
            )
        })?;
        println!(
            "removed the TLS meter of {} (its programs are detached)",
            args.tls_pin_dir.display()
        );
        return Ok(());
    }
    let Some(billing) = args.billing.clone() else {
        bail!("give the tariff with --billing TARIFF.sealed.wasm");
    };
    if args.cgroup.is_none() && args.pid.is_none() {
        bail!("give the target: --cgroup PATH or --pid PID");
    }
    let policy = args.prepay.policy()?;
    let tariff_bytes = read_file(&billing)?;
    let mut sandbox_args = args.sandbox.clone();
    // The events are counted by the TLS meter; the call meter has nothing to count.
    sandbox_args.no_kernel_meter = true;
    let run = RunSession::open(&args.chain, &args.state, &sandbox_args, args.customer).await?;
    let session = &run.session;
    let Some(client) = session.client.as_ref() else {
        bail!(
            "the chain at {} cannot be reached: `runtime meter` buys the units it bills and \
             needs the chain from the start",
            args.chain.rpc
        );
    };
    let loader = Loader {
        unit: TLS_UNIT,
        kernel_events: true,
        ..run.loader("meter")
    };
    let mut tariff = Tariff::new(loader.load(&tariff_bytes).await?)
        .with_context(|| format!("{} is not a usable tariff", billing.display()))?;
    if args.side == Side::Server && !tariff.overage() {
        bail!(
            "the tariff {} does not allow overage (events past the units bought), and on the \
             server side the kernel cannot refuse a handshake: it cannot bill a server. Meter \
             the clients (--side client), or ask the vendor for a tariff that allows overage",
            billing.display()
        );
    }

    let target = match (&args.cgroup, args.pid) {
        (Some(path), _) => path.clone(),
        (None, Some(pid)) => CgroupDir::for_pid(pid, &format!("sealbox-meter-{pid}"))
            .with_context(|| format!("cannot move pid {pid} into a cgroup of its own"))?
            .keep(),
        (None, None) => bail!("give --cgroup PATH or --pid PID"),
    };
    let mut config = TlsConfig::new(target.clone(), args.side);
    config.ports = if args.ports.is_empty() {
        Ports::default()
    } else {
        Ports::Only(args.ports.clone())
    };
    config.enforce = !tariff.overage();
    config.pin_dir = args.tls_pin_dir.clone();
    config.ring_bytes = args.ring_bytes;
    let mut meter = TlsMeter::attach(&config)
        .with_context(|| format!("cannot attach the TLS meter to {}", target.display()))?;
    let reader = meter
        .take_events()
        .context("the TLS meter's event reader is already taken")?;
    let tenant = meter.target_id();
    tracing::info!(
        target = %target.display(),
        side = args.side.as_str(),
        enforcing = config.enforce,
        tariff = %tariff.product().manifest().name,
        "metering TLS handshakes"
    );

    let journal = Arc::clone(&session.journal);
    let biller = Biller::open(Arc::clone(&journal), meter.epoch())?;
    let snapshot = Arc::new(Mutex::new(Snapshot {
        event: TLS_UNIT.into(),
        side: args.side.as_str().into(),
        ..Snapshot::default()
    }));
    let server = match args.listen {
        Some(addr) => Some(serve_metrics(addr, Arc::clone(&snapshot)).await?),
        None => None,
    };

    let mut state = Loop {
        meter,
        reader: Some(reader),
        biller,
        tenant,
        allowance: None,
        snapshot,
        policy,
        file_stamp: stamp(&billing),
        last_reload_look: Instant::now(),
        rate: Rate::default(),
        refresh: Duration::from_secs(args.refresh_secs),
        last_check: Instant::now(),
        licensed: true,
        retry_at: None,
        last_allowance_look: None,
    };
    state.describe(&tariff);
    let buyer = Buyer {
        client,
        signer: &session.signer,
        journal: &journal,
        policy: &policy,
    };
    // A purchase an earlier process left in flight is finished first.
    if let Err(e) = buyer.reconcile(tariff.product().usage_key()).await {
        tracing::debug!("nothing to reconcile: {e}");
    }

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn({
        let stop = Arc::clone(&stop);
        async move {
            shutdown_signal().await;
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let batch = Duration::from_millis(args.batch_ms);
    loop {
        // Read before the batch: the round after a signal bills what came in.
        let stopping = stop.load(std::sync::atomic::Ordering::SeqCst);
        let events = state.read_events(batch).await?;
        if state.last_reload_look.elapsed() >= Duration::from_secs(1) {
            state.last_reload_look = Instant::now();
            state.maybe_reload(&billing, &loader, &mut tariff).await;
        }
        if let Err(e) = state.round(&tariff, &events, &buyer).await {
            tracing::error!(
                "billing round failed (the events stay counted and are billed next round): {e:#}"
            );
        }
        if stopping {
            break;
        }
    }
    if let Some(server) = server {
        server.abort();
    }
    let usage = off_worker(&journal, {
        let key = *tariff.product().usage_key();
        move |j| j.usage(&key)
    })
    .await?;
    tracing::info!(
        used = usage.used_units(),
        bought = usage.bought_units,
        "stopped; the kernel programs stay attached (pinned links): handshakes are still counted, \
         and refused past the allowance, until the next start or `runtime meter --uninstall`"
    );
    Ok(())
}

/// The billing loop's state.
struct Loop {
    meter: TlsMeter,
    reader: Option<TlsEvents>,
    biller: Biller,
    /// The target's tenant id (the allowance is the target's).
    tenant: u64,
    /// What this process granted the kernel (set at the first round).
    allowance: Option<Allowance>,
    snapshot: Arc<Mutex<Snapshot>>,
    policy: PrepayPolicy,
    file_stamp: Option<FileStamp>,
    last_reload_look: Instant,
    rate: Rate,
    /// How often the license is checked between purchases.
    refresh: Duration,
    last_check: Instant,
    /// Whether the last license check held (nothing is granted while not).
    licensed: bool,
    /// No purchase before this, after a failed one.
    retry_at: Option<Instant>,
    /// (events billed, unused units, tariff) at the last inversion of the tariff.
    last_allowance_look: Option<(u64, u64, alloy::primitives::B256)>,
}

/// How long after a failed purchase the next one is tried.
const PURCHASE_RETRY: Duration = Duration::from_secs(5);

/// Units per second, smoothed, for the size of the next block.
#[derive(Debug, Default)]
struct Rate {
    last: Option<(Instant, u64)>,
    per_sec: f64,
}

impl Rate {
    fn sample(&mut self, used: u64) {
        let now = Instant::now();
        match self.last {
            Some((at, before)) if now.duration_since(at).as_secs_f64() >= 0.25 => {
                let measured =
                    used.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64();
                self.per_sec = 0.5 * self.per_sec + 0.5 * measured;
                self.last = Some((now, used));
            }
            Some(_) => {}
            None => self.last = Some((now, used)),
        }
    }
}

impl Loop {
    /// Lets events gather in the ring buffer for `batch`, then drains them
    /// all. Events that do not fit meanwhile are dropped by the kernel and
    /// counted (`sealbox_meter_ringbuf_dropped_total`); they are billed all the
    /// same, from the per-tenant totals.
    async fn read_events(&mut self, batch: Duration) -> anyhow::Result<Vec<EventRecord>> {
        tokio::time::sleep(batch).await;
        let mut reader = self.reader.take().context("the event reader was lost")?;
        let (reader, events) = tokio::task::spawn_blocking(move || {
            let mut all = Vec::new();
            loop {
                let more = reader.drain(65_536);
                if more.is_empty() {
                    break;
                }
                all.extend(more);
            }
            (reader, all)
        })
        .await
        .context("the event reader thread failed")?;
        self.reader = Some(reader);
        Ok(events
            .into_iter()
            .map(|e| EventRecord {
                tenant: e.tenant,
                seq: e.seq,
                ts_ns: e.ts_ns,
            })
            .collect())
    }

    /// Bills what the kernel counted, buys ahead, and keeps the kernel's
    /// allowance in step with the units bought.
    async fn round(
        &mut self,
        tariff: &Tariff,
        events: &[EventRecord],
        buyer: &Buyer<'_>,
    ) -> anyhow::Result<()> {
        let totals = self.meter.totals()?;
        let charged = self.biller.bill(tariff, &totals, events)?;
        let key = *tariff.product().usage_key();
        let journal = Arc::clone(buyer.journal);
        let mut usage = off_worker(&journal, move |j| j.usage(&key)).await?;
        self.rate.sample(usage.used_units());
        if self.last_check.elapsed() >= self.refresh {
            self.last_check = Instant::now();
            self.check_license(tariff, buyer).await?;
        }
        if !self.licensed {
            self.refresh_snapshot(&totals, &usage, tariff, charged.as_ref())?;
            return Ok(());
        }

        let block = self.policy.block_units(self.rate.per_sec);
        let low_water = block / 2;
        let owed = usage.used_units().saturating_sub(usage.bought_units);
        let may_retry = self.retry_at.is_none_or(|at| Instant::now() >= at);
        if usage.unused_units() <= low_water && may_retry {
            match buyer
                .buy(&key, tariff.code_hash(), block.saturating_add(owed))
                .await
            {
                Ok(_) => {
                    self.with_snapshot(|s| s.purchases_ok += 1);
                    self.retry_at = None;
                    usage = off_worker(&journal, move |j| j.usage(&key)).await?;
                }
                Err(e) => {
                    self.with_snapshot(|s| s.purchases_failed += 1);
                    // A refusal (escrow short, price above the cap) changes only
                    // with the chain; an outage may pass: look again in a while
                    // rather than at every batch.
                    self.retry_at = Some(Instant::now() + PURCHASE_RETRY);
                    tracing::warn!(
                        retry_in_s = PURCHASE_RETRY.as_secs(),
                        "buying units failed: {e}"
                    );
                }
            }
        }
        self.keep_allowance(tariff, &usage)?;
        // One update of everything, so that a reader never sees a bill
        // without the kernel's counters of the same round.
        self.refresh_snapshot(&totals, &usage, tariff, charged.as_ref())?;
        Ok(())
    }

    /// Re-checks the tariff's license: a lapsed license or signer empties the
    /// kernel's allowance (nothing more gets through, bought units included,
    /// as for calls); a license that holds again is granted anew.
    async fn check_license(&mut self, tariff: &Tariff, buyer: &Buyer<'_>) -> anyhow::Result<()> {
        let key = *tariff.product().usage_key();
        match check_and_record(buyer.client, buyer.journal, &key, tariff.code_hash()).await {
            Ok(_) => {
                if !self.licensed {
                    tracing::info!("the license holds again; granting the bought units");
                    self.licensed = true;
                    self.allowance = None;
                }
            }
            Err(
                e @ (RuntimeError::Unlicensed { .. } | RuntimeError::SignerNotAuthorized { .. }),
            ) => {
                if self.licensed {
                    tracing::warn!("{e}: refusing every metered connection from now on");
                }
                self.licensed = false;
                self.allowance = None;
                if !tariff.overage() {
                    self.meter.set_allowance(0)?;
                }
            }
            Err(e) => tracing::warn!("license check failed (the allowance stays as it is): {e}"),
        }
        Ok(())
    }

    /// Grants the kernel the events the unused bought units pay for.
    fn keep_allowance(&mut self, tariff: &Tariff, usage: &Usage) -> anyhow::Result<()> {
        if tariff.overage() {
            return Ok(());
        }
        let billed = self.biller.billed_for(self.tenant);
        // Inverting the tariff takes dozens of calls: only when something moved.
        let looked_at = (billed, usage.unused_units(), tariff.code_hash());
        if self.allowance.is_some() && self.last_allowance_look == Some(looked_at) {
            return Ok(());
        }
        self.last_allowance_look = Some(looked_at);
        let affordable = Allowance::affordable(tariff, billed, usage)?;
        match &mut self.allowance {
            Some(allowance) if affordable >= allowance.granted => {
                self.meter.add_allowance(affordable - allowance.granted)?;
                allowance.granted = affordable;
            }
            // The first look of this process, or a dearer tariff: what is left
            // after every event the kernel has counted (billed or not).
            _ => {
                let total = self.meter.total(self.tenant)?;
                self.meter.set_allowance(affordable.saturating_sub(total))?;
                self.allowance = Some(Allowance {
                    granted: affordable,
                });
            }
        }
        Ok(())
    }

    fn with_snapshot(&self, f: impl FnOnce(&mut Snapshot)) {
        let mut s = self.snapshot.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
    }

    fn describe(&self, tariff: &Tariff) {
        let m = tariff.product().manifest().clone();
        self.with_snapshot(|s| {
            s.product = m.product_id.to_string();
            s.tariff_name = m.name.clone();
            s.tariff_version = m.version.clone();
            s.code_hash = m.code_hash.to_string();
        });
    }

    fn refresh_snapshot(
        &self,
        totals: &BTreeMap<u64, u64>,
        usage: &Usage,
        tariff: &Tariff,
        charged: Option<&Charged>,
    ) -> anyhow::Result<()> {
        if let Some(charged) = charged {
            tracing::debug!(
                tariff = %tariff.product().manifest().name,
                events = ?charged.events,
                units = ?charged.units,
                "billed"
            );
        }
        let stats = self.meter.stats()?;
        let remaining = self.meter.quota()?.remaining();
        let enforcing = self.meter.enforcing()?;
        let key = *tariff.product().usage_key();
        let price = self
            .biller
            .journal()
            .lease(&key)
            .ok()
            .flatten()
            .map(|l| l.price_wei);
        self.with_snapshot(|s| {
            if let Some(price) = price {
                s.price_wei = price;
            }
            if let Some(charged) = charged {
                for (tenant, units) in &charged.units {
                    *s.units_billed.entry(*tenant).or_default() += units;
                    *s.billed_wei.entry(*tenant).or_default() += u128::from(*units) * s.price_wei;
                }
            }
            s.events = totals.clone();
            s.events_billed = self.biller.billed().clone();
            s.ringbuf_dropped = stats.dropped;
            s.refused = stats.refused;
            s.over_allowance = stats.over_allowance;
            s.allowance_remaining = remaining;
            s.enforcing = enforcing;
            s.units_used = usage.used_units();
            s.units_bought = usage.bought_units;
        });
        Ok(())
    }

    /// Loads the tariff file again when it changed: verified and licensed
    /// like at start, for the same product; on any failure the old tariff
    /// keeps billing.
    async fn maybe_reload(&mut self, path: &Path, loader: &Loader<'_>, tariff: &mut Tariff) {
        let now = stamp(path);
        if now.is_none() || now == self.file_stamp {
            return;
        }
        self.file_stamp = now;
        let result = async {
            let bytes = read_file(path)?;
            let product = loader.load(&bytes).await?;
            let fresh = Tariff::new(product)?;
            let (old, new) = (
                tariff.product().manifest().product_id,
                fresh.product().manifest().product_id,
            );
            if old != new {
                bail!(
                    "it is another product ({new}) than the tariff billing now ({old}); a \
                     replacement must be a release of the same product"
                );
            }
            if fresh.overage() != tariff.overage() {
                bail!(
                    "it changes whether overage is allowed; restart the meter to change the \
                     enforcement"
                );
            }
            anyhow::Ok(fresh)
        }
        .await;
        match result {
            Ok(fresh) => {
                tracing::info!(
                    code_hash = %fresh.code_hash(),
                    "tariff replaced; counts carried over"
                );
                *tariff = fresh;
                self.describe(tariff);
                self.with_snapshot(|s| s.reloads_ok += 1);
            }
            Err(e) => {
                tracing::error!(
                    "the new {} is refused, the previous tariff keeps billing: {e:#}",
                    path.display()
                );
                self.with_snapshot(|s| s.reloads_refused += 1);
            }
        }
    }
}

/// Serves `/metrics` and `/healthz` on `addr` in the background.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    snapshot: Arc<Mutex<Snapshot>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use axum::routing::get;
    let metrics = move || {
        let snapshot = Arc::clone(&snapshot);
        async move {
            let text = snapshot
                .lock()
                .map(|s| s.render())
                .unwrap_or_else(|e| e.into_inner().render());
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4",
                )],
                text,
            )
        }
    };
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    println!("listening on http://{local}");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the metrics server stopped: {e}");
        }
    }))
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
