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

use common::qemu::{self, Disk, EXIT_PASS};
use libtest_mimic::{Arguments, Failed, Trial};
use mkimage_core::boot::bios::STAGE2_SECTORS;
use mkimage_core::boot::record::{BootRecord, FLAG_QUIET, ZeroRange};
use mkimage_core::bytes::SECTOR_SIZE;
use mkimage_core::{Image, ImageBuilder, Kernel, PartitionTable};

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

/// A fixture kernel (see fixtures/src) and the arguments it is booted with.
struct Fixture {
    name: &'static str,
    file: &'static str,
    args: &'static [&'static str],
}

const FIXTURES: &[Fixture] = &[
    Fixture { name: "hello", file: "hello.elf", args: &["Hello_Solo5", "--ipv4=10.0.0.2/24"] },
    Fixture { name: "multiseg32", file: "multiseg32.elf", args: &["a"] },
    Fixture { name: "higherhalf64", file: "higherhalf64.elf", args: &[] },
    Fixture { name: "large", file: "large.bin", args: &["big"] },
];

/// Longest a booting cell may take (the 32 MiB fixture over PIO IDE takes about 10 s alone).
const BOOT_DEADLINE: Duration = Duration::from_secs(180);
/// Longest a failure test may take to print its message.
const FAILURE_DEADLINE: Duration = Duration::from_secs(60);
/// Prefix of every stage 2 failure line.
const STAGE2_ERROR: &str = "unikernel-mkimage boot stage: error: ";

fn fixture_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(file)
}

fn build(fixture: &Fixture, table: PartitionTable, quiet: bool) -> Image {
    let kernel = Kernel::from_path(fixture_path(fixture.file)).unwrap();
    ImageBuilder::new(kernel)
        .args(fixture.args.iter().copied())
        .partition_table(table)
        .quiet_boot(quiet)
        .build()
        .unwrap()
}

fn write(image: &Image, path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    image.write_raw_file(&mut file).unwrap();
}

/// What a passing boot of `fixture` from `image` prints.
fn expected_lines(fixture: &Fixture, image: &Image, quiet: bool) -> Vec<String> {
    let plan = image.plan();
    let size = std::fs::metadata(fixture_path(fixture.file)).unwrap().len();
    let mut lines = vec![
        format!("boot device: drive 80, partition {}, sub-partitions ff ff", plan.layout.fat_partition_index()),
        format!("command line: '{}'", plan.cmdline),
        format!("boot loader: unikernel-mkimage {}", mkimage_core::TOOL_VERSION),
        "PASS".to_string(),
    ];
    if !quiet {
        lines.push(format!(
            "unikernel-mkimage {} (boot stage {}): loading {} ({size} bytes)",
            mkimage_core::TOOL_VERSION,
            mkimage_core::boot::bios::stage_version(),
            fixture.file
        ));
    }
    lines
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

/// Overwrites bytes of an image file.
fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

fn read(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).unwrap();
    buf
}

/// How many random records the fuzz loop boots.
const FUZZ_RECORDS: usize = 24;

/// Records derived from `base` with a valid CRC but an unsafe plan: the cases a damaged or
/// hostile record must not get past (a run into the loader's memory, a zero range over it, entry
/// 0, a run length of FFFFFFFFh...), then random mutations of one field each, kept when the
/// host's check of the plan (which mirrors stage 2's) refuses them.
fn crafted_records(base: &BootRecord) -> Vec<(String, BootRecord)> {
    let mut out = Vec::new();
    let mut named = |name: &str, change: &dyn Fn(&mut BootRecord)| {
        let mut r = base.clone();
        change(&mut r);
        out.push((name.to_string(), r));
    };
    named("run_into_loader_memory", &|r| r.runs[0].dest = 0x1_0000);
    named("zero_range_over_loader", &|r| r.zeros.push(ZeroRange { dest: 0x8000, len: 0x1000 }));
    named("entry_zero", &|r| r.entry = 0);
    named("run_length_ffffffff", &|r| r.runs[0].len = u32::MAX);
    named("run_beyond_4gib", &|r| {
        r.runs[0].dest = u32::MAX - r.runs[0].len / 2;
        r.entry = r.runs[0].dest;
    });
    named("run_outside_kernel_file", &|r| r.runs[0].lba = r.kernel_lba + 100_000);
    named("overlapping_ranges", &|r| r.zeros.push(ZeroRange { dest: r.runs[0].dest, len: 16 }));
    named("unknown_flag", &|r| r.flags |= 1 << 7);
    named("video_flag", &|r| r.flags |= mkimage_core::boot::record::FLAG_VIDEO);
    let mut random = mkimage_core::testkit::random_bytes(FUZZ_RECORDS * 64, 0x5eed_1234).into_iter();
    let mut next = move || u32::from_le_bytes(std::array::from_fn(|_| random.next().unwrap_or(0)));
    let mut fuzzed = 0;
    while fuzzed < FUZZ_RECORDS {
        let mut r = base.clone();
        let value = next();
        // Values near the boundaries are likelier to find a gap between host and stage 2.
        let near = |x: u32| x.wrapping_add(value % 64).wrapping_sub(32);
        match next() % 8 {
            0 => r.runs[0].dest = if value % 2 == 0 { value } else { near(0x10_0000) },
            1 => r.runs[0].len = if value % 2 == 0 { value } else { near(r.runs[0].len) },
            2 => r.runs[0].skip = value as u16,
            3 => r.runs[0].sectors = near(r.runs[0].sectors),
            4 => r.runs[0].lba = u64::from(near(r.kernel_lba as u32)),
            5 => r.zeros.push(ZeroRange { dest: value, len: next() % 0x10_0000 }),
            6 => r.entry = if value % 2 == 0 { value } else { near(r.runs[0].dest) },
            _ => r.flags = value,
        }
        if r.check_plan(FLAG_QUIET).is_err() {
            out.push((format!("fuzz_{fuzzed:02}"), r));
            fuzzed += 1;
        }
    }
    out
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
    let kernel = std::fs::read(fixture_path(hello.file)).unwrap();
    let needle = b"hello from a Multiboot kernel";
    let at = kernel.windows(needle.len()).position(|w| w == needle).unwrap() as u64;
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
    for (name, record) in crafted_records(&base) {
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
