//! The README and the manual in `docs/` hold together: every relative link in
//! `README.md` and `docs/*.md` names a file that exists, every `#anchor` names
//! a heading of its page by GitHub's rules, every page of `docs/` is on the
//! README's map, and the README stays a front door. Links to other sites are
//! not followed (no network); a link must be relative, since a clone of the
//! project has nothing outside it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The README is a front door: what it is, the quick start, the course's
/// steps and a map; past this it is becoming the manual again.
const README_MAX_LINES: usize = 300;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// `README.md` and every `docs/*.md`, as paths inside the repository.
fn pages() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    let mut out = vec![repo().join("README.md")];
    out.extend(docs);
    out
}

/// The lines of a page outside fenced code blocks, with their numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        match fence {
            Some(f) if t.starts_with(f) => fence = None,
            Some(_) => {}
            None if t.starts_with("```") => fence = Some("```"),
            None if t.starts_with("~~~") => fence = Some("~~~"),
            None => out.push((i + 1, line)),
        }
    }
    out
}

/// A line with its inline code spans removed: a `[x](y)` inside backticks is
/// code, not a link.
fn without_code(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join("")
}

/// `[text](target)` becomes `text`, as GitHub renders a heading before
/// making its anchor.
fn link_text(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let Some(close) = rest[at..].find(')') else {
            break;
        };
        out.push_str(&rest[..at].replacen('[', "", 1));
        rest = &rest[at + close + 1..];
    }
    out.push_str(rest);
    out
}

/// GitHub's anchor for a heading: lower case, every character but letters,
/// digits, `-`, `_` and spaces dropped, spaces made `-`.
fn slug(heading: &str) -> String {
    link_text(heading)
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The anchors of a page's headings; a repeated one gets `-1`, `-2`, ... as
/// on GitHub.
fn anchors(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (_, line) in prose(text) {
        let hashes = line.len() - line.trim_start_matches('#').len();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(line[hashes..].trim());
        let n = seen.entry(base.clone()).or_insert(0);
        out.push(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// Every link target in a page's prose, with its line number.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose(text) {
        let line = without_code(line);
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            out.push((n, rest[..end].trim().to_owned()));
            rest = &rest[end..];
        }
    }
    out
}

/// What is wrong with one link of `page`, if anything.
fn broken(page: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    if target.starts_with('/') {
        return Some("not relative: a clone of the project has nothing there".into());
    }
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let file = if path.is_empty() {
        page.to_owned()
    } else {
        page.parent().unwrap().join(path)
    };
    if !file.exists() {
        return Some(format!("{} does not exist", file.display()));
    }
    if anchor.is_empty() {
        return None;
    }
    let text = std::fs::read_to_string(&file).ok()?;
    let known = anchors(&text);
    (!known.iter().any(|a| a == anchor)).then(|| {
        format!(
            "no heading #{anchor} in {} (its anchors: {})",
            file.display(),
            known.join(", ")
        )
    })
}

/// Every relative link and `#anchor` of the README and `docs/` resolves.
#[test]
fn every_link_resolves() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for (line, target) in links(&text) {
            checked += 1;
            if let Some(why) = broken(&page, &target) {
                problems.push(format!("{}:{line}: ({target}): {why}", page.display()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
    assert!(
        checked >= 50,
        "only {checked} links found: is the parser blind?"
    );
}

/// The README's map of `docs/` names every page there, and the README is
/// still a front door.
#[test]
fn the_readme_maps_every_page_and_stays_short() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let targets: Vec<String> = links(&readme).into_iter().map(|(_, t)| t).collect();
    for page in pages().iter().skip(1) {
        let name = format!("docs/{}", page.file_name().unwrap().to_string_lossy());
        assert!(
            targets.iter().any(|t| t == &name),
            "the README's map of docs/ has no line for {name}"
        );
    }
    let lines = readme.lines().count();
    assert!(
        lines < README_MAX_LINES,
        "README.md has {lines} lines, {README_MAX_LINES} at most: move the detail to a page of docs/"
    );
}

/// The slug and link rules on the cases the pages use.
#[test]
fn anchors_follow_githubs_rules() {
    assert_eq!(
        slug("Breaking A: `[fault]`, the `x-fault-*` headers"),
        "breaking-a-fault-the-x-fault--headers"
    );
    assert_eq!(
        slug("Docker Desktop: `compose.yaml`"),
        "docker-desktop-composeyaml"
    );
    assert_eq!(slug("B's resilience: KINDs"), "bs-resilience-kinds");
    assert_eq!(slug("See [the page](x.md) now"), "see-the-page-now");
    assert_eq!(
        anchors("# A\n```\n# not a heading\n```\n## A\n#nope\n"),
        ["a", "a-1"]
    );
    assert_eq!(
        links("[a](x.md) `[b](code.md)` ![c](d.png#e)\n```\n[f](g.md)\n```\n"),
        [(1, "x.md".to_owned()), (1, "d.png#e".to_owned())]
    );
}

/// The source files `docs/architecture.md`'s map names, as paths inside the
/// repository: under a line `CRATE/src/`, each indented line's first word is
/// a file (`x.rs`) or a folder (`x/`) at the depth its indent says (two
/// spaces a level).
fn mapped_sources(map: &str) -> Vec<String> {
    let block = map
        .split("## Where things are")
        .nth(1)
        .and_then(|rest| rest.split("```").nth(1))
        .expect("docs/architecture.md has a map in a code block under \"Where things are\"");
    let mut out = Vec::new();
    let mut root: Option<String> = None;
    let mut folders: Vec<String> = Vec::new();
    for line in block.lines() {
        let Some(word) = line.split_whitespace().next() else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        if indent == 0 {
            root = word.ends_with("/src/").then(|| word.to_owned());
            folders.clear();
            continue;
        }
        let Some(root) = &root else { continue };
        let depth = indent / 2 - 1;
        folders.truncate(depth);
        if let Some(folder) = word.strip_suffix('/') {
            folders.push(folder.to_owned());
        } else if word.ends_with(".rs") {
            out.push(format!(
                "{root}{}{word}",
                folders.iter().map(|f| format!("{f}/")).collect::<String>()
            ));
        }
    }
    out.sort();
    out
}

/// Every `.rs` file under each workspace member's `src/`.
fn sources() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let members = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .unwrap();
    let mut files = Vec::new();
    for member in members.split('"').skip(1).step_by(2) {
        walk(&repo().join(member).join("src"), &mut files);
    }
    let mut out: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(repo())
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    out.sort();
    out
}

/// docs/architecture.md maps every source file there is, and no file that is
/// gone: a newcomer finds each file's job there, and the map cannot go stale.
#[test]
fn the_architecture_map_names_every_source_file() {
    let map = std::fs::read_to_string(repo().join("docs/architecture.md")).unwrap();
    let mapped = mapped_sources(&map);
    let actual = sources();
    let missing: Vec<&String> = actual.iter().filter(|f| !mapped.contains(f)).collect();
    let gone: Vec<&String> = mapped.iter().filter(|f| !actual.contains(f)).collect();
    assert!(
        missing.is_empty() && gone.is_empty(),
        "docs/architecture.md's map (\"Where things are\") is out of date:\n  \
         not on the map: {missing:?}\n  on the map but not in the tree: {gone:?}"
    );
}
