//! The bill in Prometheus text format, named so that a dashboard draws
//! "events × price" per tenant: `sealbox_meter_events_total` (counted in the
//! kernel), `sealbox_meter_units_billed_total` (what the tariff charged) and
//! `sealbox_meter_billed_wei_total` (units × the price they were bought at).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::serve::metrics::escape;

/// Everything `/metrics` shows, updated by the billing loop.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The event metered, e.g. `tls_handshake`.
    pub event: String,
    /// Which side of the connection is metered (`client` / `server`).
    pub side: String,
    /// The tariff's product id (0x hex).
    pub product: String,
    /// The tariff's product name and version.
    pub tariff_name: String,
    /// The tariff's version label.
    pub tariff_version: String,
    /// The tariff's code hash (0x hex).
    pub code_hash: String,
    /// Events counted in the kernel, per tenant (the total of record).
    pub events: BTreeMap<u64, u64>,
    /// Events billed, per tenant.
    pub events_billed: BTreeMap<u64, u64>,
    /// Units charged, per tenant (this process's run; the counter's total is `units_used`).
    pub units_billed: BTreeMap<u64, u64>,
    /// Wei the charged units cost at the price of the lease, per tenant.
    pub billed_wei: BTreeMap<u64, u128>,
    /// Events the ring buffer had no room for (still billed, from the counter).
    pub ringbuf_dropped: u64,
    /// Connections the kernel refused past the allowance.
    pub refused: u64,
    /// Events let through past the allowance (enforcement off).
    pub over_allowance: u64,
    /// Events the kernel still lets through before refusing (enforcing).
    pub allowance_remaining: u64,
    /// Whether the kernel refuses past the allowance.
    pub enforcing: bool,
    /// Units used on the tariff's counter (all runs).
    pub units_used: u64,
    /// Units bought on chain by this state directory.
    pub units_bought: u64,
    /// Price per unit (wei) at the last license check.
    pub price_wei: u128,
    /// Tariff reloads that took effect.
    pub reloads_ok: u64,
    /// Tariff replacements refused (the old tariff kept billing).
    pub reloads_refused: u64,
    /// Purchases mined, and failed.
    pub purchases_ok: u64,
    /// Failed purchases.
    pub purchases_failed: u64,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

impl Snapshot {
    /// Renders the Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let base = format!(
            "event=\"{}\",side=\"{}\",product=\"{}\"",
            self.event, self.side, self.product
        );
        family(
            &mut out,
            "sealbox_meter_events_total",
            "counter",
            "Events counted in the kernel per tenant (the total of record).",
        );
        for (tenant, n) in &self.events {
            let _ = writeln!(
                out,
                "sealbox_meter_events_total{{{base},tenant=\"{tenant}\"}} {n}"
            );
        }
        family(
            &mut out,
            "sealbox_meter_events_billed_total",
            "counter",
            "Events priced by the tariff and charged, per tenant.",
        );
        for (tenant, n) in &self.events_billed {
            let _ = writeln!(
                out,
                "sealbox_meter_events_billed_total{{{base},tenant=\"{tenant}\"}} {n}"
            );
        }
        family(
            &mut out,
            "sealbox_meter_units_billed_total",
            "counter",
            "Units the tariff charged per tenant since this process started.",
        );
        for (tenant, n) in &self.units_billed {
            let _ = writeln!(
                out,
                "sealbox_meter_units_billed_total{{{base},tenant=\"{tenant}\"}} {n}"
            );
        }
        family(
            &mut out,
            "sealbox_meter_billed_wei_total",
            "counter",
            "Wei the charged units cost at the unit price, per tenant, since this process started.",
        );
        for (tenant, n) in &self.billed_wei {
            let _ = writeln!(
                out,
                "sealbox_meter_billed_wei_total{{{base},tenant=\"{tenant}\"}} {n}"
            );
        }
        let scalars: [(&str, &str, &str, String); 11] = [
            (
                "sealbox_meter_ringbuf_dropped_total",
                "counter",
                "Events the ring buffer had no room for (billed from the kernel counter all the same).",
                self.ringbuf_dropped.to_string(),
            ),
            (
                "sealbox_meter_refused_total",
                "counter",
                "Connections the kernel refused because the allowance was used up.",
                self.refused.to_string(),
            ),
            (
                "sealbox_meter_over_allowance_total",
                "counter",
                "Events let through past the allowance (the tariff allows overage, billed afterwards).",
                self.over_allowance.to_string(),
            ),
            (
                "sealbox_meter_allowance_remaining",
                "gauge",
                "Events the kernel lets through before refusing.",
                self.allowance_remaining.to_string(),
            ),
            (
                "sealbox_meter_enforcing",
                "gauge",
                "1 when the kernel refuses connections past the allowance.",
                u8::from(self.enforcing).to_string(),
            ),
            (
                "sealbox_meter_units_used",
                "gauge",
                "Units used on the tariff's counter.",
                self.units_used.to_string(),
            ),
            (
                "sealbox_meter_units_bought",
                "gauge",
                "Units bought on chain for this state directory.",
                self.units_bought.to_string(),
            ),
            (
                "sealbox_meter_price_wei",
                "gauge",
                "Price of one unit in wei at the last license check.",
                self.price_wei.to_string(),
            ),
            (
                "sealbox_meter_purchases_total",
                "counter",
                "Purchases of units mined.",
                self.purchases_ok.to_string(),
            ),
            (
                "sealbox_meter_purchase_failures_total",
                "counter",
                "Purchases that failed or were refused.",
                self.purchases_failed.to_string(),
            ),
            (
                "sealbox_meter_tariff_refused_total",
                "counter",
                "Replacement tariffs refused (the previous tariff kept billing).",
                self.reloads_refused.to_string(),
            ),
        ];
        for (name, kind, help, value) in scalars {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name}{{{base}}} {value}");
        }
        family(
            &mut out,
            "sealbox_meter_tariff_reloads_total",
            "counter",
            "Tariff replacements that took effect.",
        );
        let _ = writeln!(
            out,
            "sealbox_meter_tariff_reloads_total{{{base}}} {}",
            self.reloads_ok
        );
        family(
            &mut out,
            "sealbox_meter_tariff_info",
            "gauge",
            "The tariff billing now (always 1).",
        );
        let _ = writeln!(
            out,
            "sealbox_meter_tariff_info{{{base},name=\"{}\",version=\"{}\",code_hash=\"{}\"}} 1",
            escape(&self.tariff_name),
            escape(&self.tariff_version),
            self.code_hash
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tenant_gets_its_series_and_labels_are_escaped() {
        let mut s = Snapshot {
            event: "tls_handshake".into(),
            side: "client".into(),
            product: "0xab".into(),
            tariff_name: "tier\"ed".into(),
            ..Snapshot::default()
        };
        s.events.insert(7, 12);
        s.units_billed.insert(7, 24);
        let text = s.render();
        assert!(text.contains(
            "sealbox_meter_events_total{event=\"tls_handshake\",side=\"client\",product=\"0xab\",tenant=\"7\"} 12"
        ));
        assert!(text.contains("tenant=\"7\"} 24"));
        assert!(text.contains("name=\"tier\\\"ed\""));
        assert!(text.contains("# TYPE sealbox_meter_refused_total counter"));
    }
}
