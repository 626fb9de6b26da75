//! Hostile inputs and dangerous outputs, end to end: outputs that are not regular files
//! (FIFOs, devices, sockets, symbolic links) are written into or refused but never replaced;
//! inspect refuses a FIFO at once, reads standard input, reads concatenated gzip members,
//! reports trailing data, answers archives that claim impossible sizes within seconds, and
//! escapes what it prints; leftovers of killed builds are recognised and removed. Devices and
//! FIFOs are made in temporary directories, never in the real /dev.

mod common;

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn fixture(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(file)
}

fn dropin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_solo5-virtio-mkimage"))
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Root-only steps: skipped with a line when not root, a failure when tools are required.
fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(!tools_required(), "{test}: needs root (device nodes, loop devices)");
    eprintln!("SKIPPED: {test}: needs root");
    false
}

/// Reads everything written into the FIFO at `path` on another thread.
fn drain_fifo(path: &Path) -> std::thread::JoinHandle<Vec<u8>> {
    let path = path.to_owned();
    std::thread::spawn(move || std::fs::read(path).unwrap())
}

#[test]
fn a_fifo_output_is_streamed_into_never_replaced() {
    let Some(mkfifo) = tool("a_fifo_output_is_streamed_into_never_replaced", "mkfifo", "coreutils") else { return };
    let dir = tempfile::tempdir().unwrap();
    let kernel = fixture("hello.elf");
    let reference = dir.path().join("reference.tar.gz");
    run_ok(mkimage().args(["build", "-q"]).arg(&kernel).arg("-o").arg(&reference));
    let fifo = dir.path().join("pipe.tar.gz");
    run_ok(Command::new(&mkfifo).arg(&fifo));
    for force in [false, true] {
        let reader = drain_fifo(&fifo);
        let mut cmd = mkimage();
        cmd.args(["build", "-q"]).arg(&kernel).arg("-o").arg(&fifo);
        if force {
            cmd.arg("--force");
        }
        run_ok(&mut cmd);
        assert_eq!(reader.join().unwrap(), std::fs::read(&reference).unwrap(), "force: {force}");
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO is still a FIFO");
    }
    // The drop-in streams into it as well.
    let reader = drain_fifo(&fifo);
    run_ok(dropin().args(["-f", "tar"]).arg(&fifo).arg(&kernel));
    assert_eq!(&reader.join().unwrap()[..2], &[0x1f, 0x8b]);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    // A raw image streams every byte.
    let reader = drain_fifo(&fifo);
    run_ok(mkimage().args(["build", "-q", "--format", "raw", "--size", "8M"]).arg(&kernel).arg("-o").arg(&fifo));
    let raw = reader.join().unwrap();
    assert_eq!(raw.len(), 8 << 20);
    assert_eq!(&raw[510..512], &[0x55, 0xAA]);
}

#[test]
fn a_character_device_output_is_written_into_never_replaced() {
    let test = "a_character_device_output_is_written_into_never_replaced";
    if !require_root(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let null = dir.path().join("null");
    // A device node like /dev/null (major 1, minor 3), in a temporary directory.
    run_ok(Command::new("mknod").arg(&null).args(["c", "1", "3"]));
    let before = std::fs::metadata(&null).unwrap().rdev();
    let kernel = fixture("hello.elf");
    run_ok(mkimage().args(["build", "-q", "--force"]).arg(&kernel).arg("-o").arg(&null));
    run_ok(mkimage().args(["build", "-q"]).arg(&kernel).arg("-o").arg(&null));
    run_ok(dropin().arg(&null).arg(&kernel));
    let after = std::fs::metadata(&null).unwrap();
    assert!(after.file_type().is_char_device() && after.rdev() == before, "the node is unchanged");
}

#[test]
fn a_block_device_output_is_written_in_place_with_force_only() {
    let test = "a_block_device_output_is_written_in_place_with_force_only";
    if !require_root(test) {
        return;
    }
    let Some(losetup) = tool(test, "losetup", "mount") else { return };
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("backing.img");
    let old = random_bytes(1 << 20, 7);
    let mut f = std::fs::File::create(&backing).unwrap();
    f.set_len(80 << 20).unwrap();
    f.write_all(&old).unwrap();
    drop(f);
    let out = run(Command::new(&losetup).args(["-f", "--show"]).arg(&backing));
    if !out.status.success() {
        assert!(!tools_required(), "{test}: cannot attach a loop device: {}", stderr(&out));
        eprintln!("SKIPPED: {test}: cannot attach a loop device");
        return;
    }
    let loop_dev = stdout(&out).trim().to_string();
    let rdev = std::fs::metadata(&loop_dev).unwrap().rdev();
    let node = dir.path().join("disk");
    let (major, minor) = ((rdev >> 8) & 0xfff, (rdev & 0xff) | ((rdev >> 12) & 0xfff00));
    run_ok(Command::new("mknod").arg(&node).arg("b").arg(major.to_string()).arg(minor.to_string()));
    let kernel = fixture("hello.elf");
    let result = std::panic::catch_unwind(|| {
        // Without --force, and for a tarball, the device is refused and untouched.
        let refused = run(mkimage().args(["build", "--size", "64M"]).arg(&kernel).arg("-o").arg(&node));
        assert_eq!(refused.status.code(), Some(1));
        assert!(stderr(&refused).contains("is a block device") && stderr(&refused).contains("--force"));
        let tar = run(mkimage().args(["build", "--force", "--format", "gce"]).arg(&kernel).arg("-o").arg(&node));
        assert!(stderr(&tar).contains("not a tarball"), "{}", stderr(&tar));
        // A device smaller than the image is refused.
        let big = run(mkimage().args(["build", "--force", "--size", "1G"]).arg(&kernel).arg("-o").arg(&node));
        assert!(stderr(&big).contains("less than the"), "{}", stderr(&big));
        run_ok(mkimage().args(["build", "-q", "--force", "--size", "64M"]).arg(&kernel).arg("-o").arg(&node));
        let reference = dir.path().join("reference.raw");
        run_ok(mkimage().args(["build", "-q", "--size", "64M"]).arg(&kernel).arg("-o").arg(&reference));
        let written = std::fs::read(&backing).unwrap();
        assert_eq!(&written[..64 << 20], &std::fs::read(&reference).unwrap()[..], "the image, every byte");
        assert!(written[64 << 20..].iter().all(|&b| b == 0), "the rest of the device is left as it was");
        assert!(std::fs::metadata(&node).unwrap().file_type().is_block_device());
    });
    run(Command::new(&losetup).arg("-d").arg(&loop_dev));
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn links_are_followed_and_sockets_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let kernel = fixture("hello.elf");
    let target = d.join("target.raw");
    std::fs::write(&target, b"old").unwrap();
    let link = d.join("link.raw");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let refused = run(mkimage().args(["build"]).arg(&kernel).arg("-o").arg(&link));
    assert!(stderr(&refused).contains("already exists"), "{}", stderr(&refused));
    run_ok(mkimage().args(["build", "-q", "--force", "--size", "8M"]).arg(&kernel).arg("-o").arg(&link));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
    assert_eq!(std::fs::metadata(&target).unwrap().len(), 8 << 20, "the file it points to is the image");
    let dangling = d.join("dangling.raw");
    std::os::unix::fs::symlink(d.join("missing/x"), &dangling).unwrap();
    let out = run(mkimage().args(["build", "--force"]).arg(&kernel).arg("-o").arg(&dangling));
    assert!(stderr(&out).contains("symbolic link to a file that does not exist"), "{}", stderr(&out));
    let socket_path = d.join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    let out = run(mkimage().args(["build", "--force"]).arg(&kernel).arg("-o").arg(&socket_path));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("socket"), "{}", stderr(&out));
    assert!(std::fs::metadata(&socket_path).unwrap().file_type().is_socket());
}

#[test]
fn build_writes_to_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = fixture("hello.elf");
    let file = dir.path().join("image.tar.gz");
    run_ok(mkimage().args(["build", "-q"]).arg(&kernel).arg("-o").arg(&file));
    let out = run_ok(mkimage().args(["build", "--format", "gce", "-v"]).arg(&kernel).args(["-o", "-"]));
    assert_eq!(out.stdout, std::fs::read(&file).unwrap(), "the same bytes as a file");
    assert!(stderr(&out).contains("plan:") && stderr(&out).contains("wrote standard output"), "{}", stderr(&out));
}

#[test]
fn inspect_refuses_a_fifo_at_once_and_reads_standard_input() {
    let Some(mkfifo) = tool("inspect_refuses_a_fifo_at_once_and_reads_standard_input", "mkfifo", "coreutils") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    run_ok(Command::new(&mkfifo).arg(&fifo));
    let started = Instant::now();
    let out = run(mkimage().arg("inspect").arg(&fifo));
    assert!(started.elapsed() < Duration::from_secs(10), "no waiting for a writer");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is a FIFO") && stderr(&out).contains("give -"), "{}", stderr(&out));
    for name in ["image.tar.gz", "image.raw"] {
        let image = dir.path().join(name);
        run_ok(mkimage().args(["build", "-q"]).arg(fixture("hello.elf")).arg("-o").arg(&image));
        let out = run(mkimage().args(["inspect", "-", "--json"]).stdin(std::fs::File::open(&image).unwrap()));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(0), "{name}: {report:#}");
        assert_eq!(report["gce_ready"], name.ends_with(".tar.gz"), "{name}");
    }
}

/// gzip-compresses `data` (fast level).
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn inspect_bytes(dir: &Path, name: &str, bytes: &[u8]) -> (Option<i32>, String, String) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let out = run(mkimage().arg("inspect").arg(&path));
    (out.status.code(), stdout(&out), stderr(&out))
}

#[test]
fn concatenated_gzip_members_are_read_and_trailing_data_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let image = d.join("image.tar.gz");
    run_ok(mkimage().args(["build", "-q"]).arg(fixture("hello.elf")).arg("-o").arg(&image));
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(std::fs::File::open(&image).unwrap()), &mut tar)
        .unwrap();
    let (head, tail) = tar.split_at(tar.len() / 2);
    let mut two = gzip(head);
    two.extend(gzip(tail));
    let (code, text, err) = inspect_bytes(d, "two.tar.gz", &two);
    assert_eq!(code, Some(0), "{text}{err}");
    assert!(text.contains("2 gzip members") && text.contains("GCE ready: yes"), "{text}");
    let mut trailing = std::fs::read(&image).unwrap();
    trailing.extend_from_slice(b"GARBAGE!");
    let (code, text, _) = inspect_bytes(d, "trailing.tar.gz", &trailing);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("8 bytes after the gzip stream that are not gzip"), "{text}");
    assert!(text.contains("GCE ready: no"), "{text}");
}

/// An old-GNU header block for `disk.raw`: `kind` `'0'` (regular, `size` bytes of data) or
/// `'S'` (sparse, one map entry of `size` bytes at 0, real size `real`).
fn header(kind: u8, size: u64, real: u64) -> Vec<u8> {
    let mut block = tar::Header::new_gnu();
    let h = block.as_gnu_mut().unwrap();
    h.as_header_mut().set_path("disk.raw").unwrap();
    h.as_header_mut().set_size(size);
    h.as_header_mut().set_entry_type(tar::EntryType::new(kind));
    if kind == b'S' {
        h.set_real_size(real);
        h.sparse[0].set_offset(0);
        h.sparse[0].set_length(size);
    }
    h.as_header_mut().set_cksum();
    block.as_bytes().to_vec()
}

#[test]
fn impossible_sizes_are_answered_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A bomb: 64 MiB of zeros (about 64 KiB compressed) under a header claiming 2 TiB.
    let mut bomb = header(b'0', 2 << 40, 0);
    bomb.resize(bomb.len() + (64 << 20), 0);
    // 8 GiB of zeros that the file could hold: the answer is known from the first sector.
    let mut zeros = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    zeros.write_all(&header(b'0', 8 << 30, 0)).unwrap();
    let block = vec![0u8; 1 << 20];
    for _ in 0..8 << 10 {
        zeros.write_all(&block).unwrap();
    }
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("bomb", gzip(&bomb), "more than the"),
        ("zeros within the bound", zeros.finish().unwrap(), "no partition table"),
        ("realsize 2^63", gzip(&header(b'S', 512, 1 << 63)), "beyond the 2 TiB limit"),
        ("over 2 TiB", gzip(&header(b'0', (2 << 40) + 512, 0)), "beyond the 2 TiB limit"),
        ("not whole sectors", gzip(&[header(b'S', 512, (1 << 30) + 100), vec![1; 1536]].concat()), "whole number"),
    ];
    for (what, bytes, expect) in cases {
        let started = Instant::now();
        let (code, text, err) = inspect_bytes(d, "case.tar.gz", &bytes);
        assert!(started.elapsed() < Duration::from_secs(5), "{what}: answered in {:?}", started.elapsed());
        assert_eq!(code, Some(2), "{what}: {text}{err}");
        assert!(err.contains(expect), "{what}: {err}");
    }
}

#[test]
fn inspect_memory_is_bounded_by_neither_kernel_nor_disk() {
    let test = "inspect_memory_is_bounded_by_neither_kernel_nor_disk";
    let Some(time) = tool(test, "time", "time") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A 512 MiB ELF64 kernel whose three segments load the same 500 MiB of the file.
    let segment = 500u64 << 20;
    let segments =
        (0..3u64).map(|i| (1, 0x1000, 0x10_0000 + i * (512 << 20), 0x10_0000 + i * (512 << 20), segment, segment));
    let elf = mkimage_core::testkit::Elf {
        entry: 0x10_0000,
        segments: segments.collect(),
        len: 0x1000,
        multiboot: Some((0x200, 0x3)),
        ..mkimage_core::testkit::Elf::new(true)
    };
    let kernel = d.join("big.elf");
    let mut f = std::fs::File::create(&kernel).unwrap();
    f.write_all(&elf.bytes()).unwrap();
    let pattern: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(7) >> 3) as u8).collect();
    for _ in 0..512 - 1 {
        f.write_all(&pattern).unwrap();
    }
    f.write_all(&pattern[..pattern.len() - 0x1000]).unwrap();
    drop(f);
    assert_eq!(std::fs::metadata(&kernel).unwrap().len(), 512 << 20);
    for name in ["big.raw", "big.tar.gz"] {
        let image = d.join(name);
        run_ok(mkimage().args(["build", "-q"]).arg(&kernel).arg("-o").arg(&image));
        let out = run(Command::new(&time)
            .args(["-f", "peak %M KiB"])
            .arg(env!("CARGO_BIN_EXE_unikernel-mkimage"))
            .arg("inspect")
            .arg(&image)
            .stdout(Stdio::null()));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{name}: {err}");
        let peak: u64 = err.lines().find_map(|l| l.strip_prefix("peak ")?.strip_suffix(" KiB")?.parse().ok()).unwrap();
        assert!(peak <= 256 << 10, "{name}: inspect peaked at {peak} KiB");
    }
}

#[test]
fn untrusted_strings_are_escaped_in_text_and_kept_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.raw");
    let hostile = "\x1b]0;owned\x07\x1b[2J";
    let name = "k\u{202e}nib.\u{9b}x";
    run_ok(
        mkimage()
            .args(["build", "-q", "--name", name])
            .arg(fixture("hello.elf"))
            .arg("-o")
            .arg(&image)
            .args(["--", hostile]),
    );
    let out = run_ok(mkimage().arg("inspect").arg(&image));
    let text = stdout(&out);
    for bad in ['\x1b', '\x07', '\u{202e}', '\u{9b}'] {
        assert!(!text.contains(bad), "{bad:?} printed raw:\n{text}");
    }
    assert!(text.contains("\\x1b]0;owned\\x07") && text.contains("\\u{202e}"), "{text}");
    let json = run_ok(mkimage().args(["inspect", "--json"]).arg(&image));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["cmdline"], format!("{name} {hostile}"));
    // An 8.3 name with an escape byte in a crafted image: its long name no longer matches.
    let mut bytes = std::fs::read(&image).unwrap();
    let entry = bytes.windows(11).position(|w| w == b"BUILD-~1TXT").unwrap();
    bytes[entry + 1] = 0x1b;
    std::fs::write(&image, &bytes).unwrap();
    let text = stdout(&run(mkimage().arg("inspect").arg(&image)));
    assert!(!text.contains('\x1b') && text.contains("B\\x1bILD"), "{text}");
    // Error lines are escaped too.
    let out = run(mkimage().args(["build"]).arg(dir.path().join("no\x1bkernel")).args(["-o", "x.raw"]));
    assert!(!stderr(&out).contains('\x1b') && stderr(&out).contains("no\\x1bkernel"), "{}", stderr(&out));
}

#[test]
fn small_edges_of_names_and_inputs() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let kernel = fixture("hello.elf");
    // The build-information file's name in any case is refused with its reason.
    let out = run(mkimage().args(["build", "--name", "Build-Info.TXT"]).arg(&kernel).arg("-o").arg(d.join("a.raw")));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("taken by the build-information file"), "{}", stderr(&out));
    // A kernel file whose name is not UTF-8 builds once it is given a name.
    let odd = d.join(std::ffi::OsStr::from_bytes(b"k\xff.elf"));
    std::fs::copy(&kernel, &odd).unwrap();
    let out = run(mkimage().arg("build").arg(&odd).arg("-o").arg(d.join("b.raw")));
    assert!(stderr(&out).contains("not valid UTF-8") && stderr(&out).contains("--name"), "{}", stderr(&out));
    run_ok(mkimage().args(["build", "-q", "--name", "k.elf"]).arg(&odd).arg("-o").arg(d.join("b.raw")));
    run_ok(dropin().arg(d.join("c.raw")).arg(&odd));
    // An OUTPUT whose name is not UTF-8 still gets the format its extension asks for.
    let out_name = d.join(std::ffi::OsStr::from_bytes(b"o\xfe.tar.gz"));
    run_ok(mkimage().args(["build", "-q"]).arg(&kernel).arg("-o").arg(&out_name));
    assert_eq!(&std::fs::read(&out_name).unwrap()[..2], &[0x1f, 0x8b]);
    // A pseudo-file that reports size 0 is read, and refused for what it is.
    let out = run(mkimage().args(["build", "/proc/self/status", "-o"]).arg(d.join("p.raw")));
    assert!(stderr(&out).contains("no Multiboot header"), "{}", stderr(&out));
}

#[test]
fn leftovers_of_killed_builds_are_named_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    let leftover = |name: &str, mtime| {
        let path = d.join(name);
        let f = std::fs::File::create(&path).unwrap();
        f.set_modified(mtime).unwrap();
        (path, f)
    };
    let (stale, _) = leftover(".unikernel-mkimage-x.raw-AbC123.partial", old);
    let (fresh, _) = leftover(".unikernel-mkimage-y.raw-DeF456.partial", std::time::SystemTime::now());
    let (locked, locked_file) = leftover(".unikernel-mkimage-z.raw-GhI789.partial", old);
    locked_file.lock().unwrap();
    let (other, _) = leftover("somebody-elses.partial", old);
    run_ok(mkimage().args(["build", "-q"]).arg(fixture("hello.elf")).arg("-o").arg(d.join("out.raw")));
    assert!(!stale.exists(), "an old, unlocked leftover of ours is removed");
    assert!(fresh.exists() && locked.exists() && other.exists(), "nothing else is touched");
}
