//! Reading the config file like an untrusted file, with what says which save
//! of it was read.
//!
//! The path may lead anywhere a user (or a mistake) points it: a FIFO that
//! blocks an `open` for good, `/dev/zero` that never ends, a directory, a log
//! file of gigabytes. [`read`] refuses anything but a regular file before and
//! after opening it, and never reads past [`MAX_CONFIG_BYTES`]. Each read
//! comes with a [`Stamp`] taken from the same open file, so a watcher can
//! tell a new save from the version it already has without reading again.

use std::fmt;
use std::path::Path;
use std::time::SystemTime;

/// One read of the config file: its bytes, and what says which save they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The file's whole content.
    pub bytes: Vec<u8>,
    /// Its modification time and identity when it was read.
    pub stamp: Stamp,
}

/// What changes when a file is saved, even with the same bytes: its
/// modification time, its length, or which file the path leads to (a rename
/// over it, or a swapped symlink as Kubernetes does for a ConfigMap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Last modification; `None` where the platform does not say.
    pub modified: Option<SystemTime>,
    /// Device and inode of the file read (0, 0 off Unix).
    pub file: (u64, u64),
    /// Length in bytes.
    pub len: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let file = {
            use std::os::unix::fs::MetadataExt as _;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let file = (0, 0);
        Self {
            modified: meta.modified().ok(),
            file,
            len: meta.len(),
        }
    }

    /// Whether two stamps surely name the same version of the file: only
    /// when the platform gives a modification time to compare.
    pub fn same_version(&self, other: &Stamp) -> bool {
        self.modified.is_some() && self == other
    }
}

/// The largest config file read: the shipped TOML is a few KiB, so 1 MiB is
/// generous, and it bounds what a mistaken path (a log file, a link to
/// `/dev/zero`) can make a service allocate.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Why the config file could not be read; its `Display` is the reason in words.
#[derive(Debug)]
pub enum ReadError {
    /// Nothing at the path.
    Missing,
    /// Something other than a regular file: a FIFO would block the read for
    /// good, a device (`/dev/zero`) never ends, a directory has no text.
    NotRegular(&'static str),
    /// Over [`MAX_CONFIG_BYTES`]: its length.
    TooLarge(u64),
    /// Any other failure of the system (permissions, out of descriptors).
    Io(std::io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("no such file"),
            Self::NotRegular(what) => write!(
                f,
                "is a {what}, not a regular file; a config must be a regular file \
                 (a symlink to one is fine)"
            ),
            Self::TooLarge(len) => write!(
                f,
                "is {len} bytes, over the {} KiB a config file may be",
                MAX_CONFIG_BYTES / 1024
            ),
            Self::Io(e) if out_of_descriptors(e) => write!(
                f,
                "cannot open it: the process is out of file descriptors ({e}); \
                 it is read again once descriptors free up"
            ),
            Self::Io(e) => write!(f, "cannot read: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            Self::Missing
        } else {
            Self::Io(e)
        }
    }
}

/// EMFILE or ENFILE: the read fails for the process's sake, not the file's.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        matches!(Errno::from_io_error(e), Some(Errno::MFILE | Errno::NFILE))
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// What a path leads to, in words, when it is not a regular file.
fn not_regular(kind: std::fs::FileType) -> Option<&'static str> {
    if kind.is_file() {
        return None;
    }
    if kind.is_dir() {
        return Some("directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if kind.is_fifo() {
            return Some("FIFO (named pipe)");
        }
        if kind.is_char_device() || kind.is_block_device() {
            return Some("device");
        }
        if kind.is_socket() {
            return Some("socket");
        }
    }
    Some("special file")
}

/// Opens the path afresh (following symlinks as they are now) and reads
/// the file once, with its stamp taken from the same open file.
///
/// The file is read like an untrusted one: anything but a regular file
/// is refused before it is opened (a FIFO would block `open` for good),
/// and checked again on the open file (on Unix it is opened
/// non-blocking, so a FIFO swapped in meanwhile cannot block either);
/// more than [`MAX_CONFIG_BYTES`] is refused, and never read past.
pub fn read(path: &Path) -> Result<Snapshot, ReadError> {
    use std::io::Read as _;
    if let Some(what) = not_regular(std::fs::metadata(path)?.file_type()) {
        return Err(ReadError::NotRegular(what));
    }
    let mut options = std::fs::File::options();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if let Some(what) = not_regular(meta.file_type()) {
        return Err(ReadError::NotRegular(what));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ReadError::TooLarge(meta.len()));
    }
    let stamp = Stamp::of(&meta);
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // A file that grows while read is still cut at the cap.
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    Ok(Snapshot { bytes, stamp })
}

/// The stamp of what the path leads to now (following symlinks), without
/// opening it: a watcher compares it with the last version read and does
/// not read an unchanged file again.
pub fn stamp(path: &Path) -> Result<Stamp, ReadError> {
    Ok(Stamp::of(&std::fs::metadata(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing there, a directory and a file over the cap are each refused
    /// with their own reason; a small regular file is read with its stamp.
    #[test]
    fn refuses_what_is_not_a_small_regular_file() {
        let dir = std::env::temp_dir().join(format!("config-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(
            read(&dir.join("nope.toml")),
            Err(ReadError::Missing)
        ));
        assert!(matches!(
            read(&dir),
            Err(ReadError::NotRegular("directory"))
        ));
        let big = dir.join("big.toml");
        std::fs::write(&big, vec![b'#'; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        let err = read(&big).unwrap_err();
        assert!(matches!(err, ReadError::TooLarge(_)), "{err}");
        assert!(err.to_string().contains("over the 1024 KiB"), "{err}");
        let small = dir.join("small.toml");
        std::fs::write(&small, "[server]\n").unwrap();
        let snapshot = read(&small).unwrap();
        assert_eq!(snapshot.bytes, b"[server]\n");
        assert_eq!(snapshot.stamp, stamp(&small).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
