//! `just --list` reads as a menu: every recipe with its one-line comment and
//! its plain cargo (or bash) equivalent, and no `default` among them.

use std::path::Path;
use std::process::Command;

/// The recipes `just --list` shows are the justfile's public ones, each with
/// its whole comment ending in the plain command in parentheses; the
/// default recipe (itself a `just --list`) is not listed.
#[test]
#[ignore = "needs just (PyPI's rust-just); .ci/run installs it and runs it"]
fn just_list_is_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("just")
        .arg("--list")
        .current_dir(&root)
        .output()
        .expect("just is installed (python3 -m pip install rust-just; .ci/run does)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    let recipes: Vec<&str> = listed.lines().skip(1).collect();

    let justfile = std::fs::read_to_string(root.join("justfile")).unwrap();
    let public: Vec<&str> = justfile
        .lines()
        .enumerate()
        // A recipe's first line: `name args:`; not a setting (`set x := ...`),
        // an assignment, a comment, an attribute or a recipe's body.
        .filter(|(_, l)| {
            !l.starts_with([' ', '#', '['])
                && !l.starts_with("set ")
                && !l.contains(":=")
                && l.contains(':')
        })
        .filter(|(i, _)| {
            let above = i.checked_sub(1).and_then(|j| justfile.lines().nth(j));
            above.is_none_or(|p| p != "[private]")
        })
        .map(|(_, l)| l.split([' ', ':']).next().unwrap())
        .collect();
    assert_eq!(recipes.len(), public.len(), "{listed}");
    for name in public {
        let line = recipes
            .iter()
            .find(|r| r.trim_start().split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{listed}"));
        let (_, comment) = line
            .split_once(" # ")
            .unwrap_or_else(|| panic!("no comment: {line}"));
        assert!(
            comment.trim_end().ends_with(')'),
            "no plain command in: {line}"
        );
    }
    assert!(
        !recipes
            .iter()
            .any(|r| r.trim_start().starts_with("default")),
        "{listed}"
    );
}
