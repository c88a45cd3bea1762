//! [`SealedOutput`]: the file `packager seal` writes, put in place only when complete.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sealed_format::{Placement, Unsigned};

use crate::mapped::MappedFile;

/// A sealed module being written: a temporary file next to its destination, renamed into
/// place by [`SealedOutput::finish`] once it is complete, signed and synced, and removed if it
/// is dropped before that. A failure at any step leaves no partial output and leaves an
/// existing destination as it was.
///
/// The bytes go in out of order, each written once: the plaintext's code first, at its
/// [`Placement`] while `prepare_with` hashes it; then the manifest; then, once the signed bytes
/// are all in the file, they are hashed from the file and the head (preamble and `signature`
/// section, whose length was known all along) goes in front.
pub struct SealedOutput {
    file: File,
    tmp: PathBuf,
    dest: PathBuf,
    finished: bool,
}

impl SealedOutput {
    /// Creates the temporary file for `dest` in `dest`'s directory (a rename never crosses
    /// file systems).
    pub fn create(dest: &Path) -> anyhow::Result<Self> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let file_name = dest
            .file_name()
            .with_context(|| format!("{} is not a file path", dest.display()))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        // Read access too: the file is mapped back to be signed. A new file only: whatever
        // already has this name (a link another user planted in a shared directory) is left
        // alone, never followed and truncated.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        Ok(Self {
            file,
            tmp,
            dest: dest.to_owned(),
            finished: false,
        })
    }

    /// Writes the plaintext's code at its place in the sealed file; meant to be called by
    /// `prepare_with` while the code is hashed. Returns the offset it wrote at.
    pub fn place_code(&self, placement: Placement<'_>) -> std::io::Result<usize> {
        self.file
            .write_all_at(placement.code, placement.offset as u64)?;
        // While the hash is still running on the other thread: the wait for the disk, if any,
        // costs nothing here.
        self.start_writeback();
        Ok(placement.offset)
    }

    /// Writes the rest of the signed bytes (everything but code already written at
    /// `code_at` by [`SealedOutput::place_code`]), signs them as the file holds them (mapped
    /// back: what is signed is what the file holds, and a module that changed while it was
    /// sealed is refused), writes the head in front, syncs and renames the file into place.
    /// Returns the sealed file's length.
    pub fn finish(
        mut self,
        unsigned: &Unsigned<'_>,
        code_at: Option<usize>,
    ) -> anyhow::Result<u64> {
        let len = self.write_signed(unsigned, code_at)?;
        std::fs::rename(&self.tmp, &self.dest)
            .with_context(|| format!("cannot write {}", self.dest.display()))?;
        self.finished = true;
        Ok(len)
    }

    fn write_signed(&self, unsigned: &Unsigned<'_>, code_at: Option<usize>) -> anyhow::Result<u64> {
        let cannot_write = || format!("cannot write {}", self.tmp.display());
        let head_len = unsigned.head_len();
        let [manifest, code_header, code] = unsigned.signed_parts();
        let mut offset = head_len;
        for part in [manifest, code_header] {
            self.file
                .write_all_at(part, offset as u64)
                .with_context(cannot_write)?;
            offset += part.len();
        }
        if code_at != Some(offset) {
            self.file
                .write_all_at(code, offset as u64)
                .with_context(cannot_write)?;
        }
        let len = (offset + code.len()) as u64;
        self.file.set_len(len).with_context(cannot_write)?;
        self.start_writeback();
        let stored =
            MappedFile::from_file(&self.file).context("cannot read back the sealed module")?;
        let head = unsigned
            .sign_stored(stored.get(head_len..).unwrap_or_default())
            .context(
                "the module changed while it was sealed, or was not written as it should be",
            )?;
        drop(stored);
        // `prepare_with` promised the head's length; trust it only after checking.
        anyhow::ensure!(
            head.len() == head_len,
            "internal error: the signature section is {} bytes, {head_len} were reserved for it",
            head.len(),
        );
        self.file
            .write_all_at(&head, 0)
            .with_context(cannot_write)?;
        self.file.sync_all().with_context(cannot_write)?;
        Ok(len)
    }

    /// Asks the kernel to start writing the file's dirty pages back now rather than at `fsync`
    /// (`sync_file_range` with `SYNC_FILE_RANGE_WRITE` does not wait for the disk, only for
    /// the requests to be queued, and promises nothing: durability still comes from `fsync`),
    /// so the write-back overlaps the hashing. Best effort: an error only loses the head start.
    fn start_writeback(&self) {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a descriptor `self` owns; no memory is passed.
        unsafe {
            libc::sync_file_range(self.file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
}

impl Drop for SealedOutput {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
