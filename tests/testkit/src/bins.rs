//! The workspace binaries under test (`packager`, `registry`, `runtime`),
//! never stale ones.
//!
//! A test that ran whatever sat in `target/<profile>/` would test yesterday's
//! `runtime` after an edit. So before its first use in a test process, a
//! binary is brought up to date by cargo:
//!
//! * a binary of the test's own package is the one cargo built for this very
//!   run (`cargo test` builds them and says where in `CARGO_BIN_EXE_<name>`);
//! * any other is built with `cargo build --workspace --bin <name>` in the
//!   test binary's own target directory and profile (and `--target`, if it
//!   was cross-built), once per test process behind a lock; a failed build
//!   fails every test that wants the binary, with cargo's errors.
//!
//! `--workspace` resolves features as `cargo build --workspace --bins`
//! (scripts/test's build step) does, so after that step the build here is a
//! no-op (about a second) and never makes that step redo anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

/// The workspace binary `name`, up to date with its sources (see the
/// [module documentation](self)).
pub fn bin(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(format!("CARGO_BIN_EXE_{name}")) {
        return PathBuf::from(path);
    }
    static WORKSPACE: LazyLock<Builder> = LazyLock::new(Builder::for_this_test);
    WORKSPACE.bin(name)
}

/// Builds binaries of one cargo workspace into one target directory and
/// profile, each at most once per [`Builder`].
pub struct Builder {
    manifest: PathBuf,
    target_dir: PathBuf,
    profile: String,
    target: Option<String>,
    built: Mutex<BTreeMap<String, Arc<OnceLock<Built>>>>,
}

/// Where cargo put a binary, or why it could not build it.
type Built = Result<PathBuf, String>;

impl Builder {
    /// Binaries of `manifest`'s workspace, built into `target_dir` with
    /// `profile` (`dev`, `release`, …).
    pub fn new(manifest: &Path, target_dir: &Path, profile: &str) -> Builder {
        Builder {
            manifest: manifest.to_path_buf(),
            target_dir: target_dir.to_path_buf(),
            profile: profile.to_string(),
            target: None,
            built: Mutex::new(BTreeMap::new()),
        }
    }

    /// The Sealbox workspace, built where and how the running test binary
    /// was: it lives in `<target-dir>/[<triple>/]<profile-dir>/deps/`.
    pub fn for_this_test() -> Builder {
        let exe = std::env::current_exe().expect("the test binary knows its path");
        let profile_dir = exe
            .parent()
            .filter(|d| d.ends_with("deps"))
            .and_then(Path::parent)
            .unwrap_or_else(|| {
                panic!(
                    "{} is not in <target-dir>/<profile>/deps/: run it with cargo test",
                    exe.display()
                )
            });
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(other) => other,
            None => panic!("no profile directory above {}", exe.display()),
        };
        let above = profile_dir.parent().expect("a target directory");
        // The target directory holds CACHEDIR.TAG; a `--target` build adds a
        // `<triple>/` level below it.
        let (target_dir, target) =
            if !above.join("CACHEDIR.TAG").exists() && above.parent().is_some_and(is_target_dir) {
                let triple = above.file_name().map(|t| t.to_string_lossy().into_owned());
                (above.parent().expect("checked"), triple)
            } else {
                (above, None)
            };
        let mut builder = Builder::new(&crate::repo_root().join("Cargo.toml"), target_dir, profile);
        builder.target = target;
        builder
    }

    /// The binary `name`, built now unless this builder already built it.
    #[track_caller]
    pub fn bin(&self, name: &str) -> PathBuf {
        let once = self
            .built
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone();
        match once.get_or_init(|| self.build(name)) {
            Ok(path) => path.clone(),
            Err(why) => panic!("{why}"),
        }
    }

    /// `cargo build --workspace --bin NAME`, and where cargo put the executable.
    fn build(&self, name: &str) -> Built {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(&cargo);
        cmd.args(["build", "--workspace", "--bin", name])
            .arg("--manifest-path")
            .arg(&self.manifest)
            .arg("--target-dir")
            .arg(&self.target_dir)
            .args(["--profile", &self.profile])
            .args(["--message-format", "json-render-diagnostics"]);
        if let Some(triple) = &self.target {
            cmd.args(["--target", triple]);
        }
        let line = crate::process::command_line(&cmd);
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `{line}` to build the binary under test: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`{line}` failed ({}), so the tests cannot run the current `{name}`:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .ok_or_else(|| format!("`{line}` built no executable named {name}"))
    }
}

fn is_target_dir(dir: &Path) -> bool {
    dir.join("CACHEDIR.TAG").exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    /// A one-binary crate printing `says`; `later` dates its source 2 s
    /// ahead, so that it is newer than any binary built before, whatever the
    /// file system's clock granularity.
    fn write_crate(root: &Path, says: &str, later: bool) {
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::write(
            root.join("Cargo.toml"),
            "[package]\nname = \"stale-probe\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [[bin]]\nname = \"probe\"\npath = \"src/main.rs\"\n\n[workspace]\n",
        )
        .unwrap();
        let main = root.join("src/main.rs");
        std::fs::write(&main, format!("fn main() {{ print!(\"{says}\"); }}\n")).unwrap();
        if later {
            std::fs::File::options()
                .write(true)
                .open(&main)
                .unwrap()
                .set_modified(SystemTime::now() + Duration::from_secs(2))
                .unwrap();
        }
    }

    fn says(exe: &Path) -> String {
        let out = Command::new(exe).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    /// After a source edit, a test process gets the new binary, not what the
    /// target directory held; within one process the build runs once.
    #[test]
    fn an_edited_source_is_rebuilt_before_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("crate");
        let target = dir.path().join("target");
        let manifest = root.join("Cargo.toml");
        write_crate(&root, "one", false);
        let first = Builder::new(&manifest, &target, "dev");
        let exe = first.bin("probe");
        assert!(exe.starts_with(&target), "{}", exe.display());
        assert_eq!(says(&exe), "one");
        let built = std::fs::metadata(&exe).unwrap().modified().unwrap();

        // The source changes (newer than the binary): yesterday's binary is stale.
        write_crate(&root, "two", true);
        let source = std::fs::metadata(root.join("src/main.rs"))
            .unwrap()
            .modified()
            .unwrap();
        assert!(source > built, "the edit is newer than the binary");

        // Once per process: the same builder does not run cargo again...
        assert_eq!(first.bin("probe"), exe);
        assert_eq!(says(&exe), "one");
        // ...the next test process (a new builder) rebuilds before using it.
        let next = Builder::new(&manifest, &target, "dev");
        assert_eq!(next.bin("probe"), exe);
        assert_eq!(says(&exe), "two");
        assert!(std::fs::metadata(&exe).unwrap().modified().unwrap() > built);
    }

    #[test]
    fn a_build_that_fails_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("crate");
        write_crate(&root, "x", false);
        std::fs::write(root.join("src/main.rs"), "fn main() { nope }\n").unwrap();
        let builder = Builder::new(&root.join("Cargo.toml"), &dir.path().join("t"), "dev");
        let why = builder.build("probe").unwrap_err();
        assert!(why.contains("cargo") && why.contains("probe"), "{why}");
        assert!(why.contains("nope"), "cargo's error is shown: {why}");
    }

    #[test]
    fn this_test_binary_is_built_where_its_workspace_builds() {
        let builder = Builder::for_this_test();
        assert!(is_target_dir(&builder.target_dir));
        let exe = std::env::current_exe().unwrap();
        assert!(exe.starts_with(&builder.target_dir));
        assert!(builder.manifest.is_file());
    }
}
