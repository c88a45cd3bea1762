//! The durable usage journal (SQLite).
//!
//! One row per (product, customer, signer) holds the cumulative units this
//! runtime has admitted, the last kernel count it read, the units settled on
//! chain, and the last license lease. A unit is written *before* its guest call
//! runs, in WAL mode, so a crash or `SIGKILL` after the call cannot lose it
//! (SQLite's WAL survives the death of the process; only an OS crash can cost
//! the last unsynced commits, which is why the journal is checkpointed to disk
//! before any receipt is signed, see [`Journal::sync`]).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::lease::{Lease, LeasePolicy, LeaseRefusal};

/// Identifies one usage counter: the contract keeps one per signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsageKey {
    /// Product id (bytes32).
    pub product: [u8; 32],
    /// The customer whose escrow pays.
    pub customer: [u8; 20],
    /// The runtime signer key that signs this counter's receipts.
    pub signer: [u8; 20],
}

/// What the journal knows about one usage counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Units admitted by this runtime (its own count).
    pub runtime_units: u64,
    /// Last count read from the kernel meter (0 when never attached).
    pub kernel_units: u64,
    /// Units known to be settled on chain.
    pub settled_units: u64,
}

impl Usage {
    /// Units to bill: the larger of the runtime's and the kernel's counts, so
    /// neither a lagging runtime flush nor a detached probe under-bills.
    pub fn billable_units(&self) -> u64 {
        self.runtime_units.max(self.kernel_units)
    }

    /// Billable units not yet settled on chain.
    pub fn unsettled_units(&self) -> u64 {
        self.billable_units().saturating_sub(self.settled_units)
    }
}

/// Errors of the usage journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The journal database could not be opened or written.
    #[error("usage journal {path}: {source}")]
    Db {
        /// The database file.
        path: String,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The lease does not admit another unit.
    #[error(transparent)]
    Refused(#[from] LeaseRefusal),
    /// No license check has succeeded yet for this counter, and none can be made now.
    #[error(
        "no license lease on record for this product and customer, and the chain cannot be \
         reached to check the license"
    )]
    NoLease,
}

/// The usage journal: a SQLite database in the runtime's state directory.
#[derive(Debug)]
pub struct Journal {
    path: String,
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage (
    product BLOB NOT NULL,
    customer BLOB NOT NULL,
    signer BLOB NOT NULL,
    runtime_units INTEGER NOT NULL DEFAULT 0,
    kernel_units INTEGER NOT NULL DEFAULT 0,
    settled_units INTEGER NOT NULL DEFAULT 0,
    lease TEXT,
    PRIMARY KEY (product, customer, signer)
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);";

impl Journal {
    /// Opens (creating if needed) the journal at `path`.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let display = path.display().to_string();
        let db = |source| JournalError::Db {
            path: display.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(Self {
            path: display,
            conn: Mutex::new(conn),
        })
    }

    fn db_err(&self, source: rusqlite::Error) -> JournalError {
        JournalError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A poisoned lock only means another thread panicked mid-call; SQLite's
        // own transaction kept the data consistent.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads one counter (zeros when it was never used).
    pub fn usage(&self, key: &UsageKey) -> Result<Usage, JournalError> {
        let conn = self.lock();
        read_usage(&conn, key).map_err(|e| self.db_err(e))
    }

    /// Reads the stored lease of one counter.
    pub fn lease(&self, key: &UsageKey) -> Result<Option<Lease>, JournalError> {
        let conn = self.lock();
        let text: Option<Option<String>> = conn
            .query_row(
                "SELECT lease FROM usage WHERE product=?1 AND customer=?2 AND signer=?3",
                params![key.product, key.customer, key.signer],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db_err(e))?;
        Ok(text.flatten().and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Marks the stored lease inactive (the chain refused the license): no more
    /// calls are admitted until a later check succeeds.
    pub fn deactivate_lease(&self, key: &UsageKey, reason: &str) -> Result<(), JournalError> {
        if let Some(mut lease) = self.lease(key)? {
            lease.inactive = Some(reason.to_owned());
            self.store_lease(key, &lease)?;
        }
        Ok(())
    }

    /// Stores a fresh lease and the settled count it reports.
    pub fn store_lease(&self, key: &UsageKey, lease: &Lease) -> Result<(), JournalError> {
        let text = serde_json::to_string(lease).unwrap_or_default();
        let conn = self.lock();
        ensure_row(&conn, key).map_err(|e| self.db_err(e))?;
        conn.execute(
            "UPDATE usage SET lease=?4, settled_units=MAX(settled_units, ?5),
             runtime_units=MAX(runtime_units, ?5)
             WHERE product=?1 AND customer=?2 AND signer=?3",
            params![
                key.product,
                key.customer,
                key.signer,
                text,
                lease.settled_units
            ],
        )
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Admits `n` units under the stored lease and records them, atomically:
    /// either the units fit the escrow and are durably counted, or nothing changes.
    /// Returns the new cumulative runtime count.
    pub fn admit(
        &self,
        key: &UsageKey,
        n: u64,
        now: u64,
        policy: &LeasePolicy,
    ) -> Result<u64, JournalError> {
        let mut conn = self.lock();
        // IMMEDIATE: take the write lock up front, so a read-then-write
        // transaction cannot fail with a stale snapshot when another runtime
        // process shares this journal.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.db_err(e))?;
        let row: Option<(u64, u64, Option<String>)> = tx
            .prepare_cached(
                "SELECT runtime_units, kernel_units, lease FROM usage
                 WHERE product=?1 AND customer=?2 AND signer=?3",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![key.product, key.customer, key.signer], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
            })
            .map_err(|e| self.db_err(e))?;
        let (runtime_units, kernel_units, lease_text) = row.ok_or(JournalError::NoLease)?;
        let lease: Lease = lease_text
            .and_then(|t| serde_json::from_str(&t).ok())
            .ok_or(JournalError::NoLease)?;
        let after = runtime_units.max(kernel_units).saturating_add(n);
        lease.admit(now, after, policy)?;
        let runtime_units = runtime_units.saturating_add(n);
        tx.prepare_cached(
            "UPDATE usage SET runtime_units=?4 WHERE product=?1 AND customer=?2 AND signer=?3",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                key.product,
                key.customer,
                key.signer,
                runtime_units
            ])
        })
        .map_err(|e| self.db_err(e))?;
        tx.commit().map_err(|e| self.db_err(e))?;
        Ok(runtime_units)
    }

    /// Records the kernel meter's count for this counter (never lowers it).
    pub fn record_kernel_units(&self, key: &UsageKey, units: u64) -> Result<(), JournalError> {
        let conn = self.lock();
        ensure_row(&conn, key).map_err(|e| self.db_err(e))?;
        conn.execute(
            "UPDATE usage SET kernel_units=MAX(kernel_units, ?4)
             WHERE product=?1 AND customer=?2 AND signer=?3",
            params![key.product, key.customer, key.signer, units],
        )
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Records that the chain has settled `cumulative` units of this counter.
    pub fn record_settled(&self, key: &UsageKey, cumulative: u64) -> Result<(), JournalError> {
        let conn = self.lock();
        ensure_row(&conn, key).map_err(|e| self.db_err(e))?;
        conn.execute(
            "UPDATE usage SET settled_units=MAX(settled_units, ?4)
             WHERE product=?1 AND customer=?2 AND signer=?3",
            params![key.product, key.customer, key.signer, cumulative],
        )
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// The chain id recorded by the last successful connection (the journal
    /// belongs to one registry, so to one chain).
    pub fn chain_id(&self) -> Result<Option<u64>, JournalError> {
        let conn = self.lock();
        let value: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE name='chain_id'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.db_err(e))?;
        Ok(value.and_then(|v| v.parse().ok()))
    }

    /// Records the chain id of a successful connection.
    pub fn set_chain_id(&self, chain_id: u64) -> Result<(), JournalError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO meta (name, value) VALUES ('chain_id', ?1)
             ON CONFLICT(name) DO UPDATE SET value=excluded.value",
            params![chain_id.to_string()],
        )
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Every counter in the journal.
    pub fn keys(&self) -> Result<Vec<UsageKey>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT product, customer, signer FROM usage")
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(UsageKey {
                    product: r.get(0)?,
                    customer: r.get(1)?,
                    signer: r.get(2)?,
                })
            })
            .map_err(|e| self.db_err(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.db_err(e))
    }

    /// Forces everything committed so far onto the disk (a full WAL
    /// checkpoint). Called before a receipt is signed.
    pub fn sync(&self) -> Result<(), JournalError> {
        let conn = self.lock();
        conn.query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))
            .map_err(|e| self.db_err(e))
    }
}

fn ensure_row(conn: &Connection, key: &UsageKey) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO usage (product, customer, signer) VALUES (?1, ?2, ?3)",
        params![key.product, key.customer, key.signer],
    )?;
    Ok(())
}

fn read_usage(conn: &Connection, key: &UsageKey) -> rusqlite::Result<Usage> {
    Ok(conn
        .query_row(
            "SELECT runtime_units, kernel_units, settled_units FROM usage
             WHERE product=?1 AND customer=?2 AND signer=?3",
            params![key.product, key.customer, key.signer],
            |r| {
                Ok(Usage {
                    runtime_units: r.get(0)?,
                    kernel_units: r.get(1)?,
                    settled_units: r.get(2)?,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> UsageKey {
        UsageKey {
            product: [1; 32],
            customer: [2; 20],
            signer: [3; 20],
        }
    }

    fn lease(balance_wei: u128) -> Lease {
        Lease {
            checked_at: 100,
            block: 1,
            balance_wei,
            price_wei: 10,
            settled_units: 0,
            inactive: None,
        }
    }

    #[test]
    fn admits_until_the_escrow_is_used_up_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let policy = LeasePolicy::default();
        {
            let j = Journal::open(&path).unwrap();
            assert!(matches!(
                j.admit(&key(), 1, 100, &policy),
                Err(JournalError::NoLease)
            ));
            j.store_lease(&key(), &lease(30)).unwrap();
            assert_eq!(j.admit(&key(), 1, 100, &policy).unwrap(), 1);
            assert_eq!(j.admit(&key(), 2, 100, &policy).unwrap(), 3);
            assert!(matches!(
                j.admit(&key(), 1, 100, &policy),
                Err(JournalError::Refused(LeaseRefusal::EscrowExhausted { .. }))
            ));
        }
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.usage(&key()).unwrap().runtime_units, 3);
        j.record_settled(&key(), 3).unwrap();
        j.record_kernel_units(&key(), 5).unwrap();
        let usage = j.usage(&key()).unwrap();
        assert_eq!(usage.billable_units(), 5);
        assert_eq!(usage.unsettled_units(), 2);
        assert_eq!(j.keys().unwrap(), vec![key()]);
    }
}
