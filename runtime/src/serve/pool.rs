//! The call pool of `runtime serve`: a fixed set of worker threads fed by a
//! bounded queue, instead of tokio's blocking pool (`spawn_blocking`) per call.
//!
//! Why: `spawn_blocking` hands every call to the blocking pool through its
//! shared lock, boxes it, grows a thread per concurrent request (up to 512)
//! and lets idle ones expire, so under load each call wakes a parked thread
//! and parks it again. Here a fixed set of workers (`--call-workers`) is
//! started once; a worker that finishes a call takes the next queued one
//! without sleeping, and a sleeping worker is woken only when one is waiting.
//! A full queue (`--call-queue`) refuses the call at once — 503 with
//! `Retry-After` — rather than letting requests pile up.
//!
//! The default is four workers per core (at most the sandbox's instance
//! slots). In `scripts/bench-serve` on a shared 2-core machine (load ~10,
//! wrk with 8 connections, four runs) one worker per core gave the most
//! requests per second, 1.00–1.34× the bare axum + wasmtime server, but a p99
//! at or above the bare server's in every run: when the OS preempts a worker
//! for another process's time slice, the calls queued behind it wait. Four per
//! core gave 1.00–1.21× and a p99 below the bare server's in two runs of
//! three. The default favours the tail; `--call-workers` picks either.
//!
//! Billing is unchanged: a job is admitted (journal, kernel meter) by
//! [`Product::call_bytes`](crate::product::Product::call_bytes) (or
//! [`Product::call_typed`](crate::product::Product::call_typed)) on the worker,
//! exactly once, right before the guest runs. A queued job whose client went
//! away before a worker took it is dropped unrun and unbilled. Deadline, fuel
//! and memory limits are the sandbox's, as before.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use sealbox_sandbox::component::Val;
use tokio::sync::oneshot;

use super::state::Served;
use crate::error::RuntimeError;

/// Default queue length of `--call-queue`.
pub const DEFAULT_CALL_QUEUE: usize = 1024;

/// Default worker count of `--call-workers`: four per available core.
pub fn default_call_workers() -> usize {
    4 * std::thread::available_parallelism().map_or(2, usize::from)
}

/// One guest call waiting for a worker.
pub(crate) struct Job {
    pub(crate) served: Arc<Served>,
    pub(crate) request: Request,
    pub(crate) reply: oneshot::Sender<Done>,
}

/// What to call.
pub(crate) enum Request {
    /// A module's bytes-ABI entry with the request body.
    Bytes { export: String, input: Bytes },
    /// A component's function with arguments already typed from the JSON body.
    Typed { function: String, args: Vec<Val> },
}

impl Request {
    fn name(&self) -> &str {
        match self {
            Request::Bytes { export, .. } => export,
            Request::Typed { function, .. } => function,
        }
    }
}

/// What a call returned.
pub(crate) enum Output {
    /// A bytes-ABI entry's output.
    Bytes(Vec<u8>),
    /// A component function's results.
    Typed(Vec<Val>),
}

/// What a worker answers: the call's result and how long it ran.
pub(crate) struct Done {
    pub(crate) result: Result<Output, RuntimeError>,
    pub(crate) took: Duration,
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue holds `--call-queue` jobs already.
    Full,
    /// The server is shutting down.
    Closed,
}

struct Queue<J> {
    jobs: VecDeque<J>,
    /// Workers waiting on `ready`.
    idle: usize,
    closed: bool,
}

struct Shared<J> {
    queue: Mutex<Queue<J>>,
    ready: Condvar,
    capacity: usize,
    workers: usize,
    running: AtomicUsize,
    rejected: AtomicU64,
    /// Jobs the runner skipped (see [`CallPool::start`]).
    skipped: AtomicU64,
}

impl<J> Shared<J> {
    fn lock(&self) -> MutexGuard<'_, Queue<J>> {
        // Nothing panics while holding the lock (calls run outside it).
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The pool: `workers` threads, a queue of at most `capacity` waiting jobs of type `J`.
pub(crate) struct CallPool<J = Job> {
    shared: Arc<Shared<J>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A snapshot for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolStats {
    pub(crate) workers: usize,
    pub(crate) capacity: usize,
    pub(crate) queued: usize,
    pub(crate) running: usize,
    pub(crate) rejected: u64,
    pub(crate) abandoned: u64,
}

impl CallPool<Job> {
    /// The pool of `runtime serve`: each job is a guest call ([`run_call`]).
    pub(crate) fn for_calls(workers: usize, capacity: usize) -> std::io::Result<CallPool<Job>> {
        CallPool::start(workers, capacity, run_call)
    }

    /// Queues a call; the receiver gets its result. Refused at once when the
    /// queue is full or the pool closed (the call is then neither run nor billed).
    pub(crate) fn submit_call(
        &self,
        served: Arc<Served>,
        request: Request,
    ) -> Result<oneshot::Receiver<Done>, Refused> {
        let (reply, done) = oneshot::channel();
        self.submit(Job {
            served,
            request,
            reply,
        })?;
        Ok(done)
    }
}

impl<J: Send + 'static> CallPool<J> {
    /// Starts `workers` threads (at least 1) over a queue of `capacity` jobs
    /// (at least 1); each job is handed to `runner`, which returns whether it
    /// ran it (`false`: skipped, counted as such).
    pub(crate) fn start(
        workers: usize,
        capacity: usize,
        runner: impl Fn(J) -> bool + Send + Sync + 'static,
    ) -> std::io::Result<CallPool<J>> {
        let workers = workers.max(1);
        let capacity = capacity.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::with_capacity(capacity.min(4096)),
                idle: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            capacity,
            workers,
            running: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        });
        let runner = Arc::new(runner);
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers {
            let (worker_shared, runner) = (Arc::clone(&shared), Arc::clone(&runner));
            let spawned = std::thread::Builder::new()
                .name(format!("sealbox-call-{i}"))
                .spawn(move || work(&worker_shared, &*runner));
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    close(&shared);
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(e);
                }
            }
        }
        Ok(CallPool {
            shared,
            threads: Mutex::new(threads),
        })
    }

    /// Queues `job`, or refuses it at once when the queue is full or the pool closed.
    pub(crate) fn submit(&self, job: J) -> Result<(), Refused> {
        let wake = {
            let mut q = self.shared.lock();
            if q.closed {
                return Err(Refused::Closed);
            }
            if q.jobs.len() >= self.shared.capacity {
                drop(q);
                self.shared.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(Refused::Full);
            }
            q.jobs.push_back(job);
            q.idle > 0
        };
        if wake {
            self.shared.ready.notify_one();
        }
        Ok(())
    }

    /// Stops taking jobs; the workers finish every queued job, then exit.
    /// Blocks until they have (call it on the blocking pool).
    pub(crate) fn close_and_join(&self) {
        close(&self.shared);
        let threads = std::mem::take(
            &mut *self
                .threads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for t in threads {
            if t.join().is_err() {
                tracing::warn!("a call worker ended abnormally");
            }
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let queued = self.shared.lock().jobs.len();
        PoolStats {
            workers: self.shared.workers,
            capacity: self.shared.capacity,
            queued,
            running: self.shared.running.load(Ordering::Relaxed),
            rejected: self.shared.rejected.load(Ordering::Relaxed),
            abandoned: self.shared.skipped.load(Ordering::Relaxed),
        }
    }
}

impl<J> Drop for CallPool<J> {
    fn drop(&mut self) {
        // Workers exit once the queue is empty; nobody waits for them here.
        close(&self.shared);
    }
}

fn close<J>(shared: &Shared<J>) {
    shared.lock().closed = true;
    shared.ready.notify_all();
}

/// A worker: takes jobs until the pool is closed and its queue empty.
fn work<J>(shared: &Shared<J>, runner: &dyn Fn(J) -> bool) {
    loop {
        let job = {
            let mut q = shared.lock();
            loop {
                if let Some(job) = q.jobs.pop_front() {
                    break Some(job);
                }
                if q.closed {
                    break None;
                }
                q.idle += 1;
                q = shared
                    .ready
                    .wait(q)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                q.idle -= 1;
            }
        };
        let Some(job) = job else { return };
        shared.running.fetch_add(1, Ordering::Relaxed);
        // A panic is the runner's to report; the worker lives on.
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| runner(job))).unwrap_or(true);
        shared.running.fetch_sub(1, Ordering::Relaxed);
        if !ran {
            shared.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs one guest call and answers it; `false` when its client was gone before it started.
fn run_call(job: Job) -> bool {
    let Job {
        served,
        request,
        reply,
    } = job;
    if reply.is_closed() {
        // The client went away while the call waited: it was never admitted,
        // so it is neither run nor billed.
        return false;
    }
    let started = Instant::now();
    let export = request.name().to_string();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| match request {
        Request::Bytes { export, input } => served
            .product
            .call_bytes(&export, &input)
            .map(Output::Bytes),
        Request::Typed { function, args } => served
            .product
            .call_typed(&function, args)
            .map(Output::Typed),
    }));
    let took = started.elapsed();
    match result {
        // The handler may be gone by now; the call ran and was billed either way.
        Ok(result) => drop(reply.send(Done { result, took })),
        // Dropping `reply` tells the handler the worker failed (500).
        Err(_) => tracing::error!(product = %served.id, export, "a guest call panicked"),
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A pool of `u32` jobs whose runner records each job and waits for `gate`.
    fn gated(
        workers: usize,
        capacity: usize,
    ) -> (
        CallPool<u32>,
        mpsc::Receiver<u32>,
        Arc<Mutex<bool>>,
        Arc<Condvar>,
    ) {
        let (ran_tx, ran) = mpsc::channel();
        let ran_tx = Mutex::new(ran_tx);
        let gate = Arc::new(Mutex::new(false));
        let open = Arc::new(Condvar::new());
        let (g, o) = (Arc::clone(&gate), Arc::clone(&open));
        let pool = CallPool::start(workers, capacity, move |job: u32| {
            ran_tx.lock().unwrap().send(job).unwrap();
            let mut opened = g.lock().unwrap();
            while !*opened {
                opened = o.wait(opened).unwrap();
            }
            true
        })
        .unwrap();
        (pool, ran, gate, open)
    }

    #[test]
    fn a_full_queue_refuses_and_every_job_runs_exactly_once() {
        let (pool, ran, gate, open) = gated(2, 3);
        // Two jobs occupy both workers …
        pool.submit(1).unwrap();
        pool.submit(2).unwrap();
        let mut started = [ran.recv().unwrap(), ran.recv().unwrap()];
        started.sort();
        assert_eq!(started, [1, 2]);
        assert_eq!(pool.stats().running, 2);
        // … three wait, the sixth is refused.
        for job in 3..=5 {
            pool.submit(job).unwrap();
        }
        assert_eq!(pool.submit(6), Err(Refused::Full));
        let stats = pool.stats();
        assert_eq!((stats.queued, stats.capacity, stats.rejected), (3, 3, 1));

        *gate.lock().unwrap() = true;
        open.notify_all();
        pool.close_and_join();
        let mut all: Vec<u32> = started.into_iter().chain(ran.try_iter()).collect();
        all.sort();
        assert_eq!(
            all,
            [1, 2, 3, 4, 5],
            "each accepted job ran once, the refused one never"
        );
        assert_eq!(pool.submit(7), Err(Refused::Closed));
        let stats = pool.stats();
        assert_eq!((stats.queued, stats.running), (0, 0));
    }

    #[test]
    fn many_jobs_from_many_threads_run_exactly_once() {
        let counts: Arc<Vec<AtomicU64>> =
            Arc::new((0..20_000).map(|_| AtomicU64::new(0)).collect());
        let c = Arc::clone(&counts);
        let pool = Arc::new(
            CallPool::start(3, 20_000, move |job: usize| {
                c[job].fetch_add(1, Ordering::Relaxed);
                !job.is_multiple_of(7)
            })
            .unwrap(),
        );
        std::thread::scope(|s| {
            for t in 0..4 {
                let pool = Arc::clone(&pool);
                s.spawn(move || {
                    for job in (t..20_000).step_by(4) {
                        pool.submit(job).unwrap();
                    }
                });
            }
        });
        pool.close_and_join();
        assert!(counts.iter().all(|n| n.load(Ordering::Relaxed) == 1));
        assert_eq!(
            pool.stats().abandoned,
            (0..20_000).filter(|j| j % 7 == 0).count() as u64
        );
    }

    #[test]
    fn a_panicking_job_leaves_the_worker_alive() {
        let pool = CallPool::start(1, 4, |job: u32| {
            assert_ne!(job, 0, "job 0 panics");
            true
        })
        .unwrap();
        pool.submit(0).unwrap();
        pool.submit(1).unwrap();
        pool.close_and_join();
        assert_eq!(pool.stats().queued, 0);
    }
}
