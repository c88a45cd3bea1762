//! `packager new`: start a vendor project — a Rust crate that builds to a module `packager seal`
//! accepts, with the guest crate (`sealbox-guest`) written beside it.
//!
//! The guest crate is not published anywhere: the packager carries its sources (from
//! `packager/guest/`) and writes the copy that speaks the packager's ABI. The templates are the
//! files under `packager/template/`: one `lib.rs.in` whose crate header (`header.std.rs` or
//! `header.no_std.rs`) says which kind of guest it is.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Arguments of `packager new`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name of the project: its directory, its crate and (by default) its product name.
    /// Lower-case letters, digits, `-` and `_`, starting with a letter.
    #[arg(value_name = "NAME", value_parser = parse_name)]
    name: String,
    /// Write the project into DIR instead of ./NAME (DIR must not exist or be empty).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// A `#![no_std]` guest (alloc only): takes sealbox-guest's allocator and panic handler.
    /// Smaller modules; only libraries that support no_std can be used.
    #[arg(long)]
    no_std: bool,
}

/// One file of the project: its path inside the project and its text.
struct File {
    path: String,
    text: String,
}

/// The guest crate's files, as the packager was built with them.
const GUEST: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../guest/Cargo.toml")),
    ("src/lib.rs", include_str!("../guest/src/lib.rs")),
    ("src/abi.rs", include_str!("../guest/src/abi.rs")),
    ("src/arena.rs", include_str!("../guest/src/arena.rs")),
    ("src/bare.rs", include_str!("../guest/src/bare.rs")),
    ("src/hosted.rs", include_str!("../guest/src/hosted.rs")),
];

/// Where the guest crate goes inside a new project.
const GUEST_DIR: &str = "sealbox-guest";

/// Writes the project and prints what to do next.
pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let files = project(&args.name, args.no_std);
    write_project(&dir, &files)?;
    let lib = lib_name(&args.name);
    println!(
        "created {} ({} guest{})",
        dir.display(),
        if args.no_std { "no_std" } else { "std" },
        if args.no_std {
            ", sealbox-guest feature no-std"
        } else {
            ""
        }
    );
    println!();
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  cargo test");
    println!("  cargo build --release --target wasm32-unknown-unknown");
    println!(
        "  packager seal target/wasm32-unknown-unknown/release/{lib}.wasm --key vendor.key \
         --name {} --version 0.1.0 --chain-id ID --registry ADDR -o {}.sealed.wasm",
        args.name, args.name
    );
    println!("  packager verify {}.sealed.wasm", args.name);
    Ok(())
}

/// Checks a project name: it becomes a directory, a crate name and a product name.
fn parse_name(name: &str) -> Result<String, String> {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !starts_with_letter || !rest_ok || name.len() > 64 {
        return Err(format!(
            "{name:?} cannot name a crate: use 1 to 64 lower-case letters, digits, `-` and `_`, \
             starting with a letter (e.g. `fraud-score`)"
        ));
    }
    Ok(name.to_string())
}

/// The library name cargo derives from a crate name, which is also the `.wasm` file's stem.
fn lib_name(name: &str) -> String {
    name.replace('-', "_")
}

/// Every file of a new project named `name`.
fn project(name: &str, no_std: bool) -> Vec<File> {
    let guest_dependency = if no_std {
        format!("sealbox-guest = {{ path = \"{GUEST_DIR}\", features = [\"no-std\"] }}")
    } else {
        format!("sealbox-guest = {{ path = \"{GUEST_DIR}\" }}")
    };
    let serde_dependencies = if no_std {
        "serde = { version = \"1\", default-features = false, features = [\"derive\", \"alloc\"] }\n\
         serde_json = { version = \"1\", default-features = false, features = [\"alloc\"] }"
    } else {
        "serde = { version = \"1\", features = [\"derive\"] }\nserde_json = \"1\""
    };
    let flavour = if no_std {
        "this project is `no_std` (`alloc` only), so every dependency must support `no_std`."
    } else {
        "any library from crates.io that builds for `wasm32-unknown-unknown` can be used."
    };
    let header = if no_std {
        include_str!("../template/header.no_std.rs")
    } else {
        include_str!("../template/header.std.rs")
    };
    let fill = |template: &str| {
        template
            .replace("{{crate_header}}", header)
            .replace("{{name}}", name)
            .replace("{{lib_name}}", &lib_name(name))
            .replace("{{guest_dependency}}", &guest_dependency)
            .replace("{{serde_dependencies}}", serde_dependencies)
            .replace("{{flavour}}", flavour)
    };
    let mut files = vec![
        File {
            path: "Cargo.toml".into(),
            text: fill(include_str!("../template/Cargo.toml.in")),
        },
        File {
            path: "src/lib.rs".into(),
            text: fill(include_str!("../template/lib.rs.in")),
        },
        File {
            path: "README.md".into(),
            text: fill(include_str!("../template/README.md.in")),
        },
        File {
            path: ".gitignore".into(),
            text: include_str!("../template/gitignore").to_string(),
        },
    ];
    files.extend(GUEST.iter().map(|(path, text)| File {
        path: format!("{GUEST_DIR}/{path}"),
        text: text.to_string(),
    }));
    files
}

/// Writes `files` under `dir`, which must not exist or be an empty directory. Writes into a
/// temporary sibling directory first and renames it into place, so a failure leaves nothing
/// half-written.
fn write_project(dir: &Path, files: &[File]) -> anyhow::Result<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                anyhow::bail!(
                    "{} already exists and is not empty: choose another NAME or --dir",
                    dir.display()
                );
            }
            fs::remove_dir(dir).with_context(|| format!("cannot replace {}", dir.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = parent.join(format!(
        ".{}.new-{}",
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = files
        .iter()
        .try_for_each(|file| write_file(&tmp.join(&file.path), &file.text))
        .and_then(|()| {
            fs::rename(&tmp, dir).with_context(|| format!("cannot create {}", dir.display()))
        });
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::File::create(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_guest_source_file_is_carried() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("guest/src");
        let mut on_disk: Vec<String> = fs::read_dir(&src)
            .unwrap()
            .map(|e| format!("src/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        on_disk.sort();
        let mut carried: Vec<String> = GUEST
            .iter()
            .map(|(p, _)| p.to_string())
            .filter(|p| p.starts_with("src/"))
            .collect();
        carried.sort();
        assert_eq!(
            carried, on_disk,
            "packager/src/new.rs GUEST must list every file"
        );
    }

    #[test]
    fn names_that_cannot_be_crates_are_refused() {
        for bad in ["", "Fraud", "9lives", "a b", "a/b", "../x", "é"] {
            assert!(parse_name(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_name("fraud-score_2").unwrap(), "fraud-score_2");
    }

    #[test]
    fn no_placeholder_is_left_unfilled() {
        for no_std in [false, true] {
            // The guest crate is copied as it is (its docs may well contain `{{`).
            let filled = project("fraud-score", no_std)
                .into_iter()
                .filter(|f| !f.path.starts_with(GUEST_DIR));
            for file in filled {
                assert!(
                    !file.text.contains("{{"),
                    "{} keeps a placeholder",
                    file.path
                );
            }
        }
    }

    #[test]
    fn the_no_std_project_takes_the_guest_allocator_and_the_std_one_does_not() {
        let manifest = |no_std| {
            project("x", no_std)
                .into_iter()
                .find(|f| f.path == "Cargo.toml")
                .unwrap()
                .text
        };
        assert!(manifest(true).contains("features = [\"no-std\"]"));
        assert!(!manifest(false).contains("no-std"));
    }

    #[test]
    fn an_existing_non_empty_directory_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("algo");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("keep.txt"), "mine").unwrap();
        let err = write_project(&dir, &project("algo", false)).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "a temporary directory was left behind");
        assert_eq!(fs::read_to_string(dir.join("keep.txt")).unwrap(), "mine");
    }
}
