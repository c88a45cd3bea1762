//! The durable usage journal of one state directory: SQLite for what changes
//! rarely, a shared memory-mapped counter per usage counter for what changes
//! on every call.
//!
//! One SQLite row per counter holds the units bought on chain (as last
//! confirmed), the last kernel count read, the last license lease and the
//! purchase receipt in flight, if any. The units *used* are counted in a
//! [`counter`] file next to the database: a unit is added there, under the
//! rule "used ≤ bought", *before* its guest call runs, so a crash or
//! `SIGKILL` after the call cannot lose it. [`Journal::sync`] folds the
//! counters into SQLite and writes everything to the disk.
//!
//! State that is lost is never a gain: a counter whose row or counter file
//! is missing while the chain says units were bought treats all of them as
//! used (see [`Journal::store_lease`]).

pub mod counter;
#[cfg(test)]
mod proptests;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use license_contract::SignedUsage;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use self::counter::{CounterError, CounterFile};
use crate::lease::{Lease, LeaseRefusal};

/// Identifies one usage counter. Every count belongs to one deployment (chain,
/// registry, genesis) and one buyer (state directory): usage recorded under
/// one is never read, admitted against or bought under another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsageKey {
    /// The deployment (`crate::deployment::Deployment::id`).
    pub deployment: [u8; 32],
    /// The buyer: the state directory running this counter.
    pub buyer: [u8; 32],
    /// Product id (bytes32).
    pub product: [u8; 32],
    /// The customer whose escrow pays.
    pub customer: [u8; 20],
    /// The runtime signer key that signs this counter's purchase receipts.
    pub signer: [u8; 20],
}

/// How many blocks a purchase may be ahead of a license check that raced
/// with it (see [`Journal::store_lease`]).
const RACE_BLOCKS: u64 = 16;

/// Length of [`UsageKey::to_bytes`].
const KEY_LEN: usize = 32 + 32 + 32 + 20 + 20;

impl UsageKey {
    /// The key as one byte string (the SQLite primary key).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(KEY_LEN);
        out.extend_from_slice(&self.deployment);
        out.extend_from_slice(&self.buyer);
        out.extend_from_slice(&self.product);
        out.extend_from_slice(&self.customer);
        out.extend_from_slice(&self.signer);
        out
    }

    /// Parses [`UsageKey::to_bytes`]; `None` when the length is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != KEY_LEN {
            return None;
        }
        let mut key = UsageKey {
            deployment: [0; 32],
            buyer: [0; 32],
            product: [0; 32],
            customer: [0; 20],
            signer: [0; 20],
        };
        key.deployment.copy_from_slice(&bytes[0..32]);
        key.buyer.copy_from_slice(&bytes[32..64]);
        key.product.copy_from_slice(&bytes[64..96]);
        key.customer.copy_from_slice(&bytes[96..116]);
        key.signer.copy_from_slice(&bytes[116..136]);
        Some(key)
    }

    /// A short digest of the key, naming its counter file.
    fn file_name(&self) -> String {
        hex::encode(&Sha256::digest(self.to_bytes())[..20])
    }
}

/// What the journal knows about one usage counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Units admitted by this runtime (its own count).
    pub runtime_units: u64,
    /// Calls the kernel meter counted, summed over its map sets (one per
    /// epoch, see [`Journal::record_kernel_units`]); 0 when never attached.
    pub kernel_units: u64,
    /// Units this buyer has bought on chain, as last confirmed.
    pub bought_units: u64,
}

impl Usage {
    /// Units used: the larger of the runtime's and the kernel's counts, so
    /// neither a lost runtime count nor a detached probe runs a unit twice.
    pub fn used_units(&self) -> u64 {
        self.runtime_units.max(self.kernel_units)
    }

    /// Bought units not yet used (what the next calls may run on).
    pub fn unused_units(&self) -> u64 {
        self.bought_units.saturating_sub(self.used_units())
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
    /// A stored record could not be read back (a lease or a receipt that is
    /// not the JSON this version writes): refused rather than guessed.
    #[error("usage journal {path}: the stored {what} is unreadable: {reason}")]
    Corrupt {
        /// The database file.
        path: String,
        /// Which record.
        what: &'static str,
        /// The parse error.
        reason: String,
    },
    /// An admission counter file could not be used.
    #[error(transparent)]
    Counter(#[from] CounterError),
    /// The lease does not admit another unit.
    #[error(transparent)]
    Refused(#[from] LeaseRefusal),
    /// No license check has succeeded yet for this counter, and none can be made now.
    #[error(
        "no license check on record for this product, customer and state directory, and the \
         chain cannot be reached to make one"
    )]
    NoLease,
    /// A journal operation sent to the blocking pool did not run: the async
    /// runtime is shutting down.
    #[error("usage journal: the operation was cancelled (the runtime is shutting down)")]
    Cancelled,
}

/// Runs `f` on `journal` on tokio's blocking pool, so that a SQLite write
/// (which may fsync or wait for the database lock) never stalls an async
/// worker. A panic in `f` is resumed in the caller.
pub async fn off_worker<T, F>(journal: &Arc<Journal>, f: F) -> Result<T, JournalError>
where
    T: Send + 'static,
    F: FnOnce(&Journal) -> Result<T, JournalError> + Send + 'static,
{
    let journal = Arc::clone(journal);
    match tokio::task::spawn_blocking(move || f(&journal)).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(JournalError::Cancelled),
    }
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

/// The deployment this journal last connected to, for offline starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastDeployment {
    /// Its id.
    pub id: [u8; 32],
    /// Its chain id.
    pub chain_id: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage (
    key BLOB PRIMARY KEY,
    runtime_units INTEGER NOT NULL DEFAULT 0,
    kernel_units INTEGER NOT NULL DEFAULT 0,
    bought_units INTEGER NOT NULL DEFAULT 0,
    lease TEXT,
    pending TEXT
);
CREATE TABLE IF NOT EXISTS kernel_counts (
    key BLOB NOT NULL,
    epoch INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (key, epoch)
);
CREATE TABLE IF NOT EXISTS event_progress (
    epoch INTEGER NOT NULL,
    tenant INTEGER NOT NULL,
    events INTEGER NOT NULL,
    PRIMARY KEY (epoch, tenant)
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
        self.counters_dir.join(key.file_name())
    }

    /// The admission state of `key`, opened on first use. `NoLease` when the
    /// journal has never stored a lease for it.
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
            (usage, self.read_lease(&conn, key)?)
        };
        let lease = lease.ok_or(JournalError::NoLease)?;
        let path = self.counter_path(key);
        let counter = match CounterFile::open_existing(&path)? {
            Some(counter) => counter,
            None => {
                // `store_lease` creates the file with the row: a row without its
                // counter file means the count of used units was lost. Treat
                // every bought unit as used rather than run any of them twice.
                let counter = CounterFile::create(&path)?;
                counter.raise_to(usage.bought_units);
                counter
            }
        };
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
        Ok(CounterFile::read_existing(&self.counter_path(key))?.unwrap_or(0))
    }

    fn db_err(&self, source: rusqlite::Error) -> JournalError {
        JournalError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, what: &'static str, reason: impl ToString) -> JournalError {
        JournalError::Corrupt {
            path: self.path.clone(),
            what,
            reason: reason.to_string(),
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
        self.read_lease(&conn, key)
    }

    fn read_lease(&self, conn: &Connection, key: &UsageKey) -> Result<Option<Lease>, JournalError> {
        self.read_json(conn, key, "lease", "license lease")
    }

    /// Reads the JSON record in `column` of `key`'s row (`None` when there is
    /// none); a record that does not parse is an error naming `what`.
    fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        conn: &Connection,
        key: &UsageKey,
        column: &'static str,
        what: &'static str,
    ) -> Result<Option<T>, JournalError> {
        let text: Option<Option<String>> = conn
            .query_row(
                &format!("SELECT {column} FROM usage WHERE key=?1"),
                params![key.to_bytes()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.db_err(e))?;
        match text.flatten() {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| self.corrupt(what, e)),
        }
    }

    /// Marks the stored lease inactive (the chain refused the license, or
    /// the signer when `signer` is set): no more calls are admitted until a
    /// later check succeeds.
    pub fn deactivate_lease(
        &self,
        key: &UsageKey,
        reason: &str,
        signer: bool,
    ) -> Result<(), JournalError> {
        if let Some(mut lease) = self.lease(key)? {
            lease.inactive = Some(reason.to_owned());
            lease.signer_deauthorized = signer;
            self.store_lease(key, &lease)?;
        }
        Ok(())
    }

    /// Stores a fresh lease and the bought count it reports.
    ///
    /// The chain is the authority on what was bought: a lease read at a block
    /// at or after the last recorded purchase replaces the bought count (a
    /// reorg that dropped a purchase lowers it again); an older one (a check
    /// that raced with a purchase) keeps the purchase.
    ///
    /// The first lease of a counter creates its row and its counter file. A
    /// counter this journal has no row for, while the chain reports units
    /// already bought by this buyer, is one whose record of use was lost (a
    /// deleted database): all its bought units count as used.
    pub fn store_lease(&self, key: &UsageKey, lease: &Lease) -> Result<(), JournalError> {
        let conn = self.lock();
        let created = conn
            .execute(
                "INSERT OR IGNORE INTO usage (key, runtime_units, bought_units)
                 VALUES (?1, ?2, ?2)",
                params![key.to_bytes(), lease.bought_units],
            )
            .map_err(|e| self.db_err(e))?
            == 1;
        let mut lease = lease.clone();
        // Only a purchase a few blocks ahead of the check can be one the check
        // raced with; a recorded purchase block further ahead is not believed
        // (an edited state database cannot outlast the chain's word for long).
        if let Some(stored) = self.read_lease(&conn, key)?
            && stored.bought_block > lease.block
            && stored.bought_block <= lease.block.saturating_add(RACE_BLOCKS)
        {
            lease.bought_units = stored.bought_units;
            lease.bought_block = stored.bought_block;
        }
        self.write_lease(&conn, key, &lease)?;
        drop(conn);
        if created {
            let counter = CounterFile::create(&self.counter_path(key))?;
            counter.raise_to(lease.bought_units);
        }
        if let Some(open) = self.read_admitting().get(key) {
            *open.lease.lock().unwrap_or_else(|e| e.into_inner()) = lease;
        }
        Ok(())
    }

    fn write_lease(
        &self,
        conn: &Connection,
        key: &UsageKey,
        lease: &Lease,
    ) -> Result<(), JournalError> {
        let text = serde_json::to_string(lease).map_err(|e| self.corrupt("license lease", e))?;
        conn.execute(
            "UPDATE usage SET lease=?2, bought_units=?3 WHERE key=?1",
            params![key.to_bytes(), text, lease.bought_units],
        )
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Records that the chain confirmed, in block `block`, `cumulative` units
    /// bought by this counter's buyer; admission may use them at once.
    pub fn record_bought(
        &self,
        key: &UsageKey,
        cumulative: u64,
        block: u64,
    ) -> Result<(), JournalError> {
        let conn = self.lock();
        let mut lease = self.read_lease(&conn, key)?.ok_or(JournalError::NoLease)?;
        if block < lease.bought_block {
            return Ok(());
        }
        lease.bought_units = cumulative;
        lease.bought_block = block;
        self.write_lease(&conn, key, &lease)?;
        drop(conn);
        if let Some(open) = self.read_admitting().get(key) {
            let mut cached = open.lease.lock().unwrap_or_else(|e| e.into_inner());
            cached.bought_units = cumulative;
            cached.bought_block = block;
        }
        Ok(())
    }

    /// Keeps a signed purchase receipt until the chain confirms it, so that a
    /// crash or an outage re-sends the same receipt instead of signing another.
    pub fn store_pending(&self, key: &UsageKey, signed: &SignedUsage) -> Result<(), JournalError> {
        let text = serde_json::to_string(signed).map_err(|e| self.corrupt("receipt", e))?;
        let conn = self.lock();
        conn.execute(
            "UPDATE usage SET pending=?2 WHERE key=?1",
            params![key.to_bytes(), text],
        )
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// The purchase receipt in flight, if any.
    pub fn pending(&self, key: &UsageKey) -> Result<Option<SignedUsage>, JournalError> {
        let conn = self.lock();
        self.read_json(&conn, key, "pending", "receipt")
    }

    /// Forgets the receipt in flight (confirmed, or refused by the chain).
    pub fn clear_pending(&self, key: &UsageKey) -> Result<(), JournalError> {
        let conn = self.lock();
        conn.execute(
            "UPDATE usage SET pending=NULL WHERE key=?1",
            params![key.to_bytes()],
        )
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Admits `n` units, atomically (also against other processes sharing
    /// this journal): either every one of them was bought and they are
    /// counted, or nothing changes. Returns the new cumulative runtime count.
    ///
    /// The lease and kernel count are the ones last stored through this
    /// journal; no SQLite access happens here once a counter is open.
    pub fn admit(&self, key: &UsageKey, n: u64) -> Result<u64, JournalError> {
        let admission = self.admission(key)?;
        let lease = admission.lease.lock().unwrap_or_else(|e| e.into_inner());
        let kernel_units = admission.kernel_units.load(Ordering::Acquire);
        // Use what the larger count says, as `Usage::used_units` does: a call
        // the kernel saw but this runtime did not still used a bought unit.
        Ok(admission.counter.try_add(n, |after| {
            lease.admit(after.max(kernel_units.saturating_add(n)))
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
        let k = key.to_bytes();
        // A reading for a counter with no row yet: nothing bought, nothing to lose.
        conn.execute("INSERT OR IGNORE INTO usage (key) VALUES (?1)", params![k])
            .map_err(|e| self.db_err(e))?;
        // SQLite integers are signed: the epoch is stored as its bit pattern.
        let epoch = epoch as i64;
        conn.execute(
            "INSERT INTO kernel_counts (key, epoch, count) VALUES (?1, ?2, ?3)
             ON CONFLICT DO UPDATE SET count=MAX(count, excluded.count)",
            params![k, epoch, count],
        )
        .map_err(|e| self.db_err(e))?;
        conn.execute(
            "UPDATE usage SET kernel_units=MAX(kernel_units, (
                 SELECT SUM(count) FROM kernel_counts WHERE key=?1))
             WHERE key=?1",
            params![k],
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

    /// Kernel events billed so far per tenant of the event meter whose pinned
    /// maps are identified by `epoch` (`TlsMeter::epoch`: a new map set, after
    /// a reboot, counts from zero again).
    pub fn events_billed(&self, epoch: u64) -> Result<BTreeMap<u64, u64>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT tenant, events FROM event_progress WHERE epoch=?1")
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map(params![epoch as i64], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
            })
            .map_err(|e| self.db_err(e))?;
        let mut billed = BTreeMap::new();
        for row in rows {
            let (tenant, events) = row.map_err(|e| self.db_err(e))?;
            billed.insert(tenant, events);
        }
        Ok(billed)
    }

    /// Charges `units` to `key` for kernel events that already happened, and
    /// records in the same transaction how many events of each tenant are
    /// billed now (`progress`, cumulative per tenant of meter `epoch`): a
    /// crash leaves either both or neither, so no event is billed twice or
    /// lost. Unlike [`Journal::admit`] this never refuses (the events were
    /// not stopped in time; the units are owed and bought next). Returns the
    /// counter's usage after it.
    pub fn charge_events(
        &self,
        key: &UsageKey,
        epoch: u64,
        progress: &BTreeMap<u64, u64>,
        units: u64,
    ) -> Result<Usage, JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(|e| self.db_err(e))?;
        let k = key.to_bytes();
        tx.execute("INSERT OR IGNORE INTO usage (key) VALUES (?1)", params![k])
            .map_err(|e| self.db_err(e))?;
        let admitted = self.admitted(key)?;
        // SQLite integers are signed: counts are stored as their bit pattern.
        tx.execute(
            "UPDATE usage SET runtime_units=MAX(runtime_units, ?2) + ?3 WHERE key=?1",
            params![k, admitted as i64, units as i64],
        )
        .map_err(|e| self.db_err(e))?;
        for (tenant, events) in progress {
            tx.execute(
                "INSERT INTO event_progress (epoch, tenant, events) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO UPDATE SET events=MAX(events, excluded.events)",
                params![epoch as i64, *tenant as i64, *events as i64],
            )
            .map_err(|e| self.db_err(e))?;
        }
        let usage = read_usage(&tx, key).map_err(|e| self.db_err(e))?;
        tx.commit().map_err(|e| self.db_err(e))?;
        Ok(usage)
    }

    /// The deployment recorded by the last successful connection.
    pub fn last_deployment(&self) -> Result<Option<LastDeployment>, JournalError> {
        let conn = self.lock();
        let value: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE name='deployment'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.db_err(e))?;
        let Some(value) = value else { return Ok(None) };
        let parse = || -> Option<LastDeployment> {
            let (id, chain_id) = value.split_once(' ')?;
            let id: [u8; 32] = hex::decode(id).ok()?.try_into().ok()?;
            Some(LastDeployment {
                id,
                chain_id: chain_id.parse().ok()?,
            })
        };
        parse()
            .map(Some)
            .ok_or_else(|| self.corrupt("deployment record", value.clone()))
    }

    /// Records the deployment of a successful connection.
    pub fn set_last_deployment(&self, deployment: LastDeployment) -> Result<(), JournalError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO meta (name, value) VALUES ('deployment', ?1)
             ON CONFLICT(name) DO UPDATE SET value=excluded.value",
            params![format!(
                "{} {}",
                hex::encode(deployment.id),
                deployment.chain_id
            )],
        )
        .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    /// Every counter in the journal.
    pub fn keys(&self) -> Result<Vec<UsageKey>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT key FROM usage")
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .map_err(|e| self.db_err(e))?;
        let mut keys = Vec::new();
        for row in rows {
            let bytes = row.map_err(|e| self.db_err(e))?;
            keys.push(
                UsageKey::from_bytes(&bytes)
                    .ok_or_else(|| self.corrupt("counter key", hex::encode(&bytes)))?,
            );
        }
        Ok(keys)
    }

    /// Forces everything counted so far onto the disk: each admission counter
    /// is flushed and folded into its SQLite row, then the WAL is checkpointed.
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
                "UPDATE usage SET runtime_units=MAX(runtime_units, ?2) WHERE key=?1",
                params![key.to_bytes(), admitted],
            )
            .map_err(|e| self.db_err(e))?;
        }
        let conn = self.lock();
        conn.query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))
            .map_err(|e| self.db_err(e))
    }
}

fn read_usage(conn: &Connection, key: &UsageKey) -> rusqlite::Result<Usage> {
    Ok(conn
        .query_row(
            "SELECT runtime_units, kernel_units, bought_units FROM usage WHERE key=?1",
            params![key.to_bytes()],
            |r| {
                Ok(Usage {
                    runtime_units: r.get(0)?,
                    kernel_units: r.get(1)?,
                    bought_units: r.get(2)?,
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
            deployment: [4; 32],
            buyer: [5; 32],
            product: [1; 32],
            customer: [2; 20],
            signer: [3; 20],
        }
    }

    fn lease(bought_units: u64) -> Lease {
        Lease {
            checked_at: 100,
            block: 1,
            block_timestamp: 100,
            price_wei: 10,
            available_wei: 1_000,
            bought_units,
            bought_block: 1,
            inactive: None,
            signer_deauthorized: false,
            cannot_buy: None,
            release: [6; 32],
        }
    }

    #[test]
    fn admits_only_bought_units_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        {
            let j = Journal::open(&path).unwrap();
            assert!(matches!(j.admit(&key(), 1), Err(JournalError::NoLease)));
            j.store_lease(&key(), &lease(0)).unwrap();
            assert!(matches!(
                j.admit(&key(), 1),
                Err(JournalError::Refused(LeaseRefusal::NotBought { .. }))
            ));
            j.record_bought(&key(), 3, 1).unwrap();
            assert_eq!(j.admit(&key(), 1).unwrap(), 1);
            assert_eq!(j.admit(&key(), 2).unwrap(), 3);
            assert!(matches!(
                j.admit(&key(), 1),
                Err(JournalError::Refused(LeaseRefusal::NotBought {
                    used: 4,
                    bought: 3,
                    ..
                }))
            ));
        }
        let j = Journal::open(&path).unwrap();
        let usage = j.usage(&key()).unwrap();
        assert_eq!((usage.runtime_units, usage.bought_units), (3, 3));
        j.record_kernel_units(&key(), 9, 5).unwrap();
        let usage = j.usage(&key()).unwrap();
        assert_eq!(usage.used_units(), 5);
        assert_eq!(usage.unused_units(), 0);
        assert_eq!(j.keys().unwrap(), vec![key()]);
    }

    #[test]
    fn journals_sharing_a_file_never_admit_past_what_was_bought() {
        // Two journals on one database stand in for two runtime processes:
        // each maps the counter file itself.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let a = Journal::open(&path).unwrap();
        a.store_lease(&key(), &lease(0)).unwrap();
        a.record_bought(&key(), 1_000, 1).unwrap();
        let b = Journal::open(&path).unwrap();
        let admitted = AtomicU64::new(0);
        std::thread::scope(|s| {
            for journal in [&a, &a, &b, &b] {
                let admitted = &admitted;
                s.spawn(move || {
                    while journal.admit(&key(), 1).is_ok() {
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
        j.store_lease(&key(), &lease(0)).unwrap();
        j.record_bought(&key(), 100, 1).unwrap();
        for _ in 0..7 {
            j.admit(&key(), 1).unwrap();
        }
        let in_db = || read_usage(&Connection::open(&path).unwrap(), &key()).unwrap();
        assert_eq!(in_db().runtime_units, 0, "admission does not touch SQLite");
        j.sync().unwrap();
        assert_eq!(in_db().runtime_units, 7);
        // Reopened, the counter file carries on from where it was.
        drop(j);
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.admit(&key(), 1).unwrap(), 8);
    }

    #[test]
    fn lost_state_never_runs_a_bought_unit_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let j = Journal::open(&path).unwrap();
        j.store_lease(&key(), &lease(0)).unwrap();
        j.record_bought(&key(), 10, 1).unwrap();
        for _ in 0..4 {
            j.admit(&key(), 1).unwrap();
        }
        let counter = j.counter_path(&key());
        drop(j);

        // The counter file is deleted: its 4 used units are unknown, so all 10
        // bought count as used.
        std::fs::remove_file(&counter).unwrap();
        let j = Journal::open(&path).unwrap();
        assert!(matches!(
            j.admit(&key(), 1),
            Err(JournalError::Refused(LeaseRefusal::NotBought {
                used: 11,
                bought: 10,
                ..
            }))
        ));
        drop(j);

        // The database is deleted (counter file kept or not): the chain still
        // says 10 bought, and a journal with no row treats them as used.
        for name in ["journal.db", "journal.db-wal", "journal.db-shm"] {
            let _ = std::fs::remove_file(dir.path().join(name));
        }
        let _ = std::fs::remove_file(&counter);
        let j = Journal::open(&path).unwrap();
        j.store_lease(&key(), &lease(10)).unwrap();
        assert!(j.admit(&key(), 1).is_err());
        assert_eq!(j.usage(&key()).unwrap().unused_units(), 0);
        // A later purchase runs exactly what it bought.
        j.record_bought(&key(), 12, 1).unwrap();
        assert_eq!(j.admit(&key(), 2).unwrap(), 12);
        assert!(j.admit(&key(), 1).is_err());
    }

    #[test]
    fn counters_of_other_deployments_and_buyers_are_separate() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("journal.db")).unwrap();
        let other_deployment = UsageKey {
            deployment: [9; 32],
            ..key()
        };
        let other_buyer = UsageKey {
            buyer: [9; 32],
            ..key()
        };
        j.store_lease(&key(), &lease(0)).unwrap();
        j.record_bought(&key(), 3, 1).unwrap();
        for _ in 0..3 {
            j.admit(&key(), 1).unwrap();
        }
        j.record_kernel_units(&key(), 1, 3).unwrap();
        for other in [other_deployment, other_buyer] {
            j.store_lease(&other, &lease(0)).unwrap();
            let usage = j.usage(&other).unwrap();
            assert_eq!(usage, Usage::default(), "{other:?}");
            assert!(j.admit(&other, 1).is_err());
        }
    }

    #[test]
    fn a_stored_lease_or_kernel_count_applies_to_the_next_admission() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("journal.db")).unwrap();
        j.store_lease(&key(), &lease(0)).unwrap();
        j.record_bought(&key(), 5, 1).unwrap();
        assert_eq!(j.admit(&key(), 1).unwrap(), 1);
        // The kernel counted 5 calls (more than this runtime's 1): every
        // bought unit is used by what it saw.
        j.record_kernel_units(&key(), 9, 5).unwrap();
        assert!(matches!(
            j.admit(&key(), 1),
            Err(JournalError::Refused(LeaseRefusal::NotBought { .. }))
        ));
        // A lease that saw a purchase admits again at once.
        j.store_lease(&key(), &lease(10)).unwrap();
        assert_eq!(j.admit(&key(), 1).unwrap(), 2);
        // A check that raced with a purchase (read at an older block) does not
        // undo it; a later block is the chain's word (a reorg lowers it).
        j.record_bought(&key(), 20, 5).unwrap();
        j.store_lease(&key(), &lease(10)).unwrap();
        assert_eq!(j.usage(&key()).unwrap().bought_units, 20);
        let later = Lease {
            block: 6,
            ..lease(12)
        };
        j.store_lease(&key(), &later).unwrap();
        assert_eq!(j.usage(&key()).unwrap().bought_units, 12);
        // A purchase recorded far ahead of every check (an edited database)
        // does not outlast the chain's word.
        j.record_bought(&key(), 1_000, 1_000).unwrap();
        j.store_lease(
            &key(),
            &Lease {
                block: 7,
                ..lease(12)
            },
        )
        .unwrap();
        assert_eq!(j.usage(&key()).unwrap().bought_units, 12);
        j.deactivate_lease(&key(), "revoked by the vendor", false)
            .unwrap();
        assert!(matches!(
            j.admit(&key(), 1),
            Err(JournalError::Refused(LeaseRefusal::Inactive(_)))
        ));
        let usage = j.usage(&key()).unwrap();
        assert_eq!((usage.runtime_units, usage.used_units()), (2, 5));
    }

    #[test]
    fn a_damaged_counter_file_or_lease_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let j = Journal::open(&path).unwrap();
        j.store_lease(&key(), &lease(10)).unwrap();
        let counter = j.counter_path(&key());
        drop(j);
        std::fs::write(&counter, b"garbage, not a counter").unwrap();
        let j = Journal::open(&path).unwrap();
        let err = j.admit(&key(), 1).unwrap_err();
        assert!(matches!(
            err,
            JournalError::Counter(CounterError::Corrupt { .. })
        ));
        assert!(err.to_string().contains(&counter.display().to_string()));
        assert!(j.usage(&key()).is_err());
        drop(j);

        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE usage SET lease='{not json'", [])
            .unwrap();
        let j = Journal::open(&path).unwrap();
        assert!(matches!(
            j.lease(&key()),
            Err(JournalError::Corrupt {
                what: "license lease",
                ..
            })
        ));
    }

    #[test]
    fn a_pending_receipt_is_kept_until_cleared() {
        use alloy::primitives::{Address, B256, FixedBytes};
        use license_contract::UsageReceipt;
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("journal.db")).unwrap();
        j.store_lease(&key(), &lease(0)).unwrap();
        assert_eq!(j.pending(&key()).unwrap(), None);
        let signed = SignedUsage {
            receipt: UsageReceipt {
                product_id: B256::repeat_byte(1),
                customer: Address::repeat_byte(2),
                buyer: B256::repeat_byte(5),
                cumulative_units: 40,
                max_price: 10,
                expires_at: 1_000,
            },
            signature: FixedBytes::repeat_byte(7),
        };
        j.store_pending(&key(), &signed).unwrap();
        assert_eq!(j.pending(&key()).unwrap(), Some(signed));
        j.clear_pending(&key()).unwrap();
        assert_eq!(j.pending(&key()).unwrap(), None);
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

    #[test]
    fn the_last_deployment_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("journal.db")).unwrap();
        assert_eq!(j.last_deployment().unwrap(), None);
        let d = LastDeployment {
            id: [7; 32],
            chain_id: 31337,
        };
        j.set_last_deployment(d).unwrap();
        assert_eq!(j.last_deployment().unwrap(), Some(d));
    }
}
