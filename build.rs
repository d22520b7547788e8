//! Build script: compiles the scenario files into the binary (so it runs
//! from any folder), and tells the tests whether a Redis was named for
//! them, so the Redis tests show as ignored, not as passed, without one.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=scenarios");
    println!("cargo::rerun-if-env-changed=PARCEL_HUB_TEST_REDIS");
    println!("cargo::rustc-check-cfg=cfg(redis_tests)");
    let redis = std::env::var("PARCEL_HUB_TEST_REDIS").unwrap_or_default();
    if !redis.trim().is_empty() {
        println!("cargo::rustc-cfg=redis_tests");
    }

    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dir = manifest.join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the scenarios folder is readable")
        .map(|entry| entry.expect("a readable entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut out = String::from(
        "/// The scenario files of `scenarios/`, compiled in: (file name, text).\n\
         pub(crate) const BUILT_IN: &[(&str, &str)] = &[\n",
    );
    for path in files {
        let name = path.file_name().expect("a file name").to_string_lossy();
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a String");
    }
    out.push_str("];\n");
    let target =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("scenarios.rs");
    std::fs::write(target, out).expect("OUT_DIR is writable");
}
