//! The README's pytest fixture ("Put A in front of your own service"), run
//! as written, with pytest, against the real A and a real upstream: the
//! fixture cannot drift from the binary.

use std::process::Command;

use testkit::fake::free_port;
use testkit::upstream::Mirror;

/// The README's first ```python block.
fn fixture() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme
        .find("```python\n")
        .expect("a python block in the README")
        + 10;
    let end = start + readme[start..].find("```").expect("closed block");
    readme[start..end].to_owned()
}

#[test]
#[ignore = "needs python3 with pytest; .ci/run installs pytest"]
fn the_readme_fixture_runs() {
    let up = Mirror::start();
    let dir = tempfile::tempdir().unwrap();
    // The README's own example test, made to check what it says.
    let test = fixture().replace(
        "    # ... call your client against `base`: it must retry twice, then succeed\n",
        r#"    import urllib.error
    codes = []
    for _ in range(3):
        try:
            codes.append(urllib.request.urlopen(base + "/orders", timeout=5).status)
        except urllib.error.HTTPError as e:
            codes.append(e.code)
    assert codes == [503, 503, 200]
    assert faults.get()["source"] == "api"

def test_cleared_between_tests(a_proxy, faults):
    base, _ = a_proxy
    assert urllib.request.urlopen(base + "/orders", timeout=5).status == 200
    assert faults.get()["faults"]["fail_first"] == 0
"#,
    );
    assert!(
        test.contains("codes == [503, 503, 200]"),
        "the README's example test moved"
    );
    let file = dir.path().join("test_readme_fixture.py");
    std::fs::write(&file, test).unwrap();
    let out = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(&file)
        .env("SERVICE_A", env!("CARGO_BIN_EXE_service-a"))
        .env("UPSTREAM", &up.url)
        .env("A_PORT", free_port().to_string())
        .env("A_ADMIN_PORT", free_port().to_string())
        .current_dir(dir.path())
        .output()
        .expect("python3 runs (apt-get install python3; pip install pytest)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("2 passed"), "{text}");
    assert!(
        up.requests() >= 2,
        "the upstream saw {} requests",
        up.requests()
    );
}
