//! README.md promises two commands that work on a fresh machine; these tests keep it honest.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The first line of the first `sh` code block after `heading`.
fn command_after(readme: &str, heading: &str) -> String {
    let section = &readme[readme.find(heading).unwrap_or_else(|| panic!("README has no {heading:?}"))..];
    let block = &section[section.find("```sh\n").expect("a sh code block") + 6..];
    block.lines().next().unwrap().to_string()
}

#[test]
fn ci_runs_exactly_the_readme_test_command() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let command = command_after(&readme, "## Run the tests");
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let last = ci.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert_eq!(last.trim(), command, ".ci/run must end with the README's test command");
    assert!(ci.contains("export MKIMAGE_REQUIRE_TOOLS=1"));
}

/// The first `rust` code block of a Markdown file.
fn rust_block(markdown: &str) -> &str {
    let start = markdown.find("```rust\n").expect("a rust code block") + 8;
    &markdown[start..start + markdown[start..].find("```").unwrap()]
}

#[test]
fn library_example_is_the_one_the_crate_tests() {
    // The library crate's README is its doctest; the repository README shows the same code.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let crate_readme = std::fs::read_to_string(root().join("crates/mkimage-core/README.md")).unwrap();
    assert_eq!(rust_block(&readme), rust_block(&crate_readme));
}

#[test]
fn readme_demo_builds_the_bundled_kernel() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let command = command_after(&readme, "## Try it on the bundled demo kernel");
    // Run the same builds the README's command runs, with the binary under test, in a
    // scratch copy of the paths it uses.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("fixtures")).unwrap();
    std::fs::copy(root().join("fixtures/hello.elf"), dir.path().join("fixtures/hello.elf")).unwrap();
    let prefix = "cargo run --release --bin unikernel-mkimage -- ";
    let builds: Vec<&str> = command.split(" && ").collect();
    assert_eq!(builds.len(), 2, "{command}");
    for build in builds {
        let args = build.strip_prefix(prefix).unwrap_or_else(|| panic!("unexpected command {build}"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_unikernel-mkimage"))
            .args(args.split_whitespace())
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{build}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(dir.path().join("demo.tar.gz").is_file());
    assert_eq!(std::fs::metadata(dir.path().join("demo.raw")).unwrap().len(), 1 << 30);
}
