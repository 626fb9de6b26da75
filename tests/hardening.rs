//! Hardening: a generated corpus of malformed kernels and bad requests (each must fail with
//! exit status 1, one line naming the file and the problem, and no output file), faults while
//! writing (unwritable directory, full disk, SIGINT/SIGTERM mid-build, parallel builds), and
//! reproducibility under changed environments.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use mkimage_core::testkit::{self, Elf, multiboot_header};

const KLUDGE: u32 = testkit::KLUDGE_FLAGS;
const ONE_MIB: u32 = 0x10_0000;

/// A file of `len` bytes (filled with a pattern) with `header` at `offset`.
fn with_header(len: usize, offset: usize, header: &[u8]) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    testkit::place(&mut f, offset, header);
    f
}

/// A valid kludge header (the file loaded at 1 MiB from offset 0) requiring a video mode: mode
/// type, width and height, 32 bits per pixel for graphics.
fn video_header(mode_type: u32, width: u32, height: u32) -> Vec<u8> {
    let mut h = multiboot_header(KLUDGE | 0x4, Some([ONE_MIB, ONE_MIB, 0, 0, ONE_MIB + 0x40]));
    let depth = if mode_type == 0 { 32 } else { 0 };
    for field in [mode_type, width, height, depth] {
        h.extend_from_slice(&field.to_le_bytes());
    }
    h
}

/// A kludge kernel: header at offset 0 loading at `load`, with the given other fields.
fn kludge(len: usize, fields: [u32; 5]) -> Vec<u8> {
    with_header(len, 0, &multiboot_header(KLUDGE, Some(fields)))
}

/// An ELF64 kernel loading one segment at 1 MiB + 4 KiB, its Multiboot header (no kludge) at
/// 0x200.
fn elf64() -> Elf {
    Elf {
        entry: 0x100000 + 0x1000,
        segments: vec![(1, 0x1000, 0x100000 + 0x1000, 0x100000 + 0x1000, 0x1000, 0x2000)],
        len: 0x3000,
        multiboot: Some((0x200, 0x3)),
        ..Elf::new(true)
    }
}

/// The same as ELF32.
fn elf32() -> Elf {
    Elf { class: 1, machine: 3, ..elf64() }
}

/// One malformed case: a kernel file (or none: a special path), extra build arguments, the
/// text the error must contain, and whether the message must name the kernel file (else the
/// output).
struct Case {
    class: &'static str,
    kernel: Kernel,
    args: Vec<String>,
    expect: &'static str,
}

impl Case {
    /// The exit status: 2 for options that cannot be honoured whatever the kernel (usage
    /// errors), 1 for everything else.
    fn status(&self) -> i32 {
        let usage = ["GCE size not whole GiB", "size not understood", "size not a sector multiple"];
        if usage.contains(&self.class) { 2 } else { 1 }
    }
}

enum Kernel {
    Bytes(Vec<u8>),
    Directory,
    Fifo,
    Missing,
    Unreadable,
    Huge,
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn case(class: &'static str, bytes: Vec<u8>, expect: &'static str) -> Case {
    Case { class, kernel: Kernel::Bytes(bytes), args: Vec::new(), expect }
}

/// The corpus: every class of bad input the builder must refuse.
fn corpus() -> Vec<Case> {
    let good = kludge(0x2000, [ONE_MIB, ONE_MIB, 0, 0, ONE_MIB + 0x20]);
    let mut v = vec![
        case("empty file", Vec::new(), "is empty"),
        case(
            "plain text",
            b"#!/bin/sh\necho this is not a kernel\n".repeat(300),
            "no Multiboot header in the first 8192 bytes",
        ),
        case(
            "header beyond 8 KiB",
            with_header(0x4000, 9000, &multiboot_header(KLUDGE, Some([0; 5]))),
            "beyond the first 8192 bytes",
        ),
        case(
            "misaligned header",
            with_header(0x1000, 0x102, &multiboot_header(KLUDGE, Some([0; 5]))),
            "not 4-byte aligned",
        ),
        case(
            "bad checksum",
            {
                let mut h = multiboot_header(KLUDGE, Some([ONE_MIB, ONE_MIB, 0, 0, ONE_MIB + 0x20]));
                h[8] ^= 1;
                with_header(0x1000, 0, &h)
            },
            "bad checksum",
        ),
        case(
            "unknown required flag bits",
            with_header(0x1000, 0, &multiboot_header(KLUDGE | 0x80, Some([0; 5]))),
            "undefined required flags",
        ),
        case(
            "graphics mode required from a BIOS-capable image",
            with_header(0x1000, 0, &video_header(0, 1024, 768)),
            "requires a graphics mode (1024 x 768 pixels, 32 bits per pixel) (Multiboot header flag 2), but only \
             the UEFI loader can set a graphics mode, and this image also carries the BIOS stage, which cannot \
             (build it with --firmware uefi)",
        ),
        case(
            "text mode required",
            with_header(0x1000, 0, &video_header(1, 80, 25)),
            "requires EGA text mode (80 x 25 characters) (Multiboot header flag 2), but UEFI firmware has no text \
             mode to give it",
        ),
        case(
            "undefined video mode type",
            with_header(0x1000, 0, &video_header(7, 0, 0)),
            "requires video mode type 7 (Multiboot header flag 2), but that mode type is undefined",
        ),
        case(
            "header cut off by end of file",
            multiboot_header(KLUDGE, Some([ONE_MIB, ONE_MIB, 0, 0, 0]))[..28].to_vec(),
            "is cut off",
        ),
        case(
            "kludge: load address after header",
            kludge(0x2000, [ONE_MIB, ONE_MIB + 0x100, 0, 0, ONE_MIB + 0x100]),
            "is below load_addr",
        ),
        case(
            "kludge: load end before start",
            kludge(0x2000, [ONE_MIB, ONE_MIB, ONE_MIB - 4, 0, ONE_MIB + 0x20]),
            "is not after load_addr",
        ),
        case(
            "kludge: bss end before load end",
            kludge(0x2000, [ONE_MIB, ONE_MIB, ONE_MIB + 0x1000, ONE_MIB + 0x800, ONE_MIB + 0x20]),
            "bss_end_addr",
        ),
        case(
            "kludge: load range past end of file",
            kludge(0x2000, [ONE_MIB, ONE_MIB, ONE_MIB + 0x8000, 0, ONE_MIB + 0x20]),
            "needs file bytes up to offset",
        ),
        case(
            "kludge: load before file start",
            kludge(0x2000, [ONE_MIB + 0x1000, ONE_MIB, 0, 0, ONE_MIB + 0x1020]),
            "before the beginning of the file",
        ),
        case(
            "kludge: entry outside image",
            kludge(0x2000, [ONE_MIB, ONE_MIB, 0, 0, 0x0300_0000]),
            "is not inside the kernel's loaded bytes",
        ),
        case(
            "kludge: entry in bss",
            kludge(0x2000, [ONE_MIB, ONE_MIB, 0, ONE_MIB + 0x8000, ONE_MIB + 0x4000]),
            "is not inside the kernel's loaded bytes",
        ),
        case("kludge: load below 1 MiB", kludge(0x2000, [0x8000, 0x8000, 0, 0, 0x8020]), "below 1 MiB"),
        case(
            "kludge: range wraps past 4 GiB",
            kludge(0x2000, [0xFFFF_F000, 0xFFFF_F000, 0, 0, 0xFFFF_F020]),
            "beyond 4 GiB",
        ),
        case(
            "ELF32 segment wraps past 4 GiB",
            Elf {
                segments: vec![(1, 0x1000, 0xFFFF_F000, 0xFFFF_F000, 0x1000, 0x2000)],
                entry: 0xFFFF_F000,
                ..elf32()
            }
            .bytes(),
            "beyond 4 GiB",
        ),
        case("no kludge and not ELF", with_header(0x1000, 0, &multiboot_header(0x3, None)), "not ELF"),
        case(
            "ELF header truncated",
            {
                let mut f = elf32().bytes();
                f.truncate(44);
                f[32..44].copy_from_slice(&multiboot_header(0x3, None));
                f
            },
            "ELF header is truncated",
        ),
        case(
            "ELF program headers truncated",
            Elf { len: 0x220, phoff: Some(0x210), ..elf32() }.bytes(),
            "lie outside the file",
        ),
        case("ELF absurd e_phnum", Elf { phnum: Some(60_000), ..elf64() }.bytes(), "at most 1024 are accepted"),
        case("ELF absurd e_phoff", Elf { phoff: Some(u64::MAX - 16), ..elf64() }.bytes(), "lie outside the file"),
        case(
            "ELF bad program header size",
            Elf { phentsize: Some(40), ..elf64() }.bytes(),
            "program header entries are 40 bytes",
        ),
        case(
            "ELF p_offset + p_filesz overflows",
            Elf { segments: vec![(1, u64::MAX - 8, 0x101000, 0x101000, 0x100, 0x100)], ..elf64() }.bytes(),
            "lie outside the file",
        ),
        case(
            "ELF p_memsz < p_filesz",
            Elf { segments: vec![(1, 0x1000, 0x101000, 0x101000, 0x1000, 0x800)], ..elf64() }.bytes(),
            "exceeds p_memsz",
        ),
        case(
            "ELF overlapping segments",
            Elf {
                segments: vec![
                    (1, 0x1000, 0x101000, 0x101000, 0x1000, 0x1000),
                    (1, 0x2000, 0x101800, 0x101800, 0x800, 0x800),
                ],
                ..elf64()
            }
            .bytes(),
            "overlap",
        ),
        case(
            "ELF no loadable segment",
            Elf { segments: vec![(6, 0, 0, 0, 0, 0), (4, 0x1000, 0, 0, 0x10, 0x10)], ..elf64() }.bytes(),
            "no loadable segment",
        ),
        case("ELF big-endian", Elf { data: 2, ..elf32() }.bytes(), "not little-endian"),
        case("ELF for another machine", Elf { machine: 40, ..elf32() }.bytes(), "neither i386 (3) nor x86-64 (62)"),
        case("ELF not an executable", Elf { kind: 3, ..elf64() }.bytes(), "not an executable"),
        case("ELF unknown class", Elf { class: 7, ..elf64() }.bytes(), "neither 32-bit"),
        case(
            "ELF entry outside segments",
            Elf { entry: 0x500000, ..elf32() }.bytes(),
            "is not inside the kernel's loaded bytes",
        ),
        case(
            "ELF segment below 1 MiB",
            Elf { segments: vec![(1, 0x1000, 0x9000, 0x9000, 0x100, 0x100)], entry: 0x9000, ..elf32() }.bytes(),
            "below 1 MiB",
        ),
        case(
            "ELF64 segment above 4 GiB",
            Elf { segments: vec![(1, 0x1000, 1 << 32, 1 << 32, 0x100, 0x100)], entry: 1 << 32, ..elf64() }.bytes(),
            "beyond 4 GiB",
        ),
        case(
            "ELF64 p_paddr + p_memsz overflows",
            Elf { segments: vec![(1, 0x1000, 0x101000, u64::MAX - 0x10, 0x100, 0x100)], ..elf64() }.bytes(),
            "beyond 4 GiB",
        ),
        case(
            "ELF too many segments",
            Elf {
                segments: (0..40u64)
                    .map(|i| (1, 0x1000, 0x100000 + i * 0x1000, 0x100000 + i * 0x1000, 0x10, 0x10))
                    .collect(),
                entry: 0x100000,
                len: 0x4000,
                ..elf32()
            }
            .bytes(),
            "at most 32 are supported",
        ),
        Case {
            class: "kernel larger than the partition",
            kernel: Kernel::Bytes(kludge(12 << 20, [ONE_MIB, ONE_MIB, 0, 0, ONE_MIB + 0x20])),
            args: args(&["--size", "8M"]),
            expect: "is too small for kernel",
        },
        Case {
            class: "disk size too small",
            kernel: Kernel::Bytes(good.clone()),
            args: args(&["--size", "1M"]),
            expect: "is too small for kernel",
        },
        Case {
            class: "command line too long",
            kernel: Kernel::Bytes(good.clone()),
            args: args(&["--", &"x".repeat(5000)]),
            expect: "the command line is",
        },
        Case {
            class: "name FAT cannot store",
            kernel: Kernel::Bytes(good.clone()),
            args: args(&["--name", "a*b"]),
            expect: "cannot be used",
        },
        Case {
            class: "name with a space",
            kernel: Kernel::Bytes(good.clone()),
            args: args(&["--name", "my kernel"]),
            expect: "whitespace",
        },
        Case {
            class: "name of the build-information file",
            kernel: Kernel::Bytes(good.clone()),
            args: args(&["--name", "build-info.txt"]),
            expect: "taken by the build-information file",
        },
        Case {
            class: "directory as kernel",
            kernel: Kernel::Directory,
            args: Vec::new(),
            expect: "is not a regular file (it is a directory)",
        },
        Case {
            class: "FIFO as kernel",
            kernel: Kernel::Fifo,
            args: Vec::new(),
            expect: "is not a regular file (it is a FIFO)",
        },
        Case {
            class: "missing kernel",
            kernel: Kernel::Missing,
            args: Vec::new(),
            expect: "No such file or directory",
        },
        Case { class: "unreadable kernel", kernel: Kernel::Unreadable, args: Vec::new(), expect: "cannot read kernel" },
        Case {
            class: "kernel larger than 1 GiB",
            kernel: Kernel::Huge,
            args: Vec::new(),
            expect: "the largest supported kernel is",
        },
        Case {
            class: "GCE size not whole GiB",
            kernel: Kernel::Bytes(good.clone()),
            args: args(&["--format", "gce", "--size", "1536M"]),
            expect: "whole number of GiB",
        },
        Case {
            class: "size not understood",
            kernel: Kernel::Bytes(good.clone()),
            args: args(&["--size", "big"]),
            expect: "invalid size",
        },
        Case {
            class: "size not a sector multiple",
            kernel: Kernel::Bytes(good),
            args: args(&["--size", "1000000"]),
            expect: "not a multiple of 512",
        },
    ];
    v.retain(|c| !matches!(c.kernel, Kernel::Fifo) || cfg!(unix));
    v
}

fn is_root() -> bool {
    // The effective uid, from /proc (no libc dependency for one number).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

/// Places the kernel of a case in `dir` and returns its path.
fn place(dir: &Path, index: usize, kernel: &Kernel) -> PathBuf {
    let path = dir.join(format!("kernel-{index}.bin"));
    match kernel {
        Kernel::Bytes(bytes) => std::fs::write(&path, bytes).unwrap(),
        Kernel::Directory => std::fs::create_dir(&path).unwrap(),
        Kernel::Fifo => {
            run_ok(Command::new("mkfifo").arg(&path));
        }
        Kernel::Missing => {}
        Kernel::Unreadable => {
            if is_root() {
                // Permissions do not stop root; /proc/self/mem is a "regular file" whose reads
                // at offset 0 fail.
                return PathBuf::from("/proc/self/mem");
            }
            std::fs::write(&path, b"x").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        }
        Kernel::Huge => {
            let f = std::fs::File::create(&path).unwrap();
            f.set_len((1 << 30) + 1).unwrap();
        }
    }
    path
}

#[test]
fn malformed_kernels_and_bad_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cases = corpus();
    assert!(cases.len() >= 30, "the corpus must cover at least 30 classes, has {}", cases.len());
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let kernel = place(dir.path(), i, &c.kernel);
        let out_dir = dir.path().join(format!("out-{i}"));
        std::fs::create_dir(&out_dir).unwrap();
        let output = out_dir.join("image.raw");
        let out = run(mkimage().arg("build").arg(&kernel).arg("-o").arg(&output).args(&c.args));
        let err = stderr(&out);
        let names_file = err.contains(&kernel.display().to_string()) || err.contains(&output.display().to_string());
        let problems = [
            (out.status.code() != Some(c.status()), format!("exit status {:?}", out.status.code())),
            (!err.starts_with("unikernel-mkimage: error: "), "no error line".to_string()),
            (err.lines().count() != 1, "not exactly one line".to_string()),
            (!err.contains(c.expect), format!("message lacks {:?}", c.expect)),
            (!names_file, "message names neither the kernel nor the output".to_string()),
            (err.contains("panicked"), "panic".to_string()),
            (std::fs::read_dir(&out_dir).unwrap().count() != 0, "output directory not empty".to_string()),
        ];
        for (bad, what) in problems {
            if bad {
                failures.push(format!("{}: {what}: {err}", c.class));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{} malformed classes refused", cases.len());
}

#[test]
fn unwritable_output_directory() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = write_kernel(dir.path(), "k.bin", 1000);
    // Nobody, root included, may create files in /proc.
    let out = run(mkimage().arg("build").arg(&kernel).args(["-o", "/proc/unikernel-mkimage-test.raw"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot create a temporary file next to /proc/unikernel-mkimage-test.raw"), "{err}");
    assert!(!Path::new("/proc/unikernel-mkimage-test.raw").exists());
}

/// Runs `script` in a private mount namespace (as root, or as a mapped root in a user
/// namespace), where it may mount a small tmpfs. `None` if namespaces are unavailable.
fn in_mount_namespace(script: &str) -> Option<std::process::Output> {
    let unshare = tool("disk_full_leaves_nothing_behind", "unshare", "util-linux")?;
    let mut cmd = Command::new(unshare);
    if !is_root() {
        cmd.arg("--map-root-user");
    }
    let out = run(cmd.args(["--mount", "sh", "-c", script]));
    if stderr(&out).contains("unshare failed") || stderr(&out).contains("Operation not permitted") {
        return None;
    }
    Some(out)
}

#[test]
fn disk_full_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    // An incompressible 3 MiB kernel cannot fit in a 2 MiB filesystem.
    let payload = random_bytes(3 << 20, 0x9e37_79b9);
    let kernel = dir.path().join("big.bin");
    std::fs::write(&kernel, mkimage_core::testkit::multiboot_kernel(&payload)).unwrap();
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=2m tmpfs '{full}' || exit 99; printf precious > '{full}/out.tar.gz'; \
         '{bin}' build '{kernel}' -o '{full}/out.tar.gz' --force; status=$?; \
         [ $status = 0 ] && echo unexpected success; echo \"status=$status\"; ls -A '{full}'; \
         cat '{full}/out.tar.gz'; echo",
        full = full.display(),
        bin = env!("CARGO_BIN_EXE_unikernel-mkimage"),
        kernel = kernel.display()
    );
    let Some(out) = in_mount_namespace(&script).filter(|o| o.status.code() != Some(99)) else {
        if tools_required() {
            panic!("disk_full_leaves_nothing_behind: cannot create a mount namespace for a small tmpfs");
        }
        eprintln!("SKIPPED: disk_full_leaves_nothing_behind: no mount namespace available");
        return;
    };
    let text = stdout(&out);
    let err = stderr(&out);
    assert!(!text.contains("unexpected success"), "{text}{err}");
    // The message names the output, never the temporary file.
    let expected =
        format!("unikernel-mkimage: error: cannot write {}/out.tar.gz: No space left on device", full.display());
    assert!(err.contains(&expected), "{err}");
    assert!(!err.contains(".partial"), "{err}");
    assert!(text.contains("status=1"), "{text}");
    // Only the old output remains, untouched.
    let listing: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("status=")).skip(1).collect();
    assert_eq!(listing.first(), Some(&"out.tar.gz"), "{text}");
    assert!(text.contains("precious"), "{text}");
    assert!(!text.contains(".partial"), "{text}");
}

/// Starts a long build (a 64 MiB incompressible kernel into a GCE tarball), waits until its
/// temporary file exists, sends `signal` and returns the exit status and what is left.
fn interrupt_build(signal: &str) -> (Option<i32>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let payload = random_bytes(64 << 20, 0x2545_f491);
    let kernel = dir.path().join("big.bin");
    std::fs::write(&kernel, mkimage_core::testkit::multiboot_kernel(&payload)).unwrap();
    drop(payload);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::write(out_dir.join("image.tar.gz"), b"previous").unwrap();
    let mut child = mkimage()
        .arg("build")
        .arg(&kernel)
        .arg("-o")
        .arg(out_dir.join("image.tar.gz"))
        .arg("--force")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let partial = std::fs::read_dir(&out_dir)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".partial"));
        if partial {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the build ended before it could be interrupted");
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // The shell's own kill: no dependency on procps.
    run_ok(Command::new("sh").arg("-c").arg(format!("kill -{signal} {}", child.id())));
    let status = child.wait().unwrap();
    let mut left: Vec<String> =
        std::fs::read_dir(&out_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(std::fs::read(out_dir.join("image.tar.gz")).unwrap(), b"previous", "the old output is untouched");
    (status.code(), left)
}

#[test]
fn sigterm_and_sigint_remove_the_temporary_file() {
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let (status, left) = interrupt_build(signal);
        assert_eq!(status, Some(code), "SIG{signal}");
        assert_eq!(left, ["image.tar.gz"], "SIG{signal}: temporary files left behind");
    }
}

#[test]
fn parallel_builds_into_one_directory_do_not_interfere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let kernel = write_kernel(d, "k.bin", 300_000);
    let reference = d.join("reference.tar.gz");
    run_ok(mkimage().args(["build", "-q"]).arg(&kernel).arg("-o").arg(&reference));
    let spawn = |output: &str, force: bool| {
        let mut cmd = mkimage();
        cmd.args(["build", "-q"]).arg(&kernel).arg("-o").arg(d.join(output));
        if force {
            cmd.arg("--force");
        }
        cmd.stderr(std::process::Stdio::piped()).spawn().unwrap()
    };
    let mut children = Vec::new();
    for i in 0..8 {
        children.push(("distinct", spawn(&format!("out-{i}.tar.gz"), false)));
    }
    for _ in 0..4 {
        children.push(("forced", spawn("shared-forced.tar.gz", true)));
    }
    for _ in 0..4 {
        children.push(("exclusive", spawn("shared.tar.gz", false)));
    }
    let mut exclusive_ok = 0;
    for (kind, child) in children {
        let out = child.wait_with_output().unwrap();
        match kind {
            "exclusive" if out.status.success() => exclusive_ok += 1,
            "exclusive" => assert!(stderr(&out).contains("already exists"), "{}", stderr(&out)),
            _ => assert!(out.status.success(), "{kind}: {}", stderr(&out)),
        }
    }
    assert_eq!(exclusive_ok, 1, "exactly one build may create a file that did not exist");
    for i in 0..8 {
        assert!(same_contents(&d.join(format!("out-{i}.tar.gz")), &reference));
    }
    assert!(same_contents(&d.join("shared-forced.tar.gz"), &reference));
    assert!(same_contents(&d.join("shared.tar.gz"), &reference));
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// Environment variables for a build.
type Env<'a> = &'a [(&'a str, &'a str)];

/// Builds in an environment and returns the output bytes.
fn build_env(kernel: &Path, work: &Path, env: &[(&str, &str)], umask: &str, output: &str) -> Vec<u8> {
    std::fs::create_dir_all(work).unwrap();
    let copy = work.join(kernel.file_name().unwrap());
    std::fs::copy(kernel, &copy).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_unikernel-mkimage"))
        .args(["build", "-q"])
        .arg(&copy)
        .arg("-o")
        .arg(output)
        .args(["--", "--ipv4=10.0.0.2/24"])
        .current_dir(work)
        .env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_ok(&mut cmd);
    std::fs::read(work.join(output)).unwrap()
}

#[test]
fn reproducible_under_pressure() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = write_kernel(dir.path(), "unikernel.bin", 200_000);
    let base = build_env(&kernel, &dir.path().join("base"), &[("TZ", "UTC"), ("LC_ALL", "C")], "022", "img.tar.gz");
    // Different time zone, locale, umask, directory depth, and an input copied later.
    let variants: [(Env<'_>, &str, &str); 3] = [
        (&[("TZ", "Asia/Kolkata"), ("LC_ALL", "de_DE.UTF-8")], "077", "x/y/z"),
        (&[("TZ", "America/St_Johns"), ("LC_ALL", "POSIX")], "002", "other"),
        (&[("TZ", "Pacific/Chatham"), ("LANG", "fr_FR.UTF-8")], "027", "a b"),
    ];
    for (env, umask, sub) in variants {
        let bytes = build_env(&kernel, &dir.path().join(sub), env, umask, "img.tar.gz");
        assert!(bytes == base, "{env:?} {umask} {sub}: bytes differ");
    }
    // In parallel: all equal.
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let kernel = kernel.clone();
            let work = dir.path().join(format!("par-{i}"));
            std::thread::spawn(move || build_env(&kernel, &work, &[("TZ", "UTC")], "022", "img.tar.gz"))
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap() == base, "a parallel build differs");
    }
    // SOURCE_DATE_EPOCH changes the bytes but not the layout inspect reports.
    let later =
        build_env(&kernel, &dir.path().join("later"), &[("SOURCE_DATE_EPOCH", "1700000000")], "022", "img.tar.gz");
    assert!(later != base);
    let report = |path: &Path| {
        let out = run_ok(mkimage().arg("inspect").arg(path).arg("--json"));
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["path"] = serde_json::Value::Null;
        v["tarball"]["members"][0]["mtime"] = serde_json::Value::Null;
        v
    };
    assert_eq!(report(&dir.path().join("base/img.tar.gz")), report(&dir.path().join("later/img.tar.gz")));
}
