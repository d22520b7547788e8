//! The layers of `src/lib.rs`'s "Layout", held by the test suite: a
//! top-level module may use only the modules of lower layers. The bottom
//! is the domain and the wire contract, then the store, the state, the
//! operations, the Socket.IO and HTTP adapters, the wiring, and the
//! command line on top; the load generator is used by the command line
//! alone, so the server never depends on it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module and its layer; a module may use lower layers only.
const LAYERS: &[(&str, u8)] = &[
    ("domain", 0),
    ("protocol", 1),
    ("rooms", 2),
    ("client", 2),
    ("output", 2),
    ("telemetry", 2),
    ("metrics", 2),
    ("store", 3),
    ("activity", 4),
    ("config", 5),
    ("state", 6),
    ("ops", 7),
    ("cluster", 7),
    ("upkeep", 8),
    ("namespaces", 8),
    ("scenario", 9),
    ("web", 10),
    ("app", 11),
    ("bench", 12),
    ("cli", 13),
];

/// The top-level modules `text` names as `crate::<module>` (in `use crate::{a, b}` too).
fn uses(text: &str, modules: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let group = rest
            .strip_prefix('{')
            .map(|g| g.split('}').next().unwrap_or(""));
        let names: Vec<&str> = match group {
            Some(group) => group
                .split(',')
                .map(|part| part.trim().split("::").next().unwrap_or("").trim())
                .collect(),
            None => vec![
                rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or(""),
            ],
        };
        for name in names {
            if modules.contains(name) {
                found.insert(name.to_owned());
            }
        }
    }
    found
}

/// Which top-level module each file of `src/` belongs to, and what it uses.
fn edges(src: &Path, modules: &BTreeSet<&str>) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let top = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            if top == "lib" || top == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // A module's own unit tests may reach anywhere.
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            let used = uses(code, modules);
            edges
                .entry(top.clone())
                .or_default()
                .extend(used.into_iter().filter(|m| *m != top));
        }
    }
    edges
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let rank: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let modules: BTreeSet<&str> = rank.keys().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = edges(&src, &modules);
    let unknown: Vec<&String> = edges
        .keys()
        .filter(|m| !rank.contains_key(m.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "add these modules to LAYERS (and to the Layout of src/lib.rs): {unknown:?}"
    );
    let mut wrong = Vec::new();
    for (from, targets) in &edges {
        for to in targets {
            if rank[to.as_str()] >= rank[from.as_str()] {
                wrong.push(format!(
                    "{from} (layer {}) uses {to} (layer {})",
                    rank[from.as_str()],
                    rank[to.as_str()]
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "upward or sideways uses:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_layer_check_sees_grouped_and_plain_uses() {
    let modules: BTreeSet<&str> = ["app", "store", "domain"].into_iter().collect();
    let text = "use crate::{store::Store, domain};\nlet x = crate::app::App::build();";
    let found = uses(text, &modules);
    assert_eq!(
        found,
        ["app", "domain", "store"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    );
}
