//! The server's module boundaries, checked on its own source (a test, run by CI with the rest):
//!
//! - nothing but `main.rs` and `lib.rs` uses `http`: the HTTP layer sits on top, and the write
//!   path, the store, the handover tools and the rest never reach up into it;
//! - the top-level modules use each other without a cycle, and so do the modules side by side
//!   inside each of them (a module's `mod.rs` and its children may use each other: that is one
//!   module split in files).
//!
//! A use is any `crate::a::b` or `super::b` path in the code (comments and strings aside), so a
//! fully qualified call counts as much as a `use` line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module by its path from the crate root (`["store", "ledger"]`); the root itself is empty.
type Module = Vec<String>;

/// Every source file of the crate with the module it is.
fn modules(src: &Path) -> Vec<(Module, PathBuf)> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("the source directory is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let relative = path.strip_prefix(src).expect("under src");
                let mut module: Module =
                    relative.with_extension("").iter().map(|part| part.to_string_lossy().into_owned()).collect();
                if matches!(module.last().map(String::as_str), Some("mod" | "main" | "lib")) {
                    module.pop();
                }
                files.push((module, path));
            }
        }
    }
    files.sort();
    files
}

/// The code of a file without comments, string literals and `#[cfg(test)]` modules' doc text:
/// only what the compiler resolves.
fn code_of(text: &str) -> String {
    let mut code = String::with_capacity(text.len());
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut in_string = false;
        let mut escaped = false;
        for character in line.chars() {
            match (in_string, character) {
                (true, '\\') if !escaped => escaped = true,
                (true, '"') if !escaped => in_string = false,
                (true, _) => escaped = false,
                (false, '"') => in_string = true,
                (false, _) => code.push(character),
            }
        }
        code.push('\n');
    }
    code
}

/// The paths a file names: each `crate::…` and `super::…` (with `super::{a, b}` groups split),
/// resolved against `module` to an absolute module path (the longest that is a module).
fn uses(code: &str, module: &Module, known: &BTreeSet<Module>) -> BTreeSet<Module> {
    let mut found = BTreeSet::new();
    let identifier = |text: &str| -> Vec<String> {
        text.split("::")
            .map(|segment| segment.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>())
            .take_while(|segment| !segment.is_empty())
            .collect()
    };
    let resolve = |mut absolute: Module, found: &mut BTreeSet<Module>| {
        while !absolute.is_empty() && !known.contains(&absolute) {
            absolute.pop();
        }
        if !absolute.is_empty() {
            found.insert(absolute);
        }
    };
    for (index, _) in code.match_indices("crate::") {
        let before = code[..index].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `wallet_crate::`
        }
        resolve(identifier(&code[index + "crate::".len()..]), &mut found);
    }
    for (index, _) in code.match_indices("super::") {
        if code[..index].ends_with("super::") {
            continue; // counted from the first `super::` of a `super::super::` path
        }
        let mut rest = &code[index..];
        let mut base = module.clone();
        while let Some(after) = rest.strip_prefix("super::") {
            base.pop();
            rest = after;
        }
        let names: Vec<Module> = match rest.strip_prefix('{') {
            Some(group) => group
                .split('}')
                .next()
                .unwrap_or("")
                .split(',')
                .map(|item| identifier(item.trim()))
                .filter(|path| !path.is_empty())
                .collect(),
            None => vec![identifier(rest)],
        };
        for name in names {
            resolve(base.iter().cloned().chain(name).collect(), &mut found);
        }
    }
    found
}

/// The crate's module graph: each module to the modules it uses.
fn graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let files = modules(src);
    let known: BTreeSet<Module> = files.iter().map(|(module, _)| module.clone()).collect();
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, path) in &files {
        let text = std::fs::read_to_string(path).expect("a source file is readable");
        graph.entry(module.clone()).or_default().extend(uses(&code_of(&text), module, &known));
    }
    graph
}

/// The edges between siblings: for each pair of different children of one parent, whether
/// anything in the first (or below it) uses anything in the second (or below it).
fn sibling_edges(graph: &BTreeMap<Module, BTreeSet<Module>>) -> BTreeSet<(Module, Module)> {
    let mut edges = BTreeSet::new();
    for (from, targets) in graph {
        for to in targets {
            let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
            if common < from.len() && common < to.len() {
                edges.insert((from[..=common].to_vec(), to[..=common].to_vec()));
            }
        }
    }
    edges
}

/// A cycle in `edges`, as the modules along it, if there is one.
fn cycle(edges: &BTreeSet<(Module, Module)>) -> Option<Vec<Module>> {
    let mut next: BTreeMap<&Module, Vec<&Module>> = BTreeMap::new();
    for (from, to) in edges {
        next.entry(from).or_default().push(to);
    }
    // Depth-first search with colours: on the path (grey) or done (black).
    let mut done: BTreeSet<&Module> = BTreeSet::new();
    for start in next.keys() {
        let mut path: Vec<(&Module, usize)> = vec![(start, 0)];
        while let Some((node, child)) = path.last().copied() {
            let children = next.get(node).map(Vec::as_slice).unwrap_or_default();
            if done.contains(node) || child >= children.len() {
                done.insert(node);
                path.pop();
                continue;
            }
            path.last_mut().expect("not empty").1 += 1;
            let target = children[child];
            if let Some(position) = path.iter().position(|(on_path, _)| *on_path == target) {
                return Some(path[position..].iter().map(|(module, _)| (*module).clone()).collect());
            }
            if !done.contains(target) {
                path.push((target, 0));
            }
        }
    }
    None
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn nothing_but_the_entry_points_uses_http() {
    let graph = graph(&src());
    let offenders: Vec<String> = graph
        .iter()
        .filter(|(module, _)| !module.is_empty() && module[0] != "http")
        .filter(|(_, targets)| targets.iter().any(|target| target[0] == "http"))
        .map(|(module, _)| module.join("::"))
        .collect();
    assert!(offenders.is_empty(), "these modules use http, which only main.rs and lib.rs may: {offenders:?}");
}

#[test]
fn modules_use_each_other_without_a_cycle() {
    let edges = sibling_edges(&graph(&src()));
    if let Some(cycle) = cycle(&edges) {
        let shown: Vec<String> = cycle.iter().map(|module| module.join("::")).collect();
        panic!("these modules use each other in a circle: {} -> (back to the first)", shown.join(" -> "));
    }
}

#[test]
fn the_checker_sees_uses_and_cycles() {
    let known: BTreeSet<Module> =
        [vec!["store"], vec!["store", "ledger"], vec!["http"], vec!["http", "openapi"], vec!["writer"]]
            .into_iter()
            .map(|module| module.into_iter().map(str::to_owned).collect())
            .collect();
    let module: Module = vec!["http".into(), "admin".into()];
    let code = code_of(
        "use super::{openapi::Thing, authenticate};\n// crate::writer in a comment\nlet x = \"crate::writer\";\n\
         crate::store::ledger::millis(1); super::super::writer::run();",
    );
    let found: Vec<String> = uses(&code, &module, &known).iter().map(|module| module.join("::")).collect();
    assert_eq!(found, ["http", "http::openapi", "store::ledger", "writer"]);

    let edge = |a: &[&str], b: &[&str]| -> (Module, Module) {
        (a.iter().map(|s| s.to_string()).collect(), b.iter().map(|s| s.to_string()).collect())
    };
    let acyclic: BTreeSet<_> = [edge(&["a"], &["b"]), edge(&["b"], &["c"]), edge(&["a"], &["c"])].into();
    assert_eq!(cycle(&acyclic), None);
    let cyclic: BTreeSet<_> = [edge(&["a"], &["b"]), edge(&["b"], &["c"]), edge(&["c"], &["a"])].into();
    assert_eq!(cycle(&cyclic).map(|cycle| cycle.len()), Some(3));
}
