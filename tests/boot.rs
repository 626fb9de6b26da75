//! The boot matrix: every fixture kernel, built into an MBR and a GPT image, boots under QEMU
//! (software emulation) on every cell of machine x boot disk x memory size, and must report
//! PASS. Then the boot stage's failure paths: each damage is reported on COM1 in one line and
//! the kernel is never entered.
//!
//! Runs with its own harness (libtest-mimic) so that each cell is a named test that can be
//! filtered (`cargo test --test boot -- q35-nvme`) and run in parallel. Needs
//! `qemu-system-x86_64`; without it every test is reported as ignored after a SKIPPED line,
//! unless MKIMAGE_REQUIRE_TOOLS=1.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::fixtures::{self, FIXTURES, Fixture, build, crafted_records, offset_in_fixture, patch, read, write};
use common::qemu::{self, Disk, EXIT_PASS};
use libtest_mimic::{Arguments, Failed, Trial};
use mkimage_core::boot::bios::STAGE2_SECTORS;
use mkimage_core::boot::record::{BootRecord, FLAG_QUIET};
use mkimage_core::bytes::SECTOR_SIZE;
use mkimage_core::{Image, PartitionTable};

/// The machine types of the matrix. Adding a line adds its cells.
const MACHINES: &[&str] = &[
    "pc",  // i440fx + PIIX, GCE's legacy machine type
    "q35", // ICH9
];

/// How the boot disk is attached. Adding a line adds its cells.
const DISKS: &[Disk] = &[
    Disk::Ide,
    Disk::Ahci,
    Disk::VirtioScsi,
    Disk::VirtioScsi4k, // GCE's boot disk: virtio-scsi, 4096-byte physical sectors
    Disk::VirtioBlk,
    Disk::Nvme,
];

/// Guest memory sizes. Adding a line adds its cells.
const MEMORY: &[&str] = &[
    "64M", "512M", "4608M", // RAM above 4 GiB, and a PCI hole below it in the memory map
];

/// Partition tables. Adding a line adds its cells.
const TABLES: &[PartitionTable] = &[PartitionTable::Mbr, PartitionTable::Gpt];

/// Longest a booting cell may take (the 32 MiB fixture over PIO IDE takes about 10 s alone).
const BOOT_DEADLINE: Duration = Duration::from_secs(180);
/// Longest a failure test may take to print its message.
const FAILURE_DEADLINE: Duration = Duration::from_secs(60);
/// Prefix of every stage 2 failure line.
const STAGE2_ERROR: &str = "unikernel-mkimage boot stage: error: ";

/// What a passing boot of `fixture` from `image` prints through the BIOS stage.
fn expected_lines(fixture: &Fixture, image: &Image, quiet: bool) -> Vec<String> {
    let stage = format!("boot stage {}", mkimage_core::boot::bios::stage_version());
    fixtures::expected_lines(fixture, image, quiet, &stage)
}

fn check_boot(run: &qemu::Run, expected: &[String], quiet: bool) -> Result<(), Failed> {
    if run.status != Some(EXIT_PASS) {
        return Err(format!("the fixture did not pass\n{}", run.report()).into());
    }
    for line in expected {
        if !run.serial.lines().any(|l| l == line) {
            return Err(format!("missing line {line:?}\n{}", run.report()).into());
        }
    }
    if run.serial.contains("FAIL") {
        return Err(format!("a check failed\n{}", run.report()).into());
    }
    if quiet && run.serial.contains("): loading") {
        return Err(format!("the quiet boot stage printed its start line\n{}", run.report()).into());
    }
    Ok(())
}

/// Boots a damaged image and checks that the boot stage says `message` once, in one line, and
/// never starts the kernel.
fn expect_failure(qemu: &Path, image: &Path, memory: &str, message: &str) -> Result<(), Failed> {
    let mut args = qemu::base_args("pc", memory);
    args.extend(Disk::VirtioScsi.args(image));
    let run = qemu::run(qemu, &args, FAILURE_DEADLINE, Some(message));
    let hits = run.serial.lines().filter(|l| l.contains(message)).count();
    if hits != 1 {
        return Err(format!("expected the line {message:?} exactly once, saw it {hits} times\n{}", run.report()).into());
    }
    if run.serial.contains("fixture") {
        return Err(format!("the kernel was entered despite the failure\n{}", run.report()).into());
    }
    // Besides the boot stage's start line, the failure is the only thing printed.
    let other = run.serial.lines().filter(|l| !l.trim().is_empty() && !l.contains("): loading")).count();
    if other != 1 {
        return Err(format!("expected one line besides the start line, saw {other}\n{}", run.report()).into());
    }
    Ok(())
}

fn failure_trials(qemu: &Path, dir: &Path) -> Vec<Trial> {
    let hello = &FIXTURES[0];
    let image = build(hello, PartitionTable::Mbr, false);
    let layout = image.plan().layout.clone();
    let boot_area = layout.boot_area.expect("hybrid images carry the BIOS stage");
    let record_offset = (boot_area.start + STAGE2_SECTORS) * SECTOR_SIZE;
    // A fresh copy of the image for each damage (written again: copying a sparse gigabyte
    // file can cost seconds where writing it costs milliseconds).
    let copy = |name: &str| {
        let path = dir.join(name);
        write(&image, &path);
        path
    };
    let mut trials = Vec::new();
    let mut add = |name: &str, path: PathBuf, memory: &'static str, message: String| {
        let qemu = qemu.to_owned();
        trials.push(Trial::test(format!("failure::{name}"), move || expect_failure(&qemu, &path, memory, &message)));
    };

    // A flipped byte in the boot record (inside the command line).
    let path = copy("record.raw");
    let cmdline_at =
        record_offset + u64::from(u16::from_le_bytes(read(&path, record_offset + 0x24, 2).try_into().unwrap()));
    let byte = read(&path, cmdline_at + 3, 1)[0];
    patch(&path, cmdline_at + 3, &[byte ^ 0x01]);
    add("damaged_boot_record", path, "128M", format!("{STAGE2_ERROR}boot record damaged"));

    // A flipped byte in stage 2, in its zero padding and in its first instruction: the MBR code
    // checks stage 2's CRC-32 before running any of it.
    for (name, at) in [("stage2_padding", STAGE2_SECTORS * SECTOR_SIZE - 16), ("stage2_entry", 0)] {
        let path = copy(&format!("{name}.raw"));
        let byte = read(&path, boot_area.start * SECTOR_SIZE + at, 1)[0];
        patch(&path, boot_area.start * SECTOR_SIZE + at, &[byte ^ 0x5a]);
        add(&format!("damaged_{name}"), path, "128M", "unikernel-mkimage: boot stage missing or damaged".into());
    }

    // No boot stage at all: the MBR code says so.
    let path = copy("missing.raw");
    patch(&path, boot_area.start * SECTOR_SIZE, &[0u8; 512]);
    add("missing_boot_stage", path, "128M", "unikernel-mkimage: boot stage missing or damaged".into());

    // The kernel file edited in place after the build (its greeting changed).
    let path = copy("edited.raw");
    let kernel_at = layout.kernel.sectors.byte_offset();
    let at = offset_in_fixture(hello.file, b"hello from a Multiboot kernel");
    patch(&path, kernel_at + at, b"HELLO");
    add(
        "kernel_changed_after_build",
        path,
        "128M",
        format!("{STAGE2_ERROR}kernel on disk does not match the boot record"),
    );

    // A run pointing past the end of the disk: the BIOS read fails; the boot stage reports the
    // LBA and the BIOS status after its retries.
    let path = copy("unreadable.raw");
    let mut record = BootRecord::decode(&read(&path, record_offset, 8192)).unwrap();
    record.runs[0].lba = 1 << 40;
    record.kernel_lba = 1 << 40;
    patch(&path, record_offset, &record.encode().unwrap());
    add(
        "disk_read_error",
        path,
        "128M",
        format!("{STAGE2_ERROR}disk read failed at LBA 0x0000010000000000 (BIOS status 0x"),
    );

    // Records with a correct CRC whose plan is unsafe: each is refused in one line.
    let base = BootRecord::decode(&read(&copy("base.raw"), record_offset, 8192)).unwrap();
    for (name, record) in crafted_records(&base, FLAG_QUIET) {
        let err = record.check_plan(FLAG_QUIET).expect_err("crafted records are invalid");
        let path = copy(&format!("{name}.raw"));
        patch(&path, record_offset, &record.encode().unwrap());
        add(&format!("record::{name}"), path, "128M", format!("{STAGE2_ERROR}{err}"));
    }

    // A kernel whose 16 MiB segment does not fit in 16 MiB of RAM.
    let multiseg = &FIXTURES[1];
    let path = dir.join("small-memory.raw");
    write(&build(multiseg, PartitionTable::Mbr, false), &path);
    add(
        "memory_map_does_not_cover_the_kernel",
        path,
        "16M",
        format!("{STAGE2_ERROR}memory map does not cover 0x01000000-"),
    );
    trials
}

fn main() {
    let args = Arguments::from_args();
    let Some(qemu) = qemu::qemu("boot matrix") else {
        // tool() printed the SKIPPED line; list the tests as ignored so nothing passes silently.
        let trials =
            FIXTURES.iter().map(|f| Trial::test(format!("{}::*", f.name), || Ok(())).with_ignored_flag(true)).collect();
        libtest_mimic::run(&args, trials).exit();
    };
    let dir = tempfile::tempdir().unwrap();
    let mut trials = Vec::new();
    for fixture in FIXTURES {
        for &table in TABLES {
            let image = build(fixture, table, false);
            let path = dir.path().join(format!("{}-{table}.raw", fixture.name));
            write(&image, &path);
            let expected = expected_lines(fixture, &image, false);
            for machine in MACHINES {
                for &disk in DISKS {
                    for memory in MEMORY {
                        let name = format!("{}::{machine}-{}-{memory}-{table}", fixture.name, disk.name());
                        let (qemu, path, expected) = (qemu.clone(), path.clone(), expected.clone());
                        trials.push(Trial::test(name, move || {
                            let mut args = qemu::base_args(machine, memory);
                            args.extend(disk.args(&path));
                            let run = qemu::run(&qemu, &args, BOOT_DEADLINE, None);
                            check_boot(&run, &expected, false)
                        }));
                    }
                }
            }
        }
    }
    // The quiet boot stage prints nothing of its own on success.
    let quiet = build(&FIXTURES[0], PartitionTable::Gpt, true);
    let quiet_path = dir.path().join("quiet.raw");
    write(&quiet, &quiet_path);
    let expected = expected_lines(&FIXTURES[0], &quiet, true);
    let q = qemu.clone();
    trials.push(Trial::test("quiet::hello", move || {
        let mut args = qemu::base_args("pc", "128M");
        args.extend(Disk::VirtioScsi4k.args(&quiet_path));
        let run = qemu::run(&q, &args, BOOT_DEADLINE, None);
        check_boot(&run, &expected, true)
    }));
    trials.extend(failure_trials(&qemu, dir.path()));
    let conclusion = libtest_mimic::run(&args, trials);
    drop(dir);
    conclusion.exit();
}
