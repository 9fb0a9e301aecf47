//! Where the demo writes and how the report names files: the services' own
//! configs in `target/lab-demo/` (never the student's `config/`), and every
//! path in the report shown relative to the project folder, as a student
//! knows it, rather than as the absolute paths the services log.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The report names files as a student knows them: the services ran in
/// folders of their own, so their lines carry absolute paths (the demo's
/// config folder, the report given with `--report`); here they are shown
/// relative to the project folder (`target/lab-demo/service-a.toml`), and the
/// report says so. A path outside the project stays as it is.
pub fn shorten_paths(report: &str, work: &Path) -> String {
    let mut text = report.to_owned();
    let mut roots: Vec<(String, String)> = Vec::new();
    if let Some(project) = target_root().parent() {
        // A folder that cannot be resolved is matched as it is written.
        let project = std::fs::canonicalize(project).unwrap_or_else(|_| project.to_owned());
        if let Ok(rel) = work.strip_prefix(&project) {
            roots.push((work.display().to_string(), rel.display().to_string()));
        }
        for project in [
            project.clone(),
            target_root().parent().unwrap_or(&project).to_owned(),
        ] {
            let mut prefix = project.display().to_string();
            prefix.push(std::path::MAIN_SEPARATOR);
            roots.push((prefix, String::new()));
        }
    }
    for (from, to) in roots {
        if !from.is_empty() && from != std::path::MAIN_SEPARATOR.to_string() {
            text = text.replace(&from, &to);
        }
    }
    text
}

/// Where the demo's own configs go: `target/lab-demo` beside the lab's
/// build, as an absolute path (the services run in folders of their own).
pub fn work_dir(asked: Option<&Path>) -> anyhow::Result<PathBuf> {
    let dir = match asked {
        Some(d) => d.to_owned(),
        None => target_root().join("lab-demo"),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the demo's folder {}", dir.display()))?;
    // It exists (just created): resolving it fails only on an odd file
    // system, where the path as given still works.
    Ok(std::fs::canonicalize(&dir).unwrap_or(dir))
}

/// `target/`: two folders above the lab's executable (`target/debug/lab`);
/// `target` in the working folder if the executable cannot be found, as
/// `cargo lab` runs from the project folder.
fn target_root() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"))
}
