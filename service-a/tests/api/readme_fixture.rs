//! The manual's pytest fixture (`docs/proxy.md`, "The control API, for test
//! suites"), run as written, with pytest, against the real A and a real
//! upstream: the fixture cannot drift from the binary.

use std::process::Command;

use testkit::fake::free_port;
use testkit::upstream::Mirror;

/// The page that shows the fixture.
const PAGE: &str = "docs/proxy.md";

/// The first ```python block of [`PAGE`].
fn fixture() -> String {
    let page = std::fs::read_to_string(format!("{}/../{PAGE}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{PAGE}: {e}"));
    let start = page
        .find("```python\n")
        .unwrap_or_else(|| panic!("a python block in {PAGE}"))
        + 10;
    let end = start + page[start..].find("```").expect("closed block");
    page[start..end].to_owned()
}

#[test]
#[ignore = "needs python3 with pytest; .ci/run installs pytest"]
fn the_readme_fixture_runs() {
    let up = Mirror::start();
    let dir = tempfile::tempdir().unwrap();
    // The page's own example test, made to check what it says.
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
        "the example test of {PAGE} moved"
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
