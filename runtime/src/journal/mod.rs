//! The durable usage journal: SQLite for what changes rarely, a shared
//! memory-mapped counter per (product, customer, signer) for what changes on
//! every call.
//!
//! One SQLite row per counter holds the last kernel count read, the units
//! settled on chain and the last license lease (WAL mode). The units admitted
//! are counted in a [`counter`] file next to the database: a unit is added
//! there, under the lease's escrow cap, *before* its guest call runs, so a
//! crash or `SIGKILL` after the call cannot lose it. [`Journal::sync`] folds
//! the counters into SQLite and writes everything to the disk before any
//! receipt is signed.

pub mod counter;

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{Connection, OptionalExtension, params};

use self::counter::{CounterError, CounterFile};
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
    /// Calls the kernel meter counted, summed over its map sets (one per
    /// epoch, see [`Journal::record_kernel_units`]); 0 when never attached.
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
    /// An admission counter file could not be used.
    #[error(transparent)]
    Counter(#[from] CounterError),
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

/// The usage journal: a SQLite database in the runtime's state directory,
/// and a `<database>.counters/` directory of admission counters beside it.
#[derive(Debug)]
pub struct Journal {
    path: String,
    conn: Mutex<Connection>,
    counters_dir: PathBuf,
    /// The counters this process has admitted into, with what admission needs
    /// cached so that a call never reads SQLite.
    admitting: RwLock<HashMap<UsageKey, Arc<Admission>>>,
}

/// One counter this process admits into: its mapped file, the lease and the
/// kernel count as last stored through this journal.
#[derive(Debug)]
struct Admission {
    counter: CounterFile,
    lease: Mutex<Lease>,
    kernel_units: AtomicU64,
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
CREATE TABLE IF NOT EXISTS kernel_counts (
    product BLOB NOT NULL,
    customer BLOB NOT NULL,
    signer BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (product, customer, signer, epoch)
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);";

impl Journal {
    /// Opens (creating if needed) the journal at `path` and its counter
    /// directory `<path>.counters/` (mode 0700).
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
        let mut counters_dir = path.as_os_str().to_owned();
        counters_dir.push(".counters");
        let counters_dir = PathBuf::from(counters_dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&counters_dir)
            .map_err(|source| CounterError::Io {
                path: counters_dir.clone(),
                source,
            })?;
        Ok(Self {
            path: display,
            conn: Mutex::new(conn),
            counters_dir,
            admitting: RwLock::new(HashMap::new()),
        })
    }

    fn counter_path(&self, key: &UsageKey) -> PathBuf {
        let mut name = hex::encode(key.product);
        name.push('-');
        name.push_str(&hex::encode(key.customer));
        name.push('-');
        name.push_str(&hex::encode(key.signer));
        self.counters_dir.join(name)
    }

    /// The admission state of `key`, opened (and its counter file created) on
    /// first use. `NoLease` when the journal has never stored a lease for it.
    fn admission(&self, key: &UsageKey) -> Result<Arc<Admission>, JournalError> {
        if let Some(open) = self.read_admitting().get(key) {
            return Ok(Arc::clone(open));
        }
        // Held while the lease is read: a `store_lease` racing with this either
        // lands before the read or finds the entry afterwards and updates it.
        let mut admitting = self.admitting.write().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = admitting.get(key) {
            return Ok(Arc::clone(open));
        }
        let (usage, lease) = {
            let conn = self.lock();
            let usage = read_usage(&conn, key).map_err(|e| self.db_err(e))?;
            (usage, read_lease(&conn, key).map_err(|e| self.db_err(e))?)
        };
        let lease = lease.ok_or(JournalError::NoLease)?;
        let counter = CounterFile::create(&self.counter_path(key))?;
        counter.raise_to(usage.runtime_units);
        let admission = Arc::new(Admission {
            counter,
            lease: Mutex::new(lease),
            kernel_units: AtomicU64::new(usage.kernel_units),
        });
        admitting.insert(*key, Arc::clone(&admission));
        Ok(admission)
    }

    fn read_admitting(&self) -> std::sync::RwLockReadGuard<'_, HashMap<UsageKey, Arc<Admission>>> {
        // Poisoning only means a panic elsewhere; the map itself is always whole.
        self.admitting.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Units admitted into `key`'s counter file (0 when it has none).
    fn admitted(&self, key: &UsageKey) -> Result<u64, JournalError> {
        if let Some(open) = self.read_admitting().get(key) {
            return Ok(open.counter.value());
        }
        Ok(CounterFile::open_existing(&self.counter_path(key))?
            .map(|c| c.value())
            .unwrap_or(0))
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
        let mut usage = {
            let conn = self.lock();
            read_usage(&conn, key).map_err(|e| self.db_err(e))?
        };
        usage.runtime_units = usage.runtime_units.max(self.admitted(key)?);
        Ok(usage)
    }

    /// Reads the stored lease of one counter.
    pub fn lease(&self, key: &UsageKey) -> Result<Option<Lease>, JournalError> {
        let conn = self.lock();
        read_lease(&conn, key).map_err(|e| self.db_err(e))
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
        drop(conn);
        if let Some(open) = self.read_admitting().get(key) {
            open.counter.raise_to(lease.settled_units);
            *open.lease.lock().unwrap_or_else(|e| e.into_inner()) = lease.clone();
        }
        Ok(())
    }

    /// Admits `n` units under the stored lease and records them, atomically
    /// (also against other processes sharing this journal): either the units
    /// fit the escrow and are counted, or nothing changes. Returns the new
    /// cumulative runtime count.
    ///
    /// The lease and kernel count are the ones last stored through this
    /// journal; no SQLite access happens here once a counter is open.
    pub fn admit(
        &self,
        key: &UsageKey,
        n: u64,
        now: u64,
        policy: &LeasePolicy,
    ) -> Result<u64, JournalError> {
        let admission = self.admission(key)?;
        let lease = admission.lease.lock().unwrap_or_else(|e| e.into_inner());
        let kernel_units = admission.kernel_units.load(Ordering::Acquire);
        // Bill what the larger count says, as `Usage::billable_units` does: a
        // call the kernel saw but this runtime did not still uses escrow.
        Ok(admission.counter.try_add(n, |after| {
            lease.admit(now, after.max(kernel_units.saturating_add(n)), policy)
        })?)
    }

    /// Records a reading of the kernel meter for this counter: `count` calls
    /// in the pinned map set identified by `epoch` (`Meter::epoch`).
    ///
    /// bpffs is in memory, so a reboot (or a removed pin directory) starts a
    /// new map set, with a new epoch, from zero. The journal keeps the largest
    /// count seen per epoch, and the kernel count is their sum: cumulative
    /// across map sets, never lowered, and the same whatever order readings
    /// of different map sets arrive in.
    pub fn record_kernel_units(
        &self,
        key: &UsageKey,
        epoch: u64,
        count: u64,
    ) -> Result<(), JournalError> {
        let conn = self.lock();
        ensure_row(&conn, key).map_err(|e| self.db_err(e))?;
        // SQLite integers are signed: the epoch is stored as its bit pattern.
        let epoch = epoch as i64;
        conn.execute(
            "INSERT INTO kernel_counts (product, customer, signer, epoch, count)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO UPDATE SET count=MAX(count, excluded.count)",
            params![key.product, key.customer, key.signer, epoch, count],
        )
        .map_err(|e| self.db_err(e))?;
        conn.execute(
            "UPDATE usage SET kernel_units=MAX(kernel_units, (
                 SELECT SUM(count) FROM kernel_counts
                 WHERE product=?1 AND customer=?2 AND signer=?3))
             WHERE product=?1 AND customer=?2 AND signer=?3",
            params![key.product, key.customer, key.signer],
        )
        .map_err(|e| self.db_err(e))?;
        let kernel_units = read_usage(&conn, key)
            .map_err(|e| self.db_err(e))?
            .kernel_units;
        drop(conn);
        if let Some(open) = self.read_admitting().get(key) {
            open.kernel_units.fetch_max(kernel_units, Ordering::AcqRel);
        }
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

    /// Forces everything counted so far onto the disk: each admission counter
    /// is flushed and folded into its SQLite row, then the WAL is checkpointed.
    /// Called before a receipt is signed.
    pub fn sync(&self) -> Result<(), JournalError> {
        for key in self.keys()? {
            // Read, then flush: the page written back holds at least the value
            // folded into SQLite below.
            let admitted = match self.read_admitting().get(&key) {
                Some(open) => {
                    let admitted = open.counter.value();
                    open.counter.flush()?;
                    admitted
                }
                None => match CounterFile::open_existing(&self.counter_path(&key))? {
                    Some(counter) => {
                        let admitted = counter.value();
                        counter.flush()?;
                        admitted
                    }
                    None => continue,
                },
            };
            let conn = self.lock();
            conn.execute(
                "UPDATE usage SET runtime_units=MAX(runtime_units, ?4)
                 WHERE product=?1 AND customer=?2 AND signer=?3",
                params![key.product, key.customer, key.signer, admitted],
            )
            .map_err(|e| self.db_err(e))?;
        }
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

fn read_lease(conn: &Connection, key: &UsageKey) -> rusqlite::Result<Option<Lease>> {
    let text: Option<Option<String>> = conn
        .query_row(
            "SELECT lease FROM usage WHERE product=?1 AND customer=?2 AND signer=?3",
            params![key.product, key.customer, key.signer],
            |r| r.get(0),
        )
        .optional()?;
    Ok(text.flatten().and_then(|t| serde_json::from_str(&t).ok()))
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
        j.record_kernel_units(&key(), 9, 5).unwrap();
        let usage = j.usage(&key()).unwrap();
        assert_eq!(usage.billable_units(), 5);
        assert_eq!(usage.unsettled_units(), 2);
        assert_eq!(j.keys().unwrap(), vec![key()]);
    }

    #[test]
    fn journals_sharing_a_file_never_admit_past_the_escrow_together() {
        // Two journals on one database stand in for two runtime processes:
        // each maps the counter file itself.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let policy = LeasePolicy::default();
        let a = Journal::open(&path).unwrap();
        a.store_lease(&key(), &lease(10 * 1_000)).unwrap(); // 1,000 units at 10 wei
        let b = Journal::open(&path).unwrap();
        let admitted = AtomicU64::new(0);
        std::thread::scope(|s| {
            for journal in [&a, &a, &b, &b] {
                let admitted = &admitted;
                let policy = &policy;
                s.spawn(move || {
                    while journal.admit(&key(), 1, 100, policy).is_ok() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(admitted.into_inner(), 1_000);
        assert_eq!(a.usage(&key()).unwrap().runtime_units, 1_000);
        assert_eq!(b.usage(&key()).unwrap().runtime_units, 1_000);
    }

    #[test]
    fn sync_folds_the_counter_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let j = Journal::open(&path).unwrap();
        j.store_lease(&key(), &lease(1_000)).unwrap();
        for _ in 0..7 {
            j.admit(&key(), 1, 100, &LeasePolicy::default()).unwrap();
        }
        let in_db = || read_usage(&Connection::open(&path).unwrap(), &key()).unwrap();
        assert_eq!(in_db().runtime_units, 0, "admission does not touch SQLite");
        j.sync().unwrap();
        assert_eq!(in_db().runtime_units, 7);
        // The counter file alone carries the units too (a lost database row
        // would otherwise under-bill): a fresh journal reads them back.
        drop(j);
        std::fs::remove_file(&path).unwrap();
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.usage(&key()).unwrap().runtime_units, 7);
    }

    #[test]
    fn a_stored_lease_or_kernel_count_applies_to_the_next_admission() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("journal.db")).unwrap();
        let policy = LeasePolicy::default();
        j.store_lease(&key(), &lease(50)).unwrap(); // 5 units
        assert_eq!(j.admit(&key(), 1, 100, &policy).unwrap(), 1);
        // The kernel counted 5 calls (more than this runtime's 1): the escrow
        // is used up by what it saw.
        j.record_kernel_units(&key(), 9, 5).unwrap();
        assert!(matches!(
            j.admit(&key(), 1, 100, &policy),
            Err(JournalError::Refused(LeaseRefusal::EscrowExhausted { .. }))
        ));
        // A refreshed lease that saw a top-up admits again at once.
        j.store_lease(&key(), &lease(100)).unwrap();
        assert_eq!(j.admit(&key(), 1, 100, &policy).unwrap(), 2);
        j.deactivate_lease(&key(), "revoked by the vendor").unwrap();
        assert!(matches!(
            j.admit(&key(), 1, 100, &policy),
            Err(JournalError::Refused(LeaseRefusal::Inactive(_)))
        ));
        let usage = j.usage(&key()).unwrap();
        assert_eq!((usage.runtime_units, usage.billable_units()), (2, 5));
    }

    #[test]
    fn a_damaged_counter_file_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let j = Journal::open(&path).unwrap();
        j.store_lease(&key(), &lease(1_000)).unwrap();
        j.admit(&key(), 1, 100, &LeasePolicy::default()).unwrap();
        let counter = j.counter_path(&key());
        drop(j);
        std::fs::write(&counter, b"garbage, not a counter").unwrap();
        let j = Journal::open(&path).unwrap();
        let err = j
            .admit(&key(), 1, 100, &LeasePolicy::default())
            .unwrap_err();
        assert!(matches!(
            err,
            JournalError::Counter(CounterError::Corrupt { .. })
        ));
        assert!(err.to_string().contains(&counter.display().to_string()));
        assert!(j.usage(&key()).is_err());
    }

    #[test]
    fn kernel_counts_add_up_across_map_sets() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("journal.db")).unwrap();
        let kernel = |j: &Journal| j.usage(&key()).unwrap().kernel_units;
        j.record_kernel_units(&key(), u64::MAX, 4).unwrap();
        j.record_kernel_units(&key(), u64::MAX, 6).unwrap();
        j.record_kernel_units(&key(), u64::MAX, 5).unwrap(); // an older reading
        assert_eq!(kernel(&j), 6);
        // A reboot: a new map set counts from zero.
        j.record_kernel_units(&key(), 7, 1).unwrap();
        assert_eq!(kernel(&j), 7);
        // A late reading of the old set, then the new set again: no double count.
        j.record_kernel_units(&key(), u64::MAX, 6).unwrap();
        j.record_kernel_units(&key(), 7, 3).unwrap();
        assert_eq!(kernel(&j), 9);
    }
}
