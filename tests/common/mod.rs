//! Helpers shared by the end-to-end tests: running the built binaries, finding the external
//! programs used as independent checkers, making test kernels.
//!
//! A test that needs an external program calls [`tool`]. When the program is missing it prints a
//! `SKIPPED` line straight to the terminal (bypassing the test harness's output capture) and the
//! test returns early, unless `MKIMAGE_REQUIRE_TOOLS=1`, in which case the test fails. CI sets
//! that variable, so a missing tool can never make a test pass silently there.

#![allow(dead_code, unreachable_pub)]

pub mod fixtures;
pub mod gcp;
pub mod qemu;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `unikernel-mkimage` binary under test.
pub fn mkimage() -> Command {
    Command::new(env!("CARGO_BIN_EXE_unikernel-mkimage"))
}

/// Directories searched for tools besides `PATH` (Debian puts fsck.fat and sfdisk in sbin, which
/// is not on an unprivileged user's PATH).
const EXTRA_TOOL_DIRS: [&str; 2] = ["/usr/sbin", "/sbin"];

/// Whether missing tools must fail tests instead of skipping them.
pub fn tools_required() -> bool {
    std::env::var("MKIMAGE_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Finds `name`, or reports it missing (see the module documentation). `package` is the Debian
/// package that provides it.
pub fn tool(test: &str, name: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(EXTRA_TOOL_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        if tools_required() {
            panic!("{test}: required tool `{name}` not found (install the Debian package `{package}`)");
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {test}: `{name}` not found (install the Debian package `{package}`; set MKIMAGE_REQUIRE_TOOLS=1 to make this a failure)"
        );
    }
    found
}

/// Runs a command to completion, returning its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command and panics, showing its output, unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[allow(unused_imports)]
pub use mkimage_core::testkit::random_bytes;

/// Writes a small valid Multiboot kernel with a payload of `len` bytes to `dir/name`.
pub fn write_kernel(dir: &Path, name: &str, len: usize) -> PathBuf {
    let payload: Vec<u8> = (0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let path = dir.join(name);
    std::fs::write(&path, mkimage_core::testkit::multiboot_kernel(&payload)).unwrap();
    path
}

/// Copies `len` bytes at `offset` of `src` into a new sparse file `dst` (for tools that cannot
/// address a partition inside a disk image).
pub fn extract(src: &Path, offset: u64, len: u64, dst: &Path) {
    use std::io::{Read, Seek, SeekFrom};
    let mut input = std::fs::File::open(src).unwrap();
    let mut output = std::fs::File::create(dst).unwrap();
    output.set_len(len).unwrap();
    input.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        input.read_exact(&mut buf[..n]).unwrap();
        if buf[..n].iter().any(|&b| b != 0) {
            output.seek(SeekFrom::Start(done)).unwrap();
            output.write_all(&buf[..n]).unwrap();
        }
        done += n as u64;
    }
}

/// Whether two files have the same contents (compared in chunks, so gigabyte images are fine).
pub fn same_contents(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (mut fa, mut fb) = (std::fs::File::open(a).unwrap(), std::fs::File::open(b).unwrap());
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba).unwrap();
        if n == 0 {
            return true;
        }
        fb.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}

/// Bytes actually allocated to a file on disk.
#[cfg(unix)]
pub fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}
