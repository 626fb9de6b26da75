//! End-to-end tests of the tools around an image: the drop-in `solo5-virtio-mkimage`,
//! `unikernel-mkimage inspect` (on our images, on one made by the SYSLINUX pipeline, on
//! garbage) and `unikernel-mkimage run`, plus completions, the manual page, --version and -v.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

/// The version of the embedded BIOS boot stage.
fn stage() -> u16 {
    mkimage_core::boot::bios::stage_version()
}

fn dropin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_solo5-virtio-mkimage"))
}

fn fixture(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(file)
}

fn inspect_json(image: &Path) -> (Option<i32>, serde_json::Value) {
    let out = run(mkimage().arg("inspect").arg(image).arg("--json"));
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", stdout(&out)));
    (out.status.code(), value)
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no check {name}"))
}

#[test]
fn dropin_accepts_the_shapes_build_scripts_use() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let kernel = fixture("hello.elf");
    // -f tar with --, and arguments that look like options.
    let out = run_ok(
        dropin()
            .args(["-f", "tar", "--"])
            .arg(d.join("a.tar.gz"))
            .arg(&kernel)
            .args(["--ipv4=10.0.0.2/24", "--ipv4-gateway=10.0.0.1"]),
    );
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "silent on success");
    let (code, report) = inspect_json(&d.join("a.tar.gz"));
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["cmdline"], "unikernel.bin --ipv4=10.0.0.2/24 --ipv4-gateway=10.0.0.1");
    assert_eq!(report["kernel"]["name"], "unikernel.bin");
    assert_eq!(report["partition_table"], "mbr");
    assert_eq!(report["disk_size"], 1u64 << 30);
    assert_eq!(report["gce_ready"], true);
    // Without --, default raw format.
    run_ok(dropin().arg(d.join("b.img")).arg(&kernel).arg("hello"));
    assert_eq!(std::fs::metadata(d.join("b.img")).unwrap().len(), 1 << 30);
    // The same image as unikernel-mkimage builds with the same choices.
    run_ok(
        mkimage()
            .args(["build", "-q", "--name", "unikernel.bin"])
            .arg(&kernel)
            .arg("-o")
            .arg(d.join("c.img"))
            .args(["--", "hello"]),
    );
    assert!(same_contents(&d.join("b.img"), &d.join("c.img")));
    // -d is accepted with a note; an existing image is replaced, like the original.
    let out = run_ok(dropin().args(["-d", "-f", "raw"]).arg(d.join("b.img")).arg(&kernel).arg("other"));
    assert_eq!(stderr(&out), "solo5-virtio-mkimage: note: -d ignored: no container is needed\n");
    let (_, report) = inspect_json(&d.join("b.img"));
    assert_eq!(report["cmdline"], "unikernel.bin other");
}

/// The drop-in reads its command line as Solo5's script did, through GNU `getopt df:`: for
/// each permutation, the real getopt's reading is the expected one.
#[test]
fn dropin_reads_options_where_gnu_getopt_does() {
    let Some(getopt) = tool("dropin_reads_options_where_gnu_getopt_does", "getopt", "util-linux") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(fixture("hello.elf"), d.join("KER")).unwrap();
    let cases: &[&[&str]] = &[
        &["IMG", "KER"],
        &["-f", "tar", "IMG", "KER", "a"],
        &["IMG", "KER", "-f", "tar"],
        &["IMG", "-f", "tar", "KER", "a"],
        &["IMG", "KER", "a", "-ftar", "b"],
        &["-d", "IMG", "KER", "-f", "raw"],
        &["IMG", "KER", "--", "-f", "tar"],
        &["-dftar", "IMG", "KER"],
        &["IMG", "KER", "a", "-d"],
        &["--", "IMG", "KER", "--", "x"],
        &["-f", "tar", "-f", "raw", "IMG", "KER"],
        &["IMG", "KER", "-", "a"],
        &["IMG", "KER", "-f"],
        &["IMG", "KER", "--ipv4=10.0.0.2/24"],
        &["-x", "IMG", "KER"],
        &["IMG", "KER", "-f", "zip"],
        &["IMG"],
    ];
    for case in cases {
        let _ = std::fs::remove_file(d.join("IMG"));
        // What getopt makes of it, then what the script's loop makes of getopt's output.
        let oracle = run(Command::new(&getopt).arg("df:").args(*case).env_remove("POSIXLY_CORRECT"));
        let words: Vec<String> = stdout(&oracle).split_whitespace().map(str::to_owned).collect();
        let split = words.iter().position(|w| w == "--").unwrap_or(words.len());
        let (options, operands) = (&words[..split], words.get(split + 1..).unwrap_or_default());
        let format = options.windows(2).filter(|w| w[0] == "-f").map(|w| w[1].as_str()).next_back().unwrap_or("raw");
        let usage = !oracle.status.success() || operands.len() < 2 || !["raw", "tar"].contains(&format);
        let out = run(dropin().args(*case).current_dir(d));
        if usage {
            assert_eq!(out.status.code(), Some(1), "{case:?} is a usage error");
            assert!(stderr(&out).starts_with("usage: solo5-virtio-mkimage"), "{case:?}: {}", stderr(&out));
            continue;
        }
        assert!(out.status.success(), "{case:?}: {}", stderr(&out));
        let image = d.join(&operands[0]);
        assert_eq!(std::fs::read(&image).unwrap()[..2] == [0x1f, 0x8b], format == "tar", "{case:?}: format");
        let (_, report) = inspect_json(&image);
        let expected = std::iter::once("unikernel.bin").chain(operands[2..].iter().map(String::as_str));
        assert_eq!(report["cmdline"], expected.collect::<Vec<_>>().join(" "), "{case:?}: arguments");
    }
}

#[test]
fn dropin_usage_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for bad in [&[][..], &["only-one"], &["-f", "zip", "x", "y"], &["-x", "x", "y"]] {
        let out = run(dropin().args(bad).current_dir(d));
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        assert!(
            stderr(&out)
                .starts_with("usage: solo5-virtio-mkimage [ OPTIONS ] [ -- ] IMAGE UNIKERNEL [ ARGUMENTS ... ]")
        );
        assert!(out.stdout.is_empty());
    }
    let out = run(dropin().args(["out.img", "missing.virtio"]).current_dir(d));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "solo5-virtio-mkimage: error: not found: missing.virtio\n");
    std::fs::write(d.join("junk.virtio"), b"not a kernel").unwrap();
    let out = run(dropin().args(["out.img", "junk.virtio"]).current_dir(d));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("solo5-virtio-mkimage: error: kernel junk.virtio: no Multiboot header"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(d).unwrap().count(), 1, "no output left behind");
}

#[test]
fn inspect_describes_our_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let kernel = fixture("multiseg32.elf");
    for (name, extra) in [
        ("mbr.raw", &["--size", "256M"][..]),
        ("gpt.raw", &["--partition-table", "gpt"]),
        ("x.tar.gz", &[]),
        ("uefi.tar.gz", &["--partition-table", "gpt", "--firmware", "uefi"]),
        ("bios.raw", &["--firmware", "bios"]),
    ] {
        let image = d.join(name);
        run_ok(mkimage().args(["build", "-q"]).arg(&kernel).arg("-o").arg(&image).args(extra).args(["--", "a", "b"]));
        let (code, r) = inspect_json(&image);
        assert_eq!(code, Some(0), "{name}: {r:#}");
        assert_eq!(r["schema_version"], 3);
        let (bios, uefi) = match name {
            "uefi.tar.gz" => (false, true),
            "bios.raw" => (true, false),
            _ => (true, true),
        };
        let firmware: Vec<&str> = [(bios, "bios"), (uefi, "uefi")].iter().filter(|f| f.0).map(|f| f.1).collect();
        assert_eq!(r["firmware"], serde_json::json!(firmware), "{name}");
        let loader_version = mkimage_core::boot::uefi::loader_version();
        assert_eq!(r["boot_loader"]["uefi_loader_version"], if uefi { loader_version.into() } else { Value::Null });
        // Partitions are counted from 1 everywhere, as partitioning tools show them.
        let fs_partition = &r["filesystem"]["partition"];
        assert_eq!(&r["boot_loader"]["record"]["boot_partition"], fs_partition, "{name}");
        let fat = r["partitions"].as_array().unwrap().iter().find(|p| &p["number"] == fs_partition).unwrap();
        assert!(fat["type_name"].as_str().unwrap().contains("FAT") || fat["type_name"] == "EFI system");
        assert_eq!(r["kernel"]["name"], "multiseg32.elf");
        assert_eq!(r["kernel"]["size"], std::fs::metadata(&kernel).unwrap().len());
        assert_eq!(r["kernel"]["multiboot"]["format"], "ELF32");
        assert_eq!(r["kernel"]["multiboot"]["segments"].as_array().unwrap().len(), 3);
        assert_eq!(r["cmdline"], "multiseg32.elf a b");
        assert_eq!(r["boot_loader"]["kind"], "unikernel-mkimage");
        assert_eq!(r["boot_loader"]["stage_version"], if bios { stage().into() } else { Value::Null });
        assert!(r["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true), "{r:#}");
        let sha = mkimage_core::ident::sha256(&std::fs::read(&kernel).unwrap());
        let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(r["kernel"]["sha256"], hex);
        match name {
            "gpt.raw" => {
                assert_eq!(r["partition_table"], "gpt");
                // GUIDs in lower case, the same as build -v prints.
                let plan = stdout(&run_ok(
                    mkimage()
                        .args(["build", "-v", "--force", "--partition-table", "gpt"])
                        .arg(&kernel)
                        .arg("-o")
                        .arg(&image)
                        .args(["--", "a", "b"]),
                ));
                let disk_guid = r["disk_id"].as_str().unwrap();
                assert_eq!(disk_guid, disk_guid.to_lowercase());
                assert!(plan.contains(&format!("GPT disk GUID: {disk_guid}")), "{plan}");
                let bios_guid = r["partitions"][0]["guid"].as_str().unwrap();
                assert!(plan.contains(&format!("GUID {bios_guid}")), "{plan}");
                assert_eq!(r["partitions"][0]["type_name"], "BIOS boot");
                assert_eq!(r["partitions"][1]["type_name"], "EFI system");
                assert_eq!(r["gce_ready"], false, "a raw image is not an import tarball");
            }
            "x.tar.gz" | "uefi.tar.gz" => {
                assert_eq!(r["container"], "gce-tarball");
                assert_eq!(r["tarball"]["members"][0]["name"], "disk.raw");
                assert_eq!(r["tarball"]["members"][0]["format"], "old-GNU");
                assert_eq!(r["gce_ready"], true);
            }
            "uefi.raw" | "bios.raw" => {}
            _ => {
                assert_eq!(r["disk_size"], 256u64 << 20);
                // MBR partitions have neither name nor GUID.
                assert!(r["partitions"][0]["name"].is_null() && r["partitions"][0]["guid"].is_null(), "{r:#}");
            }
        }
    }
    // Text output names the same things.
    let out = run_ok(mkimage().arg("inspect").arg(d.join("x.tar.gz")));
    let text = stdout(&out);
    assert!(text.contains(&format!("boot loader: unikernel-mkimage, boot stage {}", stage())), "{text}");
    assert!(text.contains("command line: multiseg32.elf a b"), "{text}");
    assert!(text.contains("GCE ready: yes"), "{text}");
}

#[test]
fn inspect_notices_a_changed_kernel_and_a_non_gce_tarball() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let image = d.join("x.raw");
    run_ok(mkimage().args(["build", "-q"]).arg(fixture("hello.elf")).arg("-o").arg(&image));
    // Change one byte of the kernel file inside the filesystem.
    let (_, r) = inspect_json(&image);
    let lba = r["boot_loader"]["record"]["runs"][0]["lba"].as_u64().unwrap();
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&image).unwrap();
        f.seek(SeekFrom::Start(lba * 512 + 100)).unwrap();
        f.write_all(&[0xAB]).unwrap();
    }
    let (code, r) = inspect_json(&image);
    assert_eq!(code, Some(1));
    assert_eq!(check(&r, "boot_record")["ok"], false);
    assert!(check(&r, "boot_record")["detail"].as_str().unwrap().contains("checksum"), "{r:#}");

    // A tarball of a disk with another member name and not a whole number of GiB.
    let Some(tar) = tool("inspect_notices_a_changed_kernel_and_a_non_gce_tarball", "tar", "tar") else { return };
    run_ok(
        mkimage().args(["build", "-q", "--size", "100M"]).arg(fixture("hello.elf")).arg("-o").arg(d.join("image.img")),
    );
    run_ok(Command::new(tar).args(["-Sczf", "t.tar.gz", "image.img"]).current_dir(d));
    let (code, r) = inspect_json(&d.join("t.tar.gz"));
    assert_eq!(code, Some(1));
    assert_eq!(check(&r, "gce_member_name")["ok"], false);
    assert_eq!(check(&r, "gce_size")["ok"], false);
    assert_eq!(r["gce_ready"], false);
}

/// PAX tarballs made by GNU tar: decoded (path, size, GNU sparse maps in formats 0.0, 0.1 and
/// 1.0), the disk described and checked, and gce_format failed with its reason; GNU format
/// (not old-GNU) is fine for GCE.
#[test]
fn inspect_reads_pax_and_gnu_tarballs_made_by_gnu_tar() {
    let Some(tar) = tool("inspect_reads_pax_and_gnu_tarballs_made_by_gnu_tar", "tar", "tar") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run_ok(mkimage().args(["build", "-q", "--size", "1G"]).arg(fixture("hello.elf")).arg("-o").arg(d.join("disk.raw")));
    let cases: [(&str, &[&str], Option<&str>); 5] = [
        ("pax-plain", &["--format=pax"], None),
        ("pax-sparse-0.0", &["--format=pax", "-S", "--sparse-version=0.0"], Some("PAX sparse 0.0")),
        ("pax-sparse-0.1", &["--format=pax", "-S", "--sparse-version=0.1"], Some("PAX sparse 0.1")),
        ("pax-sparse-1.0", &["--format=pax", "-S", "--sparse-version=1.0"], Some("PAX sparse 1.0")),
        ("gnu-sparse", &["--format=gnu", "-S"], Some("old-GNU sparse")),
    ];
    for (name, flags, sparse) in cases {
        let tarball = d.join(format!("{name}.tar.gz"));
        run_ok(Command::new(&tar).args(flags).arg("-czf").arg(&tarball).arg("-C").arg(d).arg("disk.raw"));
        let (code, r) = inspect_json(&tarball);
        let pax = name.starts_with("pax");
        assert_eq!(code, Some(if pax { 1 } else { 0 }), "{name}: {r:#}");
        assert_eq!(r["tarball"]["members"][0]["name"], "disk.raw", "{name}");
        assert_eq!(r["tarball"]["members"][0]["sparse_format"], serde_json::json!(sparse), "{name}");
        assert_eq!(r["disk_size"], 1u64 << 30, "{name}");
        assert_eq!(r["kernel"]["name"], "hello.elf", "{name}");
        let gce_format = check(&r, "gce_format");
        assert_eq!(gce_format["ok"], !pax, "{name}: {gce_format}");
        if pax {
            assert!(gce_format["detail"].as_str().unwrap().contains("PAX headers, which GCE rejects"), "{name}");
            // Everything about the disk itself holds.
            let failed: Vec<&serde_json::Value> =
                r["checks"].as_array().unwrap().iter().filter(|c| c["ok"] == false).collect();
            assert_eq!(failed.len(), 1, "{name}: {failed:?}");
        }
        assert_eq!(r["gce_ready"], !pax, "{name}");
    }
}

#[test]
fn inspect_describes_a_syslinux_image() {
    let test = "inspect_describes_a_syslinux_image";
    for (program, package) in
        [("sfdisk", "fdisk"), ("mkdosfs", "dosfstools"), ("syslinux", "syslinux"), ("mcopy", "mtools"), ("tar", "tar")]
    {
        if tool(test, program, package).is_none() {
            return;
        }
    }
    if !Path::new("/usr/lib/syslinux/modules/bios/mboot.c32").is_file() {
        if tools_required() {
            panic!("{test}: SYSLINUX modules missing (install the Debian package syslinux-common)");
        }
        eprintln!("SKIPPED: {test}: SYSLINUX modules missing (install syslinux-common)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/syslinux-mkimage.sh");
    let image = dir.path().join("old.tar.gz");
    let mut cmd = Command::new("sh");
    cmd.arg(&script).arg("tar").arg(&image).arg(fixture("hello.elf")).args(["--ipv4=10.0.0.2/24", "x"]);
    cmd.env("PATH", format!("/usr/sbin:/sbin:{}", std::env::var("PATH").unwrap_or_default()));
    run_ok(&mut cmd);
    let (code, r) = inspect_json(&image);
    assert_eq!(code, Some(1), "a foreign image cannot pass our boot checks: {r:#}");
    assert_eq!(r["boot_loader"]["kind"], "syslinux");
    assert_eq!(r["kernel"]["name"], "unikernel.bin");
    assert_eq!(r["cmdline"], "unikernel.bin --ipv4=10.0.0.2/24 x");
    assert_eq!(check(&r, "boot_record")["detail"], "no unikernel-mkimage boot record; SYSLINUX found");
    assert_eq!(check(&r, "gce_format")["ok"], true);
    assert_eq!(r["gce_ready"], true, "GCE imports and boots SYSLINUX images");
    // The flaws the brief measured in the old tool are visible.
    assert!(check(&r, "filesystem")["detail"].as_str().unwrap().contains("hidden-sectors"), "{r:#}");
}

#[test]
fn inspect_refuses_what_is_not_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Deterministic pseudo-random bytes, an empty file, a truncated tarball, a gzip of garbage.
    let random = random_bytes(1 << 20, 0x2545_f491);
    std::fs::write(d.join("random.bin"), &random).unwrap();
    std::fs::write(d.join("empty.bin"), b"").unwrap();
    run_ok(mkimage().args(["build", "-q"]).arg(fixture("hello.elf")).arg("-o").arg(d.join("ok.tar.gz")));
    let tgz = std::fs::read(d.join("ok.tar.gz")).unwrap();
    std::fs::write(d.join("truncated.tar.gz"), &tgz[..tgz.len() / 2]).unwrap();
    let mut gz = Vec::new();
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
        e.write_all(&random).unwrap();
        e.finish().unwrap();
    }
    std::fs::write(d.join("garbage.tar.gz"), &gz).unwrap();
    for name in ["random.bin", "empty.bin", "truncated.tar.gz", "garbage.tar.gz", "missing.raw"] {
        let out = run(mkimage().arg("inspect").arg(d.join(name)));
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.starts_with("unikernel-mkimage: error: ") && err.contains(name), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        let (code, r) = inspect_json(&d.join(name));
        assert_eq!(code, Some(2));
        assert!(r["error"].is_string(), "{r:#}");
    }
}

#[test]
fn run_boots_the_demo_tarball() {
    let Some(qemu) = qemu::qemu("run_boots_the_demo_tarball") else { return };
    let dir = tempfile::tempdir().unwrap();
    let tgz = dir.path().join("demo.tar.gz");
    run_ok(mkimage().args(["build", "-q"]).arg(fixture("hello.elf")).arg("-o").arg(&tgz).args(["--", "Hello_run"]));
    let out = run(mkimage()
        .arg("run")
        .arg(&tgz)
        .args(["--accel", "tcg", "--timeout", "120", "--qemu"])
        .arg(&qemu)
        .args(["--", "-device", qemu::DEBUG_EXIT_DEVICE]));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(qemu::EXIT_PASS), "{text}{}", stderr(&out));
    assert!(text.contains("hello from a Multiboot kernel"), "{text}");
    assert!(text.contains("command line: 'hello.elf Hello_run'"), "{text}");
    // The default GCE-like disk is virtio-scsi; nothing was left in the temporary directory.
    assert_eq!(std::fs::metadata(&tgz).unwrap().len(), std::fs::read(&tgz).unwrap().len() as u64);
    // Without the debug-exit device the kernel powers off and QEMU exits with 0.
    let out = run(mkimage().arg("run").arg(&tgz).args(["--accel", "tcg", "--timeout", "120", "--disk-bus", "ide"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn run_times_out_and_reports_a_missing_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("halt.raw");
    let kernel = write_kernel(dir.path(), "halt.bin", 10); // halts forever
    run_ok(mkimage().args(["build", "-q"]).arg(&kernel).arg("-o").arg(&image));
    let out = run(mkimage().arg("run").arg(&image).args(["--qemu", "/nonexistent/qemu-system-x86_64"]));
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("qemu-system-x86"), "{}", stderr(&out));
    let out = run(mkimage().arg("run").arg(&image).env("PATH", dir.path()));
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("install the Debian package qemu-system-x86"), "{}", stderr(&out));
    let Some(qemu) = qemu::qemu("run_times_out_and_reports_a_missing_qemu") else { return };
    let started = std::time::Instant::now();
    let out = run(mkimage().arg("run").arg(&image).args(["--accel", "tcg", "--timeout", "3", "--qemu"]).arg(&qemu));
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(started.elapsed().as_secs() < 30);
    assert!(stderr(&out).contains("timeout"), "{}", stderr(&out));
}

/// A QEMU whose KVM fails the way nested KVM does here: under `-accel kvm` it reports a KVM
/// internal error and waits forever; under `-accel tcg` it "boots" and exits 0.
const FAKE_QEMU: &str = r#"#!/bin/sh
case " $* " in
*" -accel kvm "*)
    echo "KVM internal error. Suberror: 1" >&2
    echo "emulation failure" >&2
    exec sleep 600 ;;
*) echo "booted under tcg"; exit 0 ;;
esac
"#;

#[test]
fn run_notices_a_kvm_internal_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let qemu = dir.path().join("qemu-system-x86_64");
    std::fs::write(&qemu, FAKE_QEMU).unwrap();
    std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
    let image = dir.path().join("x.raw");
    run_ok(mkimage().args(["build", "-q"]).arg(fixture("hello.elf")).arg("-o").arg(&image));
    // Asked for KVM: one line, at once, telling what to do, and a status of its own.
    let started = std::time::Instant::now();
    let out = run(mkimage().arg("run").arg(&image).args(["--accel", "kvm", "--timeout", "60", "--qemu"]).arg(&qemu));
    assert!(started.elapsed().as_secs() < 20, "the timeout was not waited for");
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let err = stderr(&out);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("unikernel-mkimage: error:")).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("KVM internal error") && errors[0].contains("retry with --accel tcg"), "{errors:?}");
    // KVM chosen automatically: the run falls back to software emulation.
    let out = run(mkimage().arg("run").arg(&image).args(["--timeout", "60", "--qemu"]).arg(&qemu));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("booted under tcg"));
}

/// A QEMU that prints its arguments, one per line, and exits 0.
const ECHO_QEMU: &str = "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done\n";

#[test]
fn run_boots_uefi_images_from_a_private_copy_of_ovmf_variables() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let qemu = d.join("qemu-system-x86_64");
    std::fs::write(&qemu, ECHO_QEMU).unwrap();
    std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, vars) = (d.join("OVMF_CODE_4M.fd"), d.join("OVMF_VARS_4M.fd"));
    std::fs::write(&code, b"code").unwrap();
    std::fs::write(&vars, b"the system's variables").unwrap();
    let (uefi, hybrid) = (d.join("uefi.raw"), d.join("hybrid.raw"));
    run_ok(mkimage().args(["build", "-q", "--firmware", "uefi"]).arg(fixture("hello.elf")).arg("-o").arg(&uefi));
    run_ok(mkimage().args(["build", "-q"]).arg(fixture("hello.elf")).arg("-o").arg(&hybrid));
    let tmp = d.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let run_with = |image: &Path, extra: &[&str]| {
        run(mkimage()
            .arg("run")
            .arg(image)
            .args(["--accel", "tcg", "--qemu"])
            .arg(&qemu)
            .args(extra)
            .env("TMPDIR", &tmp))
    };
    // A UEFI-only image boots from OVMF by default; VARS (found beside CODE by its name) is
    // copied, and the copy is gone afterwards.
    let out = run_with(&uefi, &["--ovmf", code.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let args = stdout(&out);
    assert!(args.contains(&format!("if=pflash,format=raw,unit=0,readonly=on,file={}\n", code.display())), "{args}");
    let copy = args.lines().find_map(|l| l.strip_prefix("if=pflash,format=raw,unit=1,file=")).unwrap();
    assert!(copy.starts_with(tmp.to_str().unwrap()), "{copy}");
    assert_eq!(std::fs::read(&vars).unwrap(), b"the system's variables");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "the copy of the variables is removed");
    // A hybrid image boots from SeaBIOS unless asked.
    let out = run_with(&hybrid, &[]);
    assert!(!stdout(&out).contains("pflash"), "{}", stdout(&out));
    let out = run_with(&hybrid, &["--firmware", "uefi", "--ovmf", &format!("{},{}", code.display(), vars.display())]);
    assert!(stdout(&out).contains("pflash"), "{}", stdout(&out));
    // Missing firmware files are named.
    let out = run_with(&uefi, &["--ovmf", "/nonexistent/OVMF_CODE.fd,/nonexistent/OVMF_VARS.fd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("OVMF code /nonexistent/OVMF_CODE.fd is not a file"), "{}", stderr(&out));
    let out = run_with(&uefi, &["--ovmf", d.join("firmware.bin").to_str().unwrap()]);
    assert!(stderr(&out).contains("no variable store is known to go with"), "{}", stderr(&out));
    // And the real thing: QEMU and OVMF boot the UEFI-only image to the fixture's PASS.
    let Some(real) = qemu::qemu("run_boots_uefi_images") else { return };
    if qemu::ovmf("run_boots_uefi_images").is_none() {
        return;
    }
    let out = run(mkimage()
        .arg("run")
        .arg(&uefi)
        .args(["--accel", "tcg", "--timeout", "120", "--qemu"])
        .arg(&real)
        .args(["--", "-device", qemu::DEBUG_EXIT_DEVICE]));
    assert_eq!(out.status.code(), Some(qemu::EXIT_PASS), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("(UEFI loader): loading hello.elf"), "{}", stdout(&out));
}

#[test]
fn completions_manpage_version_and_help() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run_ok(mkimage().args(["completions", shell]));
        assert!(stdout(&out).contains("inspect"), "{shell}");
    }
    let man = stdout(&run_ok(mkimage().arg("manpage")));
    assert!(man.starts_with(".ie") || man.contains(".TH"), "{man}");
    assert!(man.contains("unikernel-mkimage"));
    let version = stdout(&run_ok(mkimage().arg("--version")));
    let uefi = mkimage_core::boot::uefi::loader_version();
    assert_eq!(
        version.trim(),
        format!("unikernel-mkimage {} (boot stage {}, UEFI loader {uefi})", env!("CARGO_PKG_VERSION"), stage())
    );
    for sub in ["build", "inspect", "run", "completions", "manpage"] {
        let help = stdout(&run_ok(mkimage().args([sub, "--help"])));
        assert!(help.contains("Example"), "{sub} --help has no examples:\n{help}");
    }
    let out = run(mkimage().arg("frobnicate"));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verbose_build_prints_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        mkimage()
            .args(["build", "-v", "--partition-table", "gpt"])
            .arg(fixture("higherhalf64.elf"))
            .arg("-o")
            .arg(dir.path().join("x.raw")),
    );
    let text = stdout(&out);
    for needle in [
        "plan:",
        "GPT disk GUID",
        "BIOS boot partition: LBA 64-2047",
        "filesystem: FAT32",
        "kernel: ELF64, entry point 0x0010004c",
        "boot record: 2 run(s)",
        "command line: higherhalf64.elf",
        "unikernel-mkimage: wrote",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}
