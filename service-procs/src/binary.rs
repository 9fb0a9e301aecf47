//! Where a built binary of this workspace is: beside the running executable
//! (the lab, in `target/<profile>/`), or one folder up from a test
//! executable in `target/<profile>/deps/`. Finding it is a `Result`: a
//! binary that is not built is the most common first failure, and its
//! message says which `cargo build` makes it.

use std::path::PathBuf;

use crate::error::Error;

/// `target/<profile>/`: the folder of this workspace's built binaries, as
/// seen from the running executable.
pub fn target_dir() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("finding this program's own executable", e))?;
    let Some(here) = exe.parent() else {
        return Err(Error::io(
            format!("finding the folder of {}", exe.display()),
            std::io::ErrorKind::NotFound.into(),
        ));
    };
    // A test executable sits in `deps/`; the binaries one folder up.
    Ok(match here.parent() {
        Some(up) if here.ends_with("deps") => up.to_path_buf(),
        _ => here.to_path_buf(),
    })
}

/// The path of the built binary of package `name` (`name.exe` on Windows);
/// [`Error::NotBuilt`], with the `cargo build` that makes it, if absent.
pub fn binary(name: &str) -> Result<PathBuf, Error> {
    let path = target_dir()?.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        return Err(Error::NotBuilt {
            path,
            package: name.to_owned(),
        });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary that is not built is an error that says how to build it,
    /// with the platform's file name.
    #[test]
    fn a_missing_binary_says_how_to_build_it() {
        let e = binary("no-such-service").unwrap_err().to_string();
        let file = format!("no-such-service{}", std::env::consts::EXE_SUFFIX);
        assert!(e.starts_with("no built binary at "), "{e}");
        assert!(e.contains(&file), "{e}");
        assert!(e.ends_with(": run `cargo build -p no-such-service`"), "{e}");
    }
}
