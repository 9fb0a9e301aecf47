//! No import circle between the modules of any crate in the workspace.
//!
//! A circle (`a` uses `b`, `b` uses `a`, directly or through others) means
//! neither module can be read, tested or moved without the other: the two
//! are one job written in two files. This test builds each crate's module
//! tree the way rustc does (from `lib.rs`, `main.rs`, `src/bin/*.rs` and each
//! integration test's root, following `mod x;` to `x.rs` or `x/mod.rs`),
//! draws an edge from a file to every module of the same crate it names
//! (`use crate::…`, `super::…`, `self::…`, or a child module by its name),
//! and fails naming each circle with the line behind every edge.
//!
//! The rule is deliberately plain, so that a reader can check it by eye:
//! - A path counts where it stands, `use` or not; comments do not count.
//! - A path names the deepest module it passes through: `crate::a::b::Item`
//!   is an edge to `a::b`. A path through a re-export (`crate::Item` that
//!   `lib.rs` re-exports from `a`) is an edge to the module that re-exports
//!   it; import from the module that defines an item instead.
//! - A file's own inline modules (`mod tests { … }`) are part of the file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// One module backed by a file.
struct Module {
    file: PathBuf,
    /// Path from the crate root: empty for the root.
    path: Vec<String>,
    /// Child modules declared in this file with `mod x;`.
    children: BTreeSet<String>,
}

/// One crate: its file modules, by module path.
struct Crate {
    root: PathBuf,
    modules: BTreeMap<Vec<String>, Module>,
}

/// An edge from one module to another, with the line that makes it.
#[derive(Clone)]
struct Edge {
    to: Vec<String>,
    line: usize,
    text: String,
}

#[test]
fn no_module_of_any_crate_imports_in_a_circle() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut circles = Vec::new();
    let mut crates = 0;
    for root in crate_roots(&workspace) {
        let krate = load_crate(&root);
        crates += 1;
        for (set, circle) in find_circles(&krate) {
            let members: Vec<String> = set.iter().map(|m| name(m)).collect();
            let mut text = describe(&workspace, &krate, &circle);
            if set.len() + 1 > circle.len() {
                text += &format!(
                    "  (all of these use each other in circles: {})\n",
                    members.join(", ")
                );
            }
            circles.push(text);
        }
    }
    assert!(
        crates >= 6,
        "found only {crates} crate roots under {}",
        workspace.display()
    );
    assert!(
        circles.is_empty(),
        "import circles between modules (each must be cut: move the shared item to a \
         module both can use, or next to its one user):\n\n{}",
        circles.join("\n")
    );
}

/// The circle that the workspace had before it was cut, found in a copy:
/// the check must see a circle through `super::` and one through `crate::`.
#[test]
fn a_circle_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(src.join("fault")).unwrap();
    fs::write(src.join("lib.rs"), "mod config;\nmod trace;\nmod fault;\n").unwrap();
    fs::write(src.join("config.rs"), "use crate::trace::TraceSettings;\n").unwrap();
    fs::write(
        src.join("trace.rs"),
        "// use crate::fault; is a comment\nfn f() -> crate::config::Invalid { todo!() }\n",
    )
    .unwrap();
    fs::write(
        src.join("fault/mod.rs"),
        "mod plan;\nmod draw;\npub use plan::Plan;\n",
    )
    .unwrap();
    fs::write(
        src.join("fault/plan.rs"),
        "use super::{draw::Draw, Other};\n",
    )
    .unwrap();
    fs::write(src.join("fault/draw.rs"), "mod tests { use super::*; }\n").unwrap();
    let krate = load_crate(&src.join("lib.rs"));
    let circles: Vec<String> = find_circles(&krate)
        .iter()
        .map(|(_, c)| c.iter().map(|m| name(m)).collect::<Vec<_>>().join(" -> "))
        .collect();
    assert_eq!(
        circles,
        ["config -> trace -> config", "fault -> fault::plan -> fault"]
    );
}

/// Every crate root in the workspace: libraries, binaries and test crates.
fn crate_roots(workspace: &Path) -> Vec<PathBuf> {
    let manifest = fs::read_to_string(workspace.join("Cargo.toml")).expect("workspace Cargo.toml");
    let members = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("a members line in the workspace Cargo.toml");
    let mut roots = Vec::new();
    for member in members.split('"').skip(1).step_by(2) {
        let dir = workspace.join(member);
        for file in ["src/lib.rs", "src/main.rs"] {
            if dir.join(file).is_file() {
                roots.push(dir.join(file));
            }
        }
        for sub in ["src/bin", "tests", "benches", "examples"] {
            let Ok(entries) = fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "rs") {
                    roots.push(path);
                } else if path.join("main.rs").is_file() {
                    roots.push(path.join("main.rs"));
                }
            }
        }
    }
    roots.sort();
    roots
}

/// The crate whose root file is `root`, following `mod x;` declarations.
fn load_crate(root: &Path) -> Crate {
    let mut krate = Crate {
        root: root.to_owned(),
        modules: BTreeMap::new(),
    };
    let mut todo = vec![(root.to_owned(), Vec::new())];
    while let Some((file, path)) = todo.pop() {
        let text = code_only(&fs::read_to_string(&file).unwrap_or_default());
        let children = declared_children(&text);
        // Where a file's children live: beside a root or `mod.rs`, else in a
        // folder named after the file.
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let dir = if path.is_empty() || stem == "mod" {
            file.parent().unwrap().to_owned()
        } else {
            file.parent().unwrap().join(&stem)
        };
        for child in &children {
            let mut child_path = path.clone();
            child_path.push(child.clone());
            let flat = dir.join(format!("{child}.rs"));
            let nested = dir.join(child).join("mod.rs");
            if flat.is_file() {
                todo.push((flat, child_path));
            } else if nested.is_file() {
                todo.push((nested, child_path));
            }
        }
        krate.modules.insert(
            path.clone(),
            Module {
                file,
                path,
                children,
            },
        );
    }
    krate
}

/// `mod x;` declarations (not inline `mod x { … }`).
fn declared_children(text: &str) -> BTreeSet<String> {
    let mut children = BTreeSet::new();
    for statement in text.split(';') {
        let words: Vec<&str> = statement.split_whitespace().collect();
        if let Some(at) = words.iter().rposition(|w| *w == "mod") {
            if at + 2 == words.len() && !words[at + 1].contains(['{', '}']) {
                children.insert(words[at + 1].to_owned());
            }
        }
    }
    children
}

/// The text as code only: comments removed, the contents of string and
/// character literals blanked (newlines kept, so line numbers stay true),
/// so that neither a path in a string nor a `{` in a literal is counted.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                out.push(blank(chars[i]));
                i += 1;
            }
            i += 2;
        } else if c == 'r' && matches!(next, Some('"' | '#')) && !ident_before(&chars, i) {
            // A raw string: r"…", r#"…"#, with as many #s as it opened with.
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let hashes = j - i - 1;
            out.push_str("r\"");
            i = j + 1;
            while i < chars.len() {
                if chars[i] == '"' && (0..hashes).all(|k| chars.get(i + 1 + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
            out.push('"');
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if let Some(&c) = chars.get(i) {
                    out.push(blank(c));
                }
                i += 1;
            }
            out.push('"');
            i += 1;
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A character literal ('x', '\n', '{'); a lifetime ('a) is code.
            out.push_str("' '");
            i += if next == Some('\\') { 2 } else { 1 };
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// The modules of `krate` that `module` names, each with its line. Inside
/// an inline module (`mod tests { … }`) `super` first leaves that module.
fn edges(krate: &Crate, module: &Module) -> Vec<Edge> {
    let source = fs::read_to_string(&module.file).unwrap_or_default();
    let text = code_only(&source);
    let originals: Vec<&str> = source.lines().collect();
    let mut edges = Vec::new();
    let mut depth = 0usize;
    // The brace depth inside each inline module this line is in.
    let mut inline: Vec<usize> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for path in paths_in(line) {
            if let Some(target) = resolve(krate, module, inline.len(), &path) {
                if target != module.path {
                    let text = originals.get(index).unwrap_or(&"").trim().to_owned();
                    edges.push(Edge {
                        to: target,
                        line: index + 1,
                        text,
                    });
                }
            }
        }
        // `mod name {` on this line: its first `{` opens an inline module.
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut opens_inline = words.windows(2).any(|w| {
            w[0] == "mod" && (w[1].ends_with('{') || line.contains(&format!("{} {{", w[1])))
        });
        for c in line.chars() {
            match c {
                '{' => {
                    depth += 1;
                    if opens_inline {
                        inline.push(depth);
                        opens_inline = false;
                    }
                }
                '}' => {
                    if inline.last() == Some(&depth) {
                        inline.pop();
                    }
                    depth = depth.saturating_sub(1);
                }
                _ => {}
            }
        }
    }
    edges
}

/// Every path in a line, with `use` groups expanded: `use a::{b, c::d}`
/// gives `a::b` and `a::c::d`. A group spanning lines is read from the line
/// its path starts on (rustfmt keeps `use super::{` and its prefix together),
/// so only the prefix counts there: enough to see the module it names.
fn paths_in(line: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let starts = (c.is_alphabetic() || c == '_')
            && (i == 0
                || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_' || bytes[i - 1] == ':'));
        if !starts {
            i += 1;
            continue;
        }
        let (found, end) = path_at(&bytes, i, Vec::new());
        paths.extend(found.into_iter().filter(|p| p.len() > 1));
        i = end.max(i + 1);
    }
    paths
}

/// The path (or expanded group) that starts at `bytes[i]`, after `prefix`.
fn path_at(bytes: &[char], mut i: usize, prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
    let mut segments = prefix;
    loop {
        let start = i;
        while i < bytes.len() && (bytes[i].is_alphanumeric() || bytes[i] == '_') {
            i += 1;
        }
        if i > start {
            segments.push(bytes[start..i].iter().collect());
        }
        if bytes.get(i) == Some(&':') && bytes.get(i + 1) == Some(&':') {
            i += 2;
            if bytes.get(i) == Some(&'{') {
                let mut all = vec![segments.clone()];
                i += 1;
                loop {
                    while bytes.get(i).is_some_and(|c| c.is_whitespace() || *c == ',') {
                        i += 1;
                    }
                    match bytes.get(i) {
                        None => return (all, i),
                        Some('}') => return (all, i + 1),
                        _ => {
                            let (inner, end) = path_at(bytes, i, segments.clone());
                            all.extend(inner);
                            // Skip `as x`, `*` and anything else up to the next item.
                            i = end.max(i + 1);
                            while bytes.get(i).is_some_and(|c| *c != ',' && *c != '}') {
                                if bytes[i] == '{' {
                                    break;
                                }
                                i += 1;
                            }
                        }
                    }
                }
            }
            continue;
        }
        return (vec![segments], i);
    }
}

/// The file module of `krate` that `path`, written in `from`, names.
fn resolve(krate: &Crate, from: &Module, inline: usize, path: &[String]) -> Option<Vec<String>> {
    let mut absolute: Vec<String> = match path[0].as_str() {
        "crate" => Vec::new(),
        "self" => from.path.clone(),
        "super" => {
            let mut base = from.path.clone();
            let mut rest = path;
            // `super` inside an inline module first leaves it, staying in the file.
            for _ in 0..inline {
                if rest.first().is_some_and(|s| s == "super") {
                    rest = &rest[1..];
                }
            }
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            return deepest(krate, &base);
        }
        child if from.children.contains(child) => {
            let mut base = from.path.clone();
            base.push(child.to_owned());
            base.extend(path[1..].iter().cloned());
            return deepest(krate, &base);
        }
        _ => return None,
    };
    absolute.extend(path[1..].iter().cloned());
    deepest(krate, &absolute)
}

/// The longest prefix of `path` that is a file module of `krate`.
fn deepest(krate: &Crate, path: &[String]) -> Option<Vec<String>> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| krate.modules.contains_key(p))
}

/// Each strongly connected set of modules with more than one member, as a
/// cycle through it (Tarjan's algorithm, then a walk inside the set).
type Circle = (BTreeSet<Vec<String>>, Vec<Vec<String>>);

fn find_circles(krate: &Crate) -> Vec<Circle> {
    let graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = krate
        .modules
        .values()
        .map(|m| {
            (
                m.path.clone(),
                edges(krate, m).into_iter().map(|e| e.to).collect(),
            )
        })
        .collect();
    let mut circles = Vec::new();
    for set in strongly_connected(&graph)
        .into_iter()
        .filter(|s| s.len() > 1)
    {
        // Walk from the first member, staying inside the set, until a
        // module repeats: that loop is a circle a reader can follow.
        let start = set.iter().next().unwrap().clone();
        let mut walk = vec![start.clone()];
        let mut at = start;
        loop {
            let next = graph[&at]
                .iter()
                .find(|n| set.contains(*n))
                .unwrap()
                .clone();
            if let Some(pos) = walk.iter().position(|m| *m == next) {
                let mut cycle = walk[pos..].to_vec();
                cycle.push(next);
                circles.push((set.clone(), cycle));
                break;
            }
            walk.push(next.clone());
            at = next;
        }
    }
    circles
}

fn strongly_connected(
    graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
) -> Vec<BTreeSet<Vec<String>>> {
    struct Tarjan<'g> {
        graph: &'g BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'g Vec<String>, usize>,
        low: BTreeMap<&'g Vec<String>, usize>,
        stack: Vec<&'g Vec<String>>,
        on_stack: BTreeSet<&'g Vec<String>>,
        sets: Vec<BTreeSet<Vec<String>>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g Vec<String>) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in &self.graph[v] {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut set = BTreeSet::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    set.insert(w.clone());
                    if w == v {
                        break;
                    }
                }
                self.sets.push(set);
            }
        }
    }
    let mut tarjan = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        sets: Vec::new(),
    };
    for v in graph.keys() {
        if !tarjan.index.contains_key(v) {
            tarjan.visit(v);
        }
    }
    tarjan.sets
}

fn name(path: &[String]) -> String {
    if path.is_empty() {
        "crate".to_owned()
    } else {
        path.join("::")
    }
}

/// A circle as a reader wants it: each step with the file and line behind it.
fn describe(workspace: &Path, krate: &Crate, circle: &[Vec<String>]) -> String {
    let shown = |p: &Path| p.strip_prefix(workspace).unwrap_or(p).display().to_string();
    let mut text = format!("in the crate of {}, one circle:\n", shown(&krate.root));
    for pair in circle.windows(2) {
        let from = &krate.modules[&pair[0]];
        let edge = edges(krate, from)
            .into_iter()
            .find(|e| e.to == pair[1])
            .unwrap();
        text += &format!(
            "  {} -> {}  ({}:{}: {})\n",
            name(&pair[0]),
            name(&pair[1]),
            shown(&from.file),
            edge.line,
            edge.text
        );
    }
    text
}
