//! The rule that keeps a student's work: the report ends with a fingerprint
//! of its text, and a later run replaces the file only while that
//! fingerprint still matches (nobody edited it); otherwise it refuses, before
//! starting anything, and says how to write elsewhere or overwrite.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// How the report ends: the fingerprint a later run checks before replacing it.
const FINGERPRINT: &str = "<!-- cargo lab demo fingerprint ";

/// The text with its fingerprint line appended.
pub fn sealed(text: &str) -> String {
    format!("{text}\n{FINGERPRINT}{:016x} -->\n", fingerprint(text))
}

/// FNV-1a over the text: enough to see an edit (this is not about attackers).
fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether `existing` is a report this demo wrote and nobody changed since.
fn unedited(existing: &str) -> bool {
    let Some(at) = existing.rfind(FINGERPRINT) else {
        return false;
    };
    let (text, seal) = existing.split_at(at);
    let Some(text) = text.strip_suffix('\n') else {
        return false;
    };
    seal.trim_end() == format!("{FINGERPRINT}{:016x} -->", fingerprint(text))
}

/// Err, with what to do instead, when `report` exists and was edited (or is
/// not one of the demo's reports) and `overwrite` is not set.
pub fn check_replaceable(report: &Path, overwrite: bool) -> anyhow::Result<()> {
    if overwrite {
        return Ok(());
    }
    let existing = match std::fs::read_to_string(report) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => bail!("cannot read {} to check it: {e}", report.display()),
    };
    if unedited(&existing) {
        return Ok(());
    }
    let free_name = (2..)
        .map(|n| {
            let stem = report
                .file_stem()
                .map_or("lab-report".into(), |s| s.to_string_lossy().to_string());
            report.with_file_name(format!("{stem}-{n}.md"))
        })
        .find(|p| !p.exists())
        .unwrap_or_else(|| PathBuf::from("lab-report-new.md"));
    bail!(
        "{} has changes of yours (or was not written by `cargo lab demo`), so the demo \
         will not replace it. Write the new report elsewhere: `cargo lab demo --report {}`; \
         or replace this one, losing those changes: `cargo lab demo --overwrite`",
        report.display(),
        free_name.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report the demo wrote may be replaced; one edited by hand may not.
    #[test]
    fn only_an_unedited_report_is_replaceable() {
        let written = sealed("# Lab report\n\nfacts\n");
        assert!(unedited(&written));
        let edited = written.replace("facts\n", "facts\n\nMy own paragraph.\n");
        assert!(!unedited(&edited));
        assert!(!unedited("# A file the demo did not write\n"));
    }
}
