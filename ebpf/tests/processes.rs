//! Several processes: per-process probes never count each other's calls,
//! counts survive SIGKILL in the pinned map, and a stripped binary attaches by
//! file offset. The children are this test binary re-run as the ignored
//! `child_process` test. Needs root and BPF; where there is none,
//! SEALBOX_SKIP_BPF=1 skips (the testkit's BPF rule).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{MeterPins, PinDir, attach, serial, skip_bpf, test_key};
use sealbox_ebpf::{AttachMode, AttachPoint, Meter, MeterOptions, meter_call, read_pinned_count};

const CHILD_ENV: &str = "SEALBOX_EBPF_CHILD";

/// What a child does: `pin_dir;key;calls;mode;hold;progress_file`.
struct ChildSpec {
    pin_dir: PathBuf,
    key: u64,
    /// Calls to make; 0 = call forever, publishing progress.
    calls: u64,
    mode: AttachMode,
    /// Stay alive after counting, until killed.
    hold: bool,
    /// File holding a u64 that the child updates after every call (calls = 0).
    progress: Option<PathBuf>,
}

impl ChildSpec {
    fn encode(&self) -> String {
        let mode = match self.mode {
            AttachMode::Auto => "auto",
            AttachMode::Symbol => "symbol",
            AttachMode::Offset => "offset",
            AttachMode::UprobeMulti => "multi",
        };
        let progress = self
            .progress
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        format!(
            "{};{};{};{mode};{};{progress}",
            self.pin_dir.display(),
            self.key,
            self.calls,
            self.hold
        )
    }

    fn decode(s: &str) -> Self {
        let f: Vec<&str> = s.split(';').collect();
        Self {
            pin_dir: PathBuf::from(f[0]),
            key: f[1].parse().unwrap(),
            calls: f[2].parse().unwrap(),
            mode: match f[3] {
                "symbol" => AttachMode::Symbol,
                "offset" => AttachMode::Offset,
                "multi" => AttachMode::UprobeMulti,
                _ => AttachMode::Auto,
            },
            hold: f[4] == "true",
            progress: (!f[5].is_empty()).then(|| PathBuf::from(f[5])),
        }
    }
}

/// A u64 shared through a file mapped by parent and child.
struct SharedCounter {
    ptr: *mut AtomicU64,
}

impl SharedCounter {
    fn open(path: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        file.set_len(8).unwrap();
        // SAFETY: mapping 8 bytes of a file we keep open until munmap is not needed
        // (the mapping outlives the fd legitimately).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap {}", path.display());
        Self { ptr: ptr.cast() }
    }

    fn get(&self) -> &AtomicU64 {
        // SAFETY: page-aligned, 8 bytes, mapped for the life of the process.
        unsafe { &*self.ptr }
    }
}

/// This test binary, re-run as a child doing `spec`; killed on drop.
struct ChildRun {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl ChildRun {
    fn spawn(exe: &Path, spec: &ChildSpec) -> Self {
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "child_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, spec.encode())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self { child, stdout }
    }

    /// The next `CHILD_…` message as (tag, rest), or `None` at EOF. Messages may
    /// follow libtest's "test child_process ... " on the same line.
    fn next_message(&mut self) -> Option<(String, String)> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).unwrap() == 0 {
                return None;
            }
            if let Some(at) = line.find("CHILD_") {
                let message = line[at..].trim_end();
                let (tag, rest) = message.split_once(' ').unwrap_or((message, ""));
                return Some((tag.to_string(), rest.trim().to_string()));
            }
        }
    }

    /// The rest of the next `tag` message, skipping others; panics on CHILD_ERROR or EOF.
    fn expect_line(&mut self, tag: &str) -> String {
        loop {
            match self.next_message() {
                Some((t, rest)) if t == tag => return rest,
                Some((t, rest)) if t == "CHILD_ERROR" => panic!("child failed: {rest}"),
                Some(_) => {}
                None => panic!("child exited before saying {tag}"),
            }
        }
    }

    fn sigkill(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "child was not killed: {status}");
    }

    fn wait_success(&mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
    }
}

impl Drop for ChildRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch file removed on drop, even when the test fails.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("sealbox-ebpf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn exe() -> PathBuf {
    std::env::current_exe().unwrap()
}

/// The child side. Not a test of its own: the other tests run it in a child process.
#[test]
#[ignore = "child-process helper, run by the other tests with SEALBOX_EBPF_CHILD set"]
fn child_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        eprintln!("child_process: {CHILD_ENV} is not set; this helper only runs as a child");
        return;
    };
    let spec = ChildSpec::decode(&spec);
    let say = |line: String| {
        let mut out = std::io::stdout();
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    };
    let meter = match Meter::attach(&MeterOptions {
        pin_dir: spec.pin_dir.clone(),
        attach: spec.mode,
        ..MeterOptions::default()
    }) {
        Ok(m) => m,
        Err(e) => {
            say(format!("CHILD_ERROR {e}"));
            std::process::exit(3);
        }
    };
    let point = match meter.attach_point() {
        AttachPoint::Symbol => "symbol",
        AttachPoint::FileOffset { .. } => "offset",
        AttachPoint::UprobeMulti { .. } => "multi",
    };
    say(format!("CHILD_ATTACHED {point}"));
    say(format!("CHILD_EPOCH {}", meter.epoch()));
    let slot = meter.register(spec.key).unwrap();
    if let Some(progress) = &spec.progress {
        let shared = SharedCounter::open(progress);
        say("CHILD_RUNNING".into());
        let mut done = 0u64;
        loop {
            meter_call(slot);
            done += 1;
            shared.get().store(done, Ordering::SeqCst);
        }
    }
    for _ in 0..spec.calls {
        meter_call(slot);
    }
    say(format!("CHILD_COUNTED {}", meter.count(spec.key).unwrap()));
    if spec.hold {
        say("CHILD_HOLDING".into());
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

#[test]
fn processes_count_only_their_own_calls() {
    if skip_bpf("processes_count_only_their_own_calls") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    let (parent_key, key_a, key_b) = (test_key(40), test_key(41), test_key(42));
    // The parent's probe is on the same file offset of the same binary the
    // children run: it must not fire for their calls.
    let meter = attach(&dir.options());
    let spec = |key, calls| ChildSpec {
        pin_dir: dir.path.clone(),
        key,
        calls,
        mode: AttachMode::Auto,
        hold: false,
        progress: None,
    };
    let mut a = ChildRun::spawn(&exe(), &spec(key_a, 30_000));
    let mut b = ChildRun::spawn(&exe(), &spec(key_b, 50_000));
    let parent_slot = meter.register(parent_key).unwrap();
    for _ in 0..20_000 {
        meter_call(parent_slot);
    }
    assert_eq!(a.expect_line("CHILD_COUNTED"), "30000");
    assert_eq!(b.expect_line("CHILD_COUNTED"), "50000");
    a.wait_success();
    b.wait_success();
    assert_eq!(meter.count(parent_key).unwrap(), 20_000);
    assert_eq!(meter.count(key_a).unwrap(), 30_000);
    assert_eq!(meter.count(key_b).unwrap(), 50_000);
}

#[test]
fn counts_survive_sigkill_and_continue_without_loss_or_doubling() {
    if skip_bpf("counts_survive_sigkill_and_continue_without_loss_or_doubling") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    let key = test_key(50);
    let (n, m) = (77_777u64, 22_223u64);
    let mut child = ChildRun::spawn(
        &exe(),
        &ChildSpec {
            pin_dir: dir.path.clone(),
            key,
            calls: n,
            mode: AttachMode::Auto,
            hold: true,
            progress: None,
        },
    );
    let child_epoch = child.expect_line("CHILD_EPOCH");
    assert_eq!(child.expect_line("CHILD_COUNTED"), n.to_string());
    child.expect_line("CHILD_HOLDING");
    child.sigkill();

    // Read back without attaching, as a status command would.
    assert_eq!(read_pinned_count(&dir.path, key).unwrap(), n);
    let meter = attach(&dir.options());
    assert_eq!(meter.count(key).unwrap(), n);
    assert_eq!(
        meter.epoch().to_string(),
        child_epoch,
        "same maps, same epoch"
    );
    let slot = meter.register(key).unwrap();
    for _ in 0..m {
        meter_call(slot);
    }
    assert_eq!(meter.count(key).unwrap(), n + m);
    drop(meter);
    meter_call(slot);
    assert_eq!(read_pinned_count(&dir.path, key).unwrap(), n + m);
}

#[test]
fn a_kill_mid_stream_loses_nothing_that_returned() {
    if skip_bpf("a_kill_mid_stream_loses_nothing_that_returned") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    let key = test_key(51);
    let progress_file = TempFile::new("progress");
    let progress_path = progress_file.0.clone();
    let progress = SharedCounter::open(&progress_path);
    let mut child = ChildRun::spawn(
        &exe(),
        &ChildSpec {
            pin_dir: dir.path.clone(),
            key,
            calls: 0,
            mode: AttachMode::Auto,
            hold: false,
            progress: Some(progress_path.clone()),
        },
    );
    child.expect_line("CHILD_RUNNING");
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.get().load(Ordering::SeqCst) < 200_000 {
        assert!(Instant::now() < deadline, "child made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.sigkill();
    let returned = progress.get().load(Ordering::SeqCst);
    let counted = read_pinned_count(&dir.path, key).unwrap();
    // Every call that returned was counted; at most the one in flight when the
    // signal hit was counted without its return being recorded.
    assert!(
        counted == returned || counted == returned + 1,
        "kernel counted {counted}, child completed {returned}"
    );
}

#[test]
fn a_stripped_binary_attaches_by_file_offset() {
    if skip_bpf("a_stripped_binary_attaches_by_file_offset") {
        return;
    }
    let _serial = serial();
    let dir = PinDir::new();
    let stripped_file = TempFile::new("stripped");
    let stripped = stripped_file.0.clone();
    std::fs::copy(exe(), &stripped).unwrap();
    let status = Command::new("strip")
        .arg("--strip-all")
        .arg(&stripped)
        .status()
        .unwrap_or_else(|e| panic!("cannot run `strip` (apt-get install binutils): {e}"));
    assert!(status.success());
    let spec = |key, mode| ChildSpec {
        pin_dir: dir.path.clone(),
        key,
        calls: 10_000,
        mode,
        hold: false,
        progress: None,
    };

    // By symbol there is nothing to find...
    let mut by_symbol = ChildRun::spawn(&stripped, &spec(test_key(60), AttachMode::Symbol));
    match by_symbol.next_message() {
        Some((tag, rest)) => assert!(
            tag == "CHILD_ERROR" && rest.contains("sealbox_meter_entry"),
            "symbol attach on a stripped binary: {tag} {rest}"
        ),
        None => panic!("child exited without a message"),
    }
    drop(by_symbol);

    // ...but Auto links by file offset (uprobe_multi), and a perf-event uprobe can attach by
    // offset too; each counts exactly.
    for (key, mode, point) in [
        (test_key(61), AttachMode::Auto, "multi"),
        (test_key(62), AttachMode::Offset, "offset"),
    ] {
        let mut child = ChildRun::spawn(&stripped, &spec(key, mode));
        assert_eq!(child.expect_line("CHILD_ATTACHED"), point, "{mode:?}");
        assert_eq!(child.expect_line("CHILD_COUNTED"), "10000");
        child.wait_success();
        assert_eq!(read_pinned_count(&dir.path, key).unwrap(), 10_000);
    }
}
