//! [`MappedFile`]: a whole input file as bytes, read once without a copy.

use std::ops::Deref;
use std::path::Path;

/// The bytes of a file the packager reads whole (a module to seal, a sealed module to verify):
/// mapped read-only, or read into memory when the file cannot be mapped (empty, a pipe).
///
/// Why a map: the files are megabytes that are only hashed, scanned and written out again;
/// a map serves them from the page cache with no copy and no zeroed buffer to fault in.
pub enum MappedFile {
    /// A read-only private map of the whole file.
    Mapped(memmap2::Mmap),
    /// The file read into memory.
    Read(Vec<u8>),
}

impl MappedFile {
    /// Maps (or reads) the file at `path`.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        Self::from_file(&file)
    }

    /// Maps (or reads) an open file from its start.
    pub fn from_file(file: &std::fs::File) -> std::io::Result<Self> {
        let meta = file.metadata()?;
        if meta.is_file() && meta.len() > 0 {
            // SAFETY: the map is private and read-only. Another process writing to or truncating
            // the file while it is in use can make the bytes change under the reader (a result
            // that matches no single state of the file) or end the process with SIGBUS; a file
            // that others write meanwhile has no answer that outlives the command anyway, so the
            // packager's answers are only about files nobody else writes meanwhile. What `seal`
            // writes is re-opened from its output file, so a module changed while it was sealed
            // is refused, never put in place.
            // Populating the map reads the page cache in with one call instead of one page fault
            // per page.
            if let Ok(map) = unsafe { memmap2::MmapOptions::new().populate().map(file) } {
                return Ok(Self::Mapped(map));
            }
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut &*file, &mut bytes)?;
        Ok(Self::Read(bytes))
    }
}

impl Deref for MappedFile {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Mapped(map) => map,
            Self::Read(bytes) => bytes,
        }
    }
}
