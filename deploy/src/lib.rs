//! Checks of what `deploy/` ships: the OCI images (`deploy/image.sh`) and the
//! Kubernetes manifests (`deploy/k8s`). The checks are the tests in `tests/`;
//! this library only runs the outside tools they need, and fails loudly,
//! naming the tool, when one is missing.

#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]

use std::path::PathBuf;
use std::process::Command;

/// The repository's root folder.
pub fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Runs `cmd` and returns its stdout; panics with its stderr if it cannot
/// start or fails. `install` says how to get the tool, for the panic message:
/// the tests that need a tool must fail without it, never pass.
pub fn run(cmd: &mut Command, install: &str) -> String {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): {install}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `deploy/k8s` rendered by `kubectl kustomize`: every object, as YAML.
pub fn render() -> String {
    run(
        Command::new("kubectl")
            .arg("kustomize")
            .arg(repo().join("deploy/k8s")),
        "kubectl is not installed (Debian: apt-get install kubernetes-client; .ci/run does)",
    )
}

/// What `kubernetes-validate --strict` says of `yaml` (written to a temp
/// file named after `name`); panics if the tool is missing or the objects are
/// invalid, so that a test without the tool fails rather than passes.
pub fn validate_kubernetes(name: &str, yaml: &str) -> String {
    let file = std::env::temp_dir().join(format!("lab-{name}-{}.yaml", std::process::id()));
    std::fs::write(&file, yaml).expect("write the rendered manifests");
    let out = run(
        Command::new("kubernetes-validate")
            .arg("--strict")
            .arg("--quiet")
            .arg(&file),
        "kubernetes-validate is not installed (pip install kubernetes-validate; .ci/run does)",
    );
    let _ = std::fs::remove_file(&file);
    out
}
