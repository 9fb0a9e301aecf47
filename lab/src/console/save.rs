//! Saving a file as a careful editor does: the new text written to a
//! temporary file beside it and renamed over it, so that a reader (A,
//! checking its file every 250 ms) never sees half of it; through a symlink
//! to its target, the link kept; with the file's permissions kept. Nothing
//! is written when nothing changed.

use std::path::Path;

use anyhow::Context as _;

/// Writes `new` over `path` (which held `old`) through a temporary file, as
/// an editor does: through a symlink to its target (the link stays a link),
/// and with the file's permissions kept (Unix modes; a private 600 file is
/// never readable by others, not even the temporary one).
pub fn save(path: &Path, old: &str, new: &str) -> anyhow::Result<()> {
    if new == old && path.exists() {
        return Ok(());
    }
    let path = &through_links(path)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{}.console-save", name.unwrap_or_default()));
    let kept = std::fs::metadata(path).ok().map(|m| m.permissions());
    let written = write_new(&tmp, new, kept.as_ref())
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("renaming {} over {}", tmp.display(), path.display()))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Links a symlinked config may pass through before it is refused: a
/// loop of links must end in an error, not hang the console.
const MAX_LINKS: usize = 40;

/// `path`, or the file its symlinks lead to (which may not exist yet).
fn through_links(path: &Path) -> anyhow::Result<std::path::PathBuf> {
    let mut at = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let to = std::fs::read_link(&at)
                    .with_context(|| format!("reading the link {}", at.display()))?;
                at = match at.parent() {
                    Some(dir) => dir.join(to),
                    None => to,
                };
            }
            _ => return Ok(at),
        }
    }
    anyhow::bail!(
        "{} passes through more than {MAX_LINKS} symlinks (a loop?): not written",
        path.display()
    )
}

/// Creates `tmp` afresh with `text`, with `kept`'s permissions from the
/// start where the platform has modes.
fn write_new(tmp: &Path, text: &str, kept: Option<&std::fs::Permissions>) -> std::io::Result<()> {
    use std::io::Write as _;
    // A temporary file left by a crash is replaced.
    let _ = std::fs::remove_file(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if let Some(kept) = kept {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        // Never wider than the file's mode while the text is in it.
        options.mode(kept.mode() & 0o777);
    }
    let mut file = options.open(tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    // The umask may have narrowed the mode at creation: set it exactly.
    #[cfg(unix)]
    if let Some(kept) = kept {
        std::fs::set_permissions(tmp, kept.clone())?;
    }
    // Elsewhere the only permission is read-only, which would stop the
    // rename over the file: nothing is copied.
    #[cfg(not(unix))]
    let _ = kept;
    Ok(())
}
