//! Reading an experiment file, and what to say when there is none: a bare
//! name (`course`, as `just experiment course` takes it) or a near miss
//! gets a "did you mean", and the shipped experiments are listed.

use std::path::Path;

use super::parse::parse;
use super::{Experiment, Scale};

/// Reads and checks `path`; `scale` multiplies every phase's duration.
pub fn load(path: &Path, scale: Scale) -> anyhow::Result<Experiment> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!("{}", not_found(path, Path::new(EXPERIMENTS)))
        }
        Err(e) => anyhow::bail!("cannot read experiment file {}: {e}", path.display()),
    };
    parse(&text, scale).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))
}

/// Where the shipped experiments are, relative to the repository's root.
const EXPERIMENTS: &str = "experiments";

/// What to say when `path` does not exist: a bare name (`course`, the
/// `just experiment course` habit) or a near miss gets "did you mean", and
/// the files in `folder` are listed.
fn not_found(path: &Path, folder: &Path) -> String {
    let mut known: Vec<String> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter_map(|p| Some(p.file_stem()?.to_string_lossy().to_string()))
        .collect();
    known.sort();
    let asked = path
        .file_stem()
        .map_or(String::new(), |s| s.to_string_lossy().to_lowercase());
    let near = known.iter().find(|k| **k == asked).or_else(|| {
        known.iter().find(|k| {
            k.starts_with(&asked)
                || asked.starts_with(k.as_str())
                || strsim::levenshtein(k, &asked) <= 2
        })
    });
    let file = |name: &str| folder.join(format!("{name}.toml")).display().to_string();
    let hint = match near {
        Some(name) => format!(
            "; did you mean `{}`? (`cargo lab experiment {}`, or `just experiment {name}`)",
            file(name),
            file(name)
        ),
        None => String::new(),
    };
    let listed = if known.is_empty() {
        format!(
            " (no experiment files in {} here: run it from the repository's root)",
            folder.display()
        )
    } else {
        let files: Vec<String> = known.iter().map(|k| file(k)).collect();
        format!(". The experiments: {}", files.join(", "))
    };
    format!("no experiment file {}{hint}{listed}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bare name, as `just experiment course` takes it, gets the file it
    /// meant; a near miss too; a name that matches nothing gets the list.
    #[test]
    fn a_bare_name_gets_a_did_you_mean() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["course", "breaker"] {
            std::fs::write(dir.path().join(format!("{name}.toml")), "").unwrap();
        }
        let folder = dir.path();
        let said = not_found(Path::new("course"), folder);
        let meant = folder.join("course.toml").display().to_string();
        assert!(
            said.starts_with("no experiment file course; did you mean `"),
            "{said}"
        );
        assert!(said.contains(&format!("did you mean `{meant}`?")), "{said}");
        let said = not_found(Path::new("experiments/brea.toml"), folder);
        assert!(said.contains("breaker.toml`?"), "{said}");
        let said = not_found(Path::new("experiments/corse.toml"), folder);
        assert!(said.contains(&format!("did you mean `{meant}`?")), "{said}");
        let said = not_found(Path::new("nothing"), folder);
        assert!(!said.contains("did you mean"), "{said}");
        assert!(said.contains(&meant), "the list: {said}");
    }
}
