//! End-to-end tests of `unikernel-mkimage build`: the images it writes are checked with
//! independent tools (sfdisk, sgdisk, fsck.fat, mtools, GNU tar), and its handling of outputs,
//! options and bad input is checked through the binary.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const GIB: u64 = 1 << 30;

fn build(kernel: &Path, output: &Path, extra: &[&str]) -> std::process::Output {
    run_ok(mkimage().arg("build").arg(kernel).arg("-o").arg(output).args(extra))
}

#[test]
fn mbr_image_passes_sfdisk() {
    let Some(sfdisk) = tool("mbr_image_passes_sfdisk", "sfdisk", "fdisk") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kernel = write_kernel(dir.path(), "unikernel.bin", 200_000);
    let image = dir.path().join("disk.raw");
    build(&kernel, &image, &["-q"]);
    let dump = stdout(&run_ok(Command::new(&sfdisk).arg("-d").arg(&image)));
    assert!(dump.contains("label: dos"), "{dump}");
    let part = dump.lines().find(|l| l.contains("start=")).expect("one partition");
    assert!(part.contains("start=        2048"), "{part}");
    assert!(part.contains(&format!("size=     {}", GIB / 512 - 2048)), "{part}");
    assert!(part.contains("type=c"), "{part}");
    assert!(part.contains("bootable"), "{part}");
    assert_eq!(dump.lines().filter(|l| l.contains("start=")).count(), 1, "{dump}");
    let verify = run_ok(Command::new(&sfdisk).arg("-V").arg(&image));
    assert!(stdout(&verify).contains("No errors detected"), "{}", stdout(&verify));

    // A small disk gets FAT16 and the matching partition type.
    let small = dir.path().join("small.raw");
    build(&kernel, &small, &["-q", "--size", "20M"]);
    let dump = stdout(&run_ok(Command::new(&sfdisk).arg("-d").arg(&small)));
    assert!(dump.contains("type=e"), "{dump}");
    run_ok(Command::new(&sfdisk).arg("-V").arg(&small));
}

#[test]
fn gpt_image_passes_sgdisk() {
    let Some(sgdisk) = tool("gpt_image_passes_sgdisk", "sgdisk", "gdisk") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kernel = write_kernel(dir.path(), "unikernel.bin", 200_000);
    let image = dir.path().join("disk.raw");
    build(&kernel, &image, &["-q", "--partition-table", "gpt", "--size", "2G"]);
    let verify = run_ok(Command::new(&sgdisk).arg("-v").arg(&image));
    let text = stdout(&verify);
    assert!(text.contains("No problems found"), "{text}");
    assert!(!text.to_lowercase().contains("caution"), "{text}");
    assert!(!text.to_lowercase().contains("warning"), "{text}");
    let table = stdout(&run_ok(Command::new(&sgdisk).arg("-p").arg(&image)));
    let rows: Vec<&str> = table.lines().filter(|l| l.trim_start().starts_with(['1', '2'])).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[0].contains(" 64 ") && rows[0].contains("EF02") && rows[0].contains("BIOS boot partition"), "{table}");
    assert!(
        rows[1].contains(" 2048 ") && rows[1].contains("EF00") && rows[1].contains("EFI system partition"),
        "{table}"
    );
}

/// Runs fsck.fat -n on the FAT partition of `image` and returns its report.
fn fsck_partition(fsck: &Path, image: &Path, start_lba: u64, sectors: u64) -> String {
    let part = image.with_extension("part");
    extract(image, start_lba * 512, sectors * 512, &part);
    let out = run(Command::new(fsck).arg("-n").arg("-v").arg(&part));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "fsck.fat failed:\n{text}");
    // A clean volume produces no diagnostics: only the geometry report and the summary line.
    for word in ["warning", "error", "differ", "mismatch", "free cluster summary wrong", "reclaim", "dirty"] {
        assert!(!text.to_lowercase().contains(word), "fsck.fat complained ({word}):\n{text}");
    }
    std::fs::remove_file(part).unwrap();
    text
}

#[test]
fn fat_filesystem_passes_fsck() {
    let Some(fsck) = tool("fat_filesystem_passes_fsck", "fsck.fat", "dosfstools") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kernel = write_kernel(dir.path(), "test_hello.virtio", 225_000);
    // (table, firmware, size, partition start, partition sectors, FAT type and cluster size
    // expected, files: the kernel, the info file, and for UEFI EFI, EFI/BOOT and the loader)
    let cases = [
        ("mbr", "hybrid", "1G", 2048, GIB / 512 - 2048, "32 bit entries", "4096 bytes per cluster", 5),
        ("gpt", "hybrid", "1G", 2048, GIB / 512 - 4096, "32 bit entries", "4096 bytes per cluster", 5),
        ("gpt", "uefi", "1G", 2048, GIB / 512 - 4096, "32 bit entries", "4096 bytes per cluster", 5),
        ("mbr", "bios", "1G", 2048, GIB / 512 - 2048, "32 bit entries", "4096 bytes per cluster", 2),
        ("mbr", "hybrid", "100M", 2048, 100 * 2048 - 2048, "32 bit entries", "512 bytes per cluster", 5),
        ("mbr", "hybrid", "20M", 2048, 20 * 2048 - 2048, "16 bit entries", "512 bytes per cluster", 5),
    ];
    for (table, firmware, size, start, sectors, fat, cluster, files) in cases {
        let image = dir.path().join(format!("{table}-{firmware}-{size}.raw"));
        build(&kernel, &image, &["-q", "--partition-table", table, "--firmware", firmware, "--size", size]);
        let report = fsck_partition(&fsck, &image, start, sectors);
        let case = format!("{table} {firmware} {size}");
        assert!(report.contains(fat), "{case}:\n{report}");
        assert!(report.contains(cluster), "{case}:\n{report}");
        assert!(report.contains(&format!("{start} hidden sectors")), "{case}:\n{report}");
        assert!(report.contains(&format!(" {files} files,")), "{case}: {files} files expected:\n{report}");
    }
}

#[test]
fn mtools_read_the_kernel_back_byte_for_byte() {
    let Some(mcopy) = tool("mtools_read_the_kernel_back_byte_for_byte", "mcopy", "mtools") else {
        return;
    };
    let Some(mdir) = tool("mtools_read_the_kernel_back_byte_for_byte", "mdir", "mtools") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kernel = write_kernel(dir.path(), "test_hello.virtio", 3_000_000);
    for table in ["mbr", "gpt"] {
        let image = dir.path().join(format!("{table}.raw"));
        build(&kernel, &image, &["-q", "--partition-table", table, "--", "Hello_Solo5", "--x=1"]);
        let drive = format!("{}@@1M", image.display());
        let listing = stdout(&run_ok(Command::new(&mdir).env("MTOOLS_SKIP_CHECK", "1").args(["-i", &drive, "::"])));
        assert!(listing.contains("test_hello.virtio"), "{listing}");
        assert!(listing.contains("build-info.txt"), "{listing}");
        let back = dir.path().join(format!("{table}.kernel"));
        run_ok(Command::new(&mcopy).args(["-n", "-i", &drive]).arg("::test_hello.virtio").arg(&back));
        assert!(same_contents(&back, &kernel), "{table}: kernel differs after mcopy");
        let info = dir.path().join(format!("{table}.info"));
        run_ok(Command::new(&mcopy).args(["-n", "-i", &drive]).arg("::build-info.txt").arg(&info));
        let info = std::fs::read_to_string(info).unwrap();
        assert!(info.contains("command line: test_hello.virtio Hello_Solo5 --x=1\n"), "{info}");
        assert!(info.contains(&format!("unikernel-mkimage {}", env!("CARGO_PKG_VERSION"))), "{info}");
    }
}

#[test]
fn gnu_tar_lists_and_extracts_the_gce_tarball() {
    let Some(tar) = tool("gnu_tar_lists_and_extracts_the_gce_tarball", "tar", "tar") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kernel = write_kernel(dir.path(), "unikernel.bin", 500_000);
    for table in ["mbr", "gpt"] {
        let tgz = dir.path().join(format!("{table}.tar.gz"));
        let raw = dir.path().join(format!("{table}.raw"));
        let opts = ["-q", "--partition-table", table, "--", "a", "b"];
        build(&kernel, &tgz, &opts);
        build(&kernel, &raw, &opts);
        let listing = stdout(&run_ok(Command::new(&tar).arg("-tvzf").arg(&tgz)));
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 1, "{listing}");
        assert!(lines[0].starts_with("-rw-r--r-- root/root 1073741824 1980-01-01 00:00 disk.raw"), "{listing}");
        let out = dir.path().join(format!("{table}-x"));
        std::fs::create_dir(&out).unwrap();
        run_ok(Command::new(&tar).arg("-xSzf").arg(&tgz).arg("-C").arg(&out));
        let extracted = out.join("disk.raw");
        assert!(same_contents(&extracted, &raw), "{table}: GNU tar extraction differs from the raw image");
        assert!(allocated_bytes(&extracted) < 8 << 20, "GNU tar kept the holes");
    }
}

#[test]
fn raw_image_is_sparse() {
    let Some(du) = tool("raw_image_is_sparse", "du", "coreutils") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kernel = write_kernel(dir.path(), "k", 1 << 20);
    let image = dir.path().join("disk.raw");
    build(&kernel, &image, &["-q", "--size", "4G"]);
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 4 * GIB);
    let usage = stdout(&run_ok(Command::new(&du).arg("-k").arg(&image)));
    let kib: u64 = usage.split_whitespace().next().unwrap().parse().unwrap();
    assert!(kib < 4 * 1024, "a 4 GiB image holding a 1 MiB kernel uses {kib} KiB");
}

/// Builds the same image under a given environment, from a copy of the kernel in its own
/// directory, and returns the output bytes.
/// How a reproducibility build differs: time zone, umask, SOURCE_DATE_EPOCH, output name and
/// the firmware option.
struct Env<'a> {
    tz: &'a str,
    umask: &'a str,
    epoch: Option<&'a str>,
    output_name: &'a str,
    firmware: &'a str,
}

fn build_in_env(kernel: &Path, work: &Path, env: &Env<'_>) -> Vec<u8> {
    let Env { tz, umask, epoch, output_name, firmware } = *env;
    std::fs::create_dir_all(work).unwrap();
    let copy = work.join(kernel.file_name().unwrap());
    std::fs::copy(kernel, &copy).unwrap();
    let out = work.join(output_name);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_unikernel-mkimage"))
        .args(["build", "-q", "--firmware", firmware])
        .arg(copy.file_name().unwrap())
        .arg("-o")
        .arg(output_name)
        .args(["--", "--ipv4=10.0.0.2/24"])
        .current_dir(work)
        .env("TZ", tz)
        .env("LC_ALL", "C");
    cmd.env_remove("SOURCE_DATE_EPOCH");
    if let Some(epoch) = epoch {
        cmd.env("SOURCE_DATE_EPOCH", epoch);
    }
    run_ok(&mut cmd);
    std::fs::read(out).unwrap()
}

#[test]
fn output_is_reproducible_across_environments() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = write_kernel(dir.path(), "unikernel.bin", 100_000);
    for output_name in ["disk.tar.gz", "disk.raw"] {
        for firmware in ["hybrid", "uefi"] {
            let case = format!("{output_name} {firmware}");
            let env = |tz, umask, epoch| Env { tz, umask, epoch, output_name, firmware };
            let work = dir.path().join(firmware);
            let a = build_in_env(&kernel, &work.join("a"), &env("UTC", "022", None));
            // Another time zone, umask, directory, and an input copied later (another mtime).
            std::thread::sleep(std::time::Duration::from_millis(1100));
            let b = build_in_env(&kernel, &work.join("b/deeper"), &env("Pacific/Kiritimati", "077", None));
            assert!(a == b, "{case}: builds differ across environments");
            let c = build_in_env(&kernel, &work.join("c"), &env("UTC", "022", Some("1700000000")));
            assert!(a != c, "{case}: SOURCE_DATE_EPOCH did not change the bytes");
            let d = build_in_env(&kernel, &work.join("d"), &env("America/New_York", "002", Some("1700000000")));
            assert!(c == d, "{case}: builds with SOURCE_DATE_EPOCH differ across environments");
        }
    }
}

#[test]
fn summary_line_and_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = write_kernel(dir.path(), "k", 1000);
    let out = build(&kernel, &dir.path().join("x.tgz"), &[]);
    let line = stdout(&out);
    assert!(line.starts_with("unikernel-mkimage: wrote "), "{line}");
    assert!(line.contains("x.tgz (gce, 1 GiB disk, "), "{line}");
    assert!(line.contains(" bytes written) in "), "{line}");
    assert_eq!(line.lines().count(), 1);
    let out = build(&kernel, &dir.path().join("y.img"), &["-q"]);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    // The format follows the extension unless given.
    let tgz = std::fs::read(dir.path().join("x.tgz")).unwrap();
    assert_eq!(&tgz[..2], &[0x1f, 0x8b]);
    assert_eq!(std::fs::metadata(dir.path().join("y.img")).unwrap().len(), GIB);
    build(&kernel, &dir.path().join("z.tar.gz"), &["-q", "--format", "raw"]);
    assert_eq!(std::fs::metadata(dir.path().join("z.tar.gz")).unwrap().len(), GIB);
}

/// Names of the entries of a directory, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Runs a build that must fail; returns its stderr after checking that it is one line naming
/// the problem, that the exit status is 1 (2 for a usage error: an option that cannot be
/// honoured, whatever the kernel) and that the directory holds only `keep`.
fn build_fails(dir: &Path, args: &[&str], keep: &[&str]) -> String {
    let out = run(mkimage().arg("build").args(args).current_dir(dir));
    let err = stderr(&out);
    let usage = args.contains(&"--size") && !err.contains("too small");
    assert_eq!(out.status.code(), Some(if usage { 2 } else { 1 }), "{args:?}: {err}");
    assert!(err.starts_with("unikernel-mkimage: error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty());
    let mut keep: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
    keep.sort();
    assert_eq!(entries(dir), keep, "{args:?}: the directory must hold no partial output");
    err
}

#[test]
fn bad_input_is_refused_without_leaving_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_kernel(d, "k.bin", 1000);
    std::fs::create_dir(d.join("subdir")).unwrap();
    let keep = ["k.bin", "subdir"];
    let err = build_fails(d, &["missing.bin", "-o", "o.raw"], &keep);
    assert!(err.contains("cannot read kernel missing.bin") && err.contains("No such file"), "{err}");
    let err = build_fails(d, &["subdir", "-o", "o.raw"], &keep);
    assert!(err.contains("kernel subdir is not a regular file (it is a directory)"), "{err}");
    let err = build_fails(d, &["k.bin", "-o", "o.tar.gz", "--size", "1536M"], &keep);
    assert!(err.contains("whole number of GiB"), "{err}");
    let err = build_fails(d, &["k.bin", "-o", "o.raw", "--size", "lots"], &keep);
    assert!(err.contains("invalid size \"lots\""), "{err}");
    let err = build_fails(d, &["k.bin", "-o", "o.raw", "--size", "1M"], &keep);
    assert!(err.contains("too small") && err.contains("needs at least"), "{err}");
    let err = build_fails(d, &["k.bin", "-o", "o.raw", "--name", "a:b"], &keep);
    assert!(err.contains("kernel k.bin: the name \"a:b\" cannot be used"), "{err}");
    let err = build_fails(d, &["k.bin", "-o", "subdir"], &keep);
    assert!(err.contains("is a directory"), "{err}");
    let err = build_fails(d, &["k.bin", "-o", "k.bin", "--force"], &keep);
    assert!(err.contains("is the kernel itself"), "{err}");
    let before = std::fs::read(d.join("k.bin")).unwrap();
    let out = run(mkimage().args(["build", "k.bin", "-o", "o.raw"]).current_dir(d).env("SOURCE_DATE_EPOCH", "soon"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("SOURCE_DATE_EPOCH"), "{}", stderr(&out));
    assert_eq!(std::fs::read(d.join("k.bin")).unwrap(), before, "the kernel is never modified");
    assert_eq!(entries(d), ["k.bin", "subdir"]);
}

#[test]
fn usage_errors_exit_2_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_kernel(d, "k.bin", 1000);
    let cases: [(&[&str], &str); 7] = [
        (&["k.bin", "-o", "o.raw", "--size", "1.3K"], "whole number of bytes"),
        (&["k.bin", "-o", "o.raw", "--bogus"], "unexpected argument '--bogus'"),
        (&["k.bin"], "required arguments were not provided: --output <OUTPUT>"),
        (&["k.bin", "-o", "o.qcow2"], "ends in .qcow2, a format this tool does not write"),
        (&["k.bin", "-o", "o.tar"], "ends in .tar"),
        (&["k.bin", "-o", "o.gz"], "ends in .gz"),
        (&["k.bin", "-o", "o.raw", "--partition-table", "apm"], "invalid value 'apm'"),
    ];
    for (args, expect) in cases {
        let out = run(mkimage().arg("build").args(args).current_dir(d));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("unikernel-mkimage: error: ") && err.lines().count() == 1, "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(entries(d), ["k.bin"], "{args:?}");
    }
    // Fractions that make whole bytes are sizes; --format writes under a foreign name.
    run_ok(mkimage().args(["build", "-q", "k.bin", "-o", "o.raw", "--size", "1.5G"]).current_dir(d));
    assert_eq!(std::fs::metadata(d.join("o.raw")).unwrap().len(), 3 << 29);
    let out = run_ok(mkimage().args(["build", "-q", "k.bin", "-o", "o.qcow2", "--format", "raw"]).current_dir(d));
    assert!(stderr(&out).contains("warning: output o.qcow2 ends in .qcow2 but will hold a raw image"));
}

#[test]
fn existing_output_needs_force() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_kernel(d, "k.bin", 1000);
    std::fs::write(d.join("o.raw"), b"precious").unwrap();
    let err = build_fails(d, &["k.bin", "-o", "o.raw"], &["k.bin", "o.raw"]);
    assert!(err.contains("o.raw already exists (use --force to replace it)"), "{err}");
    assert_eq!(std::fs::read(d.join("o.raw")).unwrap(), b"precious");
    run_ok(mkimage().args(["build", "-q", "k.bin", "-o", "o.raw", "--force"]).current_dir(d));
    assert_eq!(std::fs::metadata(d.join("o.raw")).unwrap().len(), GIB);
    assert_eq!(entries(d), ["k.bin", "o.raw"]);
}

#[test]
fn output_mode_follows_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_kernel(d, "k.bin", 1000);
    for (umask, mode) in [("022", 0o644), ("077", 0o600)] {
        let name = format!("o{umask}.raw");
        run_ok(
            Command::new("sh")
                .arg("-c")
                .arg(format!("umask {umask} && exec \"$0\" build -q k.bin -o {name}"))
                .arg(env!("CARGO_BIN_EXE_unikernel-mkimage"))
                .current_dir(d),
        );
        assert_eq!(std::fs::metadata(d.join(&name)).unwrap().permissions().mode() & 0o777, mode);
    }
}
