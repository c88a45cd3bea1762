//! Per-product statistics and their Prometheus text exposition (format
//! 0.0.4), written by hand: a few counters, gauges and one histogram.
//!
//! Counts that must survive a restart (units used by the runtime's count and
//! by the kernel meter's, units bought, the lease) are read from the journal
//! at scrape time; what only this process knows (latencies, errors, purchase
//! gas, the signer's balance) lives in atomics here.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy::primitives::B256;

use super::state::{App, Served};
use crate::clock::unix_now;
use crate::journal::Usage;
use crate::lease::Lease;

/// Upper bounds (seconds) of the call latency histogram's buckets.
const LATENCY_BUCKETS: [f64; 17] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram with fixed buckets.
pub(crate) struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    overflow: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            overflow: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        match LATENCY_BUCKETS.iter().position(|&le| secs <= le) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// Result of one on-chain license re-check.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CheckResult {
    /// The license is active; the lease was renewed.
    Active,
    /// The chain said no; the lease was marked inactive.
    Inactive,
    /// The check failed (RPC); the stored lease stays.
    Error,
}

/// What this process observed for one product.
pub(crate) struct ProductStats {
    /// `product="0x…",name="…"`, escaped, rendered once.
    labels: String,
    kernel_metered: bool,
    calls_ok: AtomicU64,
    latency: Histogram,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    purchase_gas_last: AtomicU64,
    purchase_gas_total: AtomicU64,
    purchase_ok: AtomicU64,
    purchase_failed: AtomicU64,
    purchase_last_success: AtomicU64,
    checks: [AtomicU64; 3],
}

impl ProductStats {
    pub(crate) fn new(id: B256, name: &str, kernel_metered: bool) -> Self {
        Self {
            labels: format!("product=\"{id}\",name=\"{}\"", escape(name)),
            kernel_metered,
            calls_ok: AtomicU64::new(0),
            latency: Histogram::new(),
            errors: Mutex::new(BTreeMap::new()),
            purchase_gas_last: AtomicU64::new(0),
            purchase_gas_total: AtomicU64::new(0),
            purchase_ok: AtomicU64::new(0),
            purchase_failed: AtomicU64::new(0),
            purchase_last_success: AtomicU64::new(0),
            checks: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// A guest call that returned output.
    pub(crate) fn call_ok(&self, took: Duration) {
        self.calls_ok.fetch_add(1, Ordering::Relaxed);
        self.latency.observe(took);
    }

    /// A guest call that ran (it was admitted) but failed.
    pub(crate) fn call_failed(&self, kind: &'static str, took: Duration) {
        self.latency.observe(took);
        self.error(kind);
    }

    /// An invoke request refused, by the kind of its error.
    pub(crate) fn error(&self, kind: &'static str) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(kind).or_insert(0) += 1;
    }

    pub(crate) fn calls_ok(&self) -> u64 {
        self.calls_ok.load(Ordering::Relaxed)
    }

    pub(crate) fn errors_total(&self) -> u64 {
        let errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        errors.values().sum()
    }

    /// A purchase of this product's units was mined.
    pub(crate) fn bought(&self, gas: u64) {
        self.purchase_gas_last.store(gas, Ordering::Relaxed);
        self.purchase_gas_total.fetch_add(gas, Ordering::Relaxed);
        self.purchase_ok.fetch_add(1, Ordering::Relaxed);
        self.purchase_last_success
            .store(unix_now(), Ordering::Relaxed);
    }

    /// A purchase attempt of this product failed or was refused.
    pub(crate) fn purchase_failed(&self) {
        self.purchase_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn license_checked(&self, result: CheckResult) {
        let i = match result {
            CheckResult::Active => 0,
            CheckResult::Inactive => 1,
            CheckResult::Error => 2,
        };
        self.checks[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// What the journal says about one product at scrape time.
pub(crate) struct JournalView {
    pub(crate) usage: Usage,
    pub(crate) lease: Option<Lease>,
}

/// Reads the journal side of every product (blocking: SQLite and the BPF map).
pub(crate) fn read_journal(app: &App) -> Vec<Option<JournalView>> {
    app.products
        .iter()
        .map(|served| {
            let usage = served.product.refresh_usage();
            let lease = app.journal.lease(served.product.usage_key());
            match (usage, lease) {
                (Ok(usage), Ok(lease)) => Some(JournalView { usage, lease }),
                (Err(e), _) => {
                    tracing::warn!(product = %served.id, "metrics: cannot read usage: {e}");
                    None
                }
                (_, Err(e)) => {
                    tracing::warn!(product = %served.id, "metrics: cannot read the lease: {e}");
                    None
                }
            }
        })
        .collect()
}

/// Renders the exposition.
pub(crate) fn render(app: &App, views: &[Option<JournalView>]) -> String {
    let mut out = String::with_capacity(4096 + 2048 * app.products.len());
    let rows: Vec<(&Served, Option<&JournalView>)> = app
        .products
        .iter()
        .map(|s| s.as_ref())
        .zip(views.iter().map(Option::as_ref))
        .collect();
    let now = unix_now();

    family(
        &mut out,
        "sealbox_calls_total",
        "counter",
        "Units admitted for the product, cumulative in the usage journal: counter=runtime is the runtime's own count, counter=kernel the eBPF meter's (0 when not attached).",
    );
    for (s, v) in &rows {
        if let Some(v) = v {
            let l = &s.stats.labels;
            let _ = writeln!(
                out,
                "sealbox_calls_total{{{l},counter=\"runtime\"}} {}",
                v.usage.runtime_units
            );
            let _ = writeln!(
                out,
                "sealbox_calls_total{{{l},counter=\"kernel\"}} {}",
                v.usage.kernel_units
            );
        }
    }

    family(
        &mut out,
        "sealbox_meter_divergence_units",
        "gauge",
        "Kernel count minus runtime count (only while the kernel meter is attached); admission counts the larger as used.",
    );
    for (s, v) in &rows {
        if let (Some(v), true) = (v, s.stats.kernel_metered) {
            let diff = i128::from(v.usage.kernel_units) - i128::from(v.usage.runtime_units);
            let _ = writeln!(
                out,
                "sealbox_meter_divergence_units{{{}}} {diff}",
                s.stats.labels
            );
        }
    }

    family(
        &mut out,
        "sealbox_kernel_meter_attached",
        "gauge",
        "1 when the product's calls are also counted by the eBPF meter in the kernel.",
    );
    for (s, _) in &rows {
        let _ = writeln!(
            out,
            "sealbox_kernel_meter_attached{{{}}} {}",
            s.stats.labels,
            u8::from(s.stats.kernel_metered)
        );
    }

    family(
        &mut out,
        "sealbox_bought_units_total",
        "counter",
        "Units this state directory (buyer) has bought on chain for the product, as last confirmed.",
    );
    for (s, v) in &rows {
        if let Some(v) = v {
            let _ = writeln!(
                out,
                "sealbox_bought_units_total{{{}}} {}",
                s.stats.labels, v.usage.bought_units
            );
        }
    }

    family(
        &mut out,
        "sealbox_prepaid_units",
        "gauge",
        "Bought units not yet used: what calls can still run on without a purchase.",
    );
    for (s, v) in &rows {
        if let Some(v) = v {
            let _ = writeln!(
                out,
                "sealbox_prepaid_units{{{}}} {}",
                s.stats.labels,
                v.usage.unused_units()
            );
        }
    }

    family(
        &mut out,
        "sealbox_escrow_available_wei",
        "gauge",
        "Escrow the customer can still buy units with, at the last license check.",
    );
    lease_lines(&mut out, &rows, "sealbox_escrow_available_wei", |l| {
        l.available_wei.to_string()
    });

    family(
        &mut out,
        "sealbox_price_wei",
        "gauge",
        "Price per unit at the last license check.",
    );
    lease_lines(&mut out, &rows, "sealbox_price_wei", |l| {
        l.price_wei.to_string()
    });

    family(
        &mut out,
        "sealbox_license_active",
        "gauge",
        "1 when the last license check found the license (and the signer) in good standing; calls still need bought units.",
    );
    lease_lines(&mut out, &rows, "sealbox_license_active", |l| {
        u8::from(l.inactive.is_none()).to_string()
    });

    family(
        &mut out,
        "sealbox_lease_age_seconds",
        "gauge",
        "Seconds since the last successful license check.",
    );
    lease_lines(&mut out, &rows, "sealbox_lease_age_seconds", |l| {
        now.saturating_sub(l.checked_at).to_string()
    });

    family(
        &mut out,
        "sealbox_license_checks_total",
        "counter",
        "Periodic on-chain license re-checks by result (error = RPC failure, the lease was kept).",
    );
    for (s, _) in &rows {
        for (i, result) in ["active", "inactive", "error"].iter().enumerate() {
            let n = s.stats.checks[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "sealbox_license_checks_total{{{},result=\"{result}\"}} {n}",
                s.stats.labels
            );
        }
    }

    family(
        &mut out,
        "sealbox_purchase_gas_last",
        "gauge",
        "Gas used by the product's last purchase transaction.",
    );
    atomic_lines(&mut out, &rows, "sealbox_purchase_gas_last", |st| {
        &st.purchase_gas_last
    });
    family(
        &mut out,
        "sealbox_purchase_gas_total",
        "counter",
        "Gas used by this process's purchase transactions (paid by the signer).",
    );
    atomic_lines(&mut out, &rows, "sealbox_purchase_gas_total", |st| {
        &st.purchase_gas_total
    });

    family(
        &mut out,
        "sealbox_purchases_total",
        "counter",
        "Purchase attempts of the product by result (failed = not mined or refused; retried).",
    );
    for (s, _) in &rows {
        let st = &s.stats;
        let _ = writeln!(
            out,
            "sealbox_purchases_total{{{},result=\"ok\"}} {}",
            st.labels,
            st.purchase_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "sealbox_purchases_total{{{},result=\"failed\"}} {}",
            st.labels,
            st.purchase_failed.load(Ordering::Relaxed)
        );
    }
    family(
        &mut out,
        "sealbox_purchase_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the product's last mined purchase (0 = none by this process).",
    );
    atomic_lines(
        &mut out,
        &rows,
        "sealbox_purchase_last_success_timestamp_seconds",
        |st| &st.purchase_last_success,
    );

    family(
        &mut out,
        "sealbox_signer_balance_wei",
        "gauge",
        "ETH balance of the runtime's signer, which pays the gas of every purchase (absent until first read).",
    );
    if let Some(wei) = app.signer_balance() {
        let _ = writeln!(out, "sealbox_signer_balance_wei {wei}");
        family(
            &mut out,
            "sealbox_signer_balance_low",
            "gauge",
            "1 when the signer's balance pays for fewer than 20 purchases at the last purchase's gas and 1 gwei (top it up).",
        );
        let _ = writeln!(
            out,
            "sealbox_signer_balance_low {}",
            u8::from(signer_balance_low(wei, app))
        );
    }

    family(
        &mut out,
        "sealbox_call_duration_seconds",
        "histogram",
        "Time of admitted calls in this process: journal admission, kernel meter entry and the guest.",
    );
    for (s, _) in &rows {
        histogram_lines(
            &mut out,
            "sealbox_call_duration_seconds",
            &s.stats.labels,
            &s.stats.latency,
        );
    }

    family(
        &mut out,
        "sealbox_call_errors_total",
        "counter",
        "Invoke requests of this process that did not return output, by error kind.",
    );
    for (s, _) in &rows {
        let errors = s.stats.errors.lock().unwrap_or_else(|e| e.into_inner());
        for (kind, n) in errors.iter() {
            let _ = writeln!(
                out,
                "sealbox_call_errors_total{{{},kind=\"{}\"}} {n}",
                s.stats.labels,
                escape(kind)
            );
        }
    }

    family(
        &mut out,
        "sealbox_unauthorized_requests_total",
        "counter",
        "Requests refused for a missing or wrong bearer token.",
    );
    let _ = writeln!(
        out,
        "sealbox_unauthorized_requests_total {}",
        app.unauthorized_total()
    );

    let pool = app.pool.stats();
    let gauges: [(&str, &str, &str, u64); 6] = [
        (
            "sealbox_call_workers",
            "gauge",
            "Worker threads guest calls run on (--call-workers).",
            pool.workers as u64,
        ),
        (
            "sealbox_call_queue_capacity",
            "gauge",
            "Calls that may wait for a worker (--call-queue).",
            pool.capacity as u64,
        ),
        (
            "sealbox_call_queue_depth",
            "gauge",
            "Calls waiting for a worker now.",
            pool.queued as u64,
        ),
        (
            "sealbox_calls_running",
            "gauge",
            "Guest calls running on a worker now.",
            pool.running as u64,
        ),
        (
            "sealbox_call_queue_rejected_total",
            "counter",
            "Calls refused with 503 because the call queue was full (not run, not billed; also in sealbox_call_errors_total{kind=\"queue-full\"}).",
            pool.rejected,
        ),
        (
            "sealbox_call_queue_abandoned_total",
            "counter",
            "Queued calls dropped unrun (not billed) because their client went away before a worker took them.",
            pool.abandoned,
        ),
    ];
    for (name, kind, help, value) in gauges {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

/// Whether `wei` pays for fewer than 20 more purchases (at the largest last
/// purchase gas seen, 60,000 if none, and a 1 gwei gas price).
fn signer_balance_low(wei: alloy::primitives::U256, app: &App) -> bool {
    let gas = app
        .products
        .iter()
        .map(|s| s.stats.purchase_gas_last.load(Ordering::Relaxed))
        .max()
        .filter(|&g| g > 0)
        .unwrap_or(60_000);
    let need =
        alloy::primitives::U256::from(gas) * alloy::primitives::U256::from(20u64 * 1_000_000_000);
    wei < need
}

/// Appends the requests the browser guard refused, by reason.
pub(crate) fn render_refused(out: &mut String, origin: u64, host: u64) {
    family(
        out,
        "sealbox_http_refused_total",
        "counter",
        "Requests refused with 403 before any other check (token, body, admission): reason=origin came from a web page (an Origin header, or Sec-Fetch-Site other than none), reason=host named a host this server does not answer to (DNS rebinding).",
    );
    let _ = writeln!(
        out,
        "sealbox_http_refused_total{{reason=\"origin\"}} {origin}"
    );
    let _ = writeln!(out, "sealbox_http_refused_total{{reason=\"host\"}} {host}");
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(
        out,
        "# HELP {name} {}",
        help.replace('\\', "\\\\").replace('\n', "\\n")
    );
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn lease_lines(
    out: &mut String,
    rows: &[(&Served, Option<&JournalView>)],
    name: &str,
    value: impl Fn(&Lease) -> String,
) {
    for (s, v) in rows {
        if let Some(lease) = v.and_then(|v| v.lease.as_ref()) {
            let _ = writeln!(out, "{name}{{{}}} {}", s.stats.labels, value(lease));
        }
    }
}

fn atomic_lines(
    out: &mut String,
    rows: &[(&Served, Option<&JournalView>)],
    name: &str,
    field: impl Fn(&ProductStats) -> &AtomicU64,
) {
    for (s, _) in rows {
        let _ = writeln!(
            out,
            "{name}{{{}}} {}",
            s.stats.labels,
            field(&s.stats).load(Ordering::Relaxed)
        );
    }
}

fn histogram_lines(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let mut cumulative = 0u64;
    for (le, bucket) in LATENCY_BUCKETS.iter().zip(&h.buckets) {
        cumulative += bucket.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    cumulative += h.overflow.load(Ordering::Relaxed);
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
    let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
}

/// Escapes a Prometheus label value (backslash, double quote, newline).
pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_everything() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(30));
        h.observe(Duration::from_micros(700));
        h.observe(Duration::from_secs(20));
        let mut out = String::new();
        histogram_lines(&mut out, "h", "a=\"b\"", &h);
        assert!(out.contains("h_bucket{a=\"b\",le=\"0.00005\"} 1\n"));
        assert!(out.contains("h_bucket{a=\"b\",le=\"0.001\"} 2\n"));
        assert!(out.contains("h_bucket{a=\"b\",le=\"10\"} 2\n"));
        assert!(out.contains("h_bucket{a=\"b\",le=\"+Inf\"} 3\n"));
        assert!(out.contains("h_count{a=\"b\"} 3\n"));
        assert!(out.contains("h_sum{a=\"b\"} 20.00073\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
