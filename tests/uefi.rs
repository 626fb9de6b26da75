//! The UEFI boot matrix: the same hybrid images the SeaBIOS matrix boots (tests/boot.rs), booted
//! from OVMF on every cell of machine x boot disk x memory size x partition table, each fixture
//! checking the whole Multiboot entry contract; the ACPI fixture powering off through the RSDP
//! found where Solo5 looks, under both firmwares; the video fixture getting a framebuffer; then
//! the UEFI loader's failure paths, each reported once, in one line, without entering the kernel.
//!
//! Runs with its own harness (libtest-mimic), like tests/boot.rs: `cargo test --test uefi --
//! q35-nvme`. Needs `qemu-system-x86_64` and OVMF (Debian packages `qemu-system-x86`, `ovmf`);
//! without them every test is reported as ignored after a SKIPPED line, unless
//! MKIMAGE_REQUIRE_TOOLS=1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::fixtures::{
    self, ACPI, FIXTURES, Fixture, VIDEO, build, build_for, crafted_records, fixture_path, offset_in_fixture, patch,
    read, write,
};
use common::qemu::{self, Disk, EXIT_PASS, Ovmf};
use libtest_mimic::{Arguments, Failed, Trial};
use mkimage_core::boot::record::{BootRecord, FLAG_QUIET, FLAG_VIDEO};
use mkimage_core::boot::uefi;
use mkimage_core::{Firmware, Image, PartitionTable};

/// The machine types of the matrix.
const MACHINES: &[&str] = &["pc", "q35"];

/// How the boot disk is attached (OVMF has drivers for each).
const DISKS: &[Disk] = &[Disk::VirtioScsi4k, Disk::Nvme, Disk::Ahci, Disk::VirtioBlk];

/// Guest memory sizes: small, GCE-like, and RAM above 4 GiB.
const MEMORY: &[&str] = &["128M", "512M", "5G"];

/// Partition tables.
const TABLES: &[PartitionTable] = &[PartitionTable::Mbr, PartitionTable::Gpt];

/// Longest a booting cell may take (OVMF starts in about 4 s under TCG).
const BOOT_DEADLINE: Duration = Duration::from_secs(240);
/// Longest a failure test may take to print its message.
const FAILURE_DEADLINE: Duration = Duration::from_secs(120);
/// Prefix of every failure line of the UEFI loader.
const UEFI_ERROR: &str = "unikernel-mkimage UEFI loader: error: ";
/// What the loader says when a kernel range lies on memory the firmware keeps for ACPI.
const NVS_REFUSAL: &str = "where the kernel must be loaded, is ACPI non-volatile storage in the firmware's memory map";

/// What the tests share: QEMU, OVMF and a directory for images and variable stores.
#[derive(Clone)]
struct Env {
    qemu: PathBuf,
    ovmf: Ovmf,
    dir: PathBuf,
}

impl Env {
    /// Boots from OVMF with a private copy of its variable store (removed afterwards).
    fn run_uefi(
        &self,
        machine: &str,
        memory: &str,
        devices: &[String],
        deadline: Duration,
        stop_at: Option<&str>,
    ) -> qemu::Run {
        let mut args = qemu::uefi_args(machine, memory, &self.ovmf, &self.dir);
        let vars = args
            .iter()
            .find_map(|a| a.strip_prefix("if=pflash,format=raw,unit=1,file="))
            .map(|p| PathBuf::from(p.replace(",,", ",")))
            .expect("the variable store's drive");
        args.extend(devices.iter().cloned());
        let run = qemu::run(&self.qemu, &args, deadline, stop_at);
        let _ = std::fs::remove_file(vars);
        run
    }

    fn run_bios(&self, machine: &str, memory: &str, devices: &[String], deadline: Duration) -> qemu::Run {
        let mut args = qemu::base_args(machine, memory);
        args.extend(devices.iter().cloned());
        qemu::run(&self.qemu, &args, deadline, None)
    }
}

/// What a passing boot of `fixture` from `image` prints through the UEFI loader.
fn expected_lines(fixture: &Fixture, image: &Image, quiet: bool) -> Vec<String> {
    fixtures::expected_lines(fixture, image, quiet, "UEFI loader")
}

fn check_boot(run: &qemu::Run, expected: &[String], status: i32, quiet: bool) -> Result<(), Failed> {
    if run.status != Some(status) {
        return Err(format!("the fixture did not pass (QEMU status {status} expected)\n{}", run.report()).into());
    }
    for line in expected {
        if !run.serial.lines().any(|l| l == line) {
            return Err(format!("missing line {line:?}\n{}", run.report()).into());
        }
    }
    if run.serial.contains("FAIL") || run.serial.contains(UEFI_ERROR) {
        return Err(format!("a check failed\n{}", run.report()).into());
    }
    if quiet && run.serial.contains("(UEFI loader): loading") {
        return Err(format!("the quiet loader printed its start line\n{}", run.report()).into());
    }
    Ok(())
}

/// Checks that the loader said `message` once, in one line, said nothing else in error, and
/// never started the kernel.
fn check_refusal(run: &qemu::Run, message: &str) -> Result<(), Failed> {
    let hits = run.serial.lines().filter(|l| l.contains(message)).count();
    if hits != 1 {
        return Err(format!("expected the line {message:?} exactly once, saw it {hits} times\n{}", run.report()).into());
    }
    let errors = run.serial.lines().filter(|l| l.contains(UEFI_ERROR)).count();
    if errors != 1 {
        return Err(format!("expected one error line from the loader, saw {errors}\n{}", run.report()).into());
    }
    if run.serial.contains("fixture") {
        return Err(format!("the kernel was entered despite the failure\n{}", run.report()).into());
    }
    Ok(())
}

/// The matrix: every fixture from a hybrid image on every cell. The large fixture (32 MiB at
/// 1 MiB) cannot fit under OVMF, which keeps ACPI NVS memory at 8 MiB: the loader refuses it in
/// one line, which is what its cells check.
fn matrix_trials(env: &Env) -> Vec<Trial> {
    let mut trials = Vec::new();
    for fixture in FIXTURES {
        for &table in TABLES {
            let image = build(fixture, table, false);
            let path = env.dir.join(format!("{}-{table}.raw", fixture.name));
            write(&image, &path);
            let expected = expected_lines(fixture, &image, false);
            let refused = fixture.name == "large";
            for machine in MACHINES {
                for &disk in DISKS {
                    for memory in MEMORY {
                        let name = format!("{}::{machine}-{}-{memory}-{table}", fixture.name, disk.name());
                        let (env, path, expected) = (env.clone(), path.clone(), expected.clone());
                        trials.push(Trial::test(name, move || {
                            let devices = disk.args(&path);
                            if refused {
                                let run = env.run_uefi(machine, memory, &devices, FAILURE_DEADLINE, Some(NVS_REFUSAL));
                                return check_refusal(&run, NVS_REFUSAL);
                            }
                            let run = env.run_uefi(machine, memory, &devices, BOOT_DEADLINE, None);
                            check_boot(&run, &expected, EXIT_PASS, false)
                        }));
                    }
                }
            }
        }
    }
    trials
}

/// The quiet loader, ACPI under both firmwares, and the video fixture.
fn feature_trials(env: &Env) -> Vec<Trial> {
    let mut trials = Vec::new();
    let quiet = build(&FIXTURES[0], PartitionTable::Gpt, true);
    let quiet_path = env.dir.join("quiet.raw");
    write(&quiet, &quiet_path);
    let expected = expected_lines(&FIXTURES[0], &quiet, true);
    let e = env.clone();
    trials.push(Trial::test("quiet::hello", move || {
        let run = e.run_uefi("pc", "256M", &Disk::VirtioScsi4k.args(&quiet_path), BOOT_DEADLINE, None);
        check_boot(&run, &expected, EXIT_PASS, true)
    }));

    // A kernel name beyond ASCII: the loader opens the file by its name in UCS-2, converted
    // from the record's UTF-8.
    let kernel = mkimage_core::Kernel::from_path(fixture_path(FIXTURES[0].file)).unwrap();
    let image = mkimage_core::ImageBuilder::new(kernel).name("héllo-ünïcode-€.elf").args(["x"]).build().unwrap();
    let path = env.dir.join("unicode.raw");
    write(&image, &path);
    let expected = vec!["command line: 'héllo-ünïcode-€.elf x'".to_string(), "PASS".to_string()];
    let e = env.clone();
    trials.push(Trial::test("unicode_name::hello", move || {
        let run = e.run_uefi("q35", "256M", &Disk::VirtioScsi4k.args(&path), BOOT_DEADLINE, None);
        check_boot(&run, &expected, EXIT_PASS, false)
    }));

    // ACPI: the fixture powers the machine off (QEMU exits with status 0) after finding the
    // RSDP in E0000h-FFFFFh: SeaBIOS's own, or the UEFI loader's copy.
    for &table in TABLES {
        let image = build(&ACPI, table, false);
        let path = env.dir.join(format!("acpi-{table}.raw"));
        write(&image, &path);
        for machine in MACHINES {
            for firmware in ["seabios", "ovmf"] {
                let (e, path) = (env.clone(), path.clone());
                trials.push(Trial::test(format!("acpi::{firmware}-{machine}-{table}"), move || {
                    let devices = Disk::VirtioScsi4k.args(&path);
                    let run = if firmware == "ovmf" {
                        e.run_uefi(machine, "256M", &devices, BOOT_DEADLINE, None)
                    } else {
                        e.run_bios(machine, "256M", &devices, BOOT_DEADLINE)
                    };
                    let mut expected = vec!["PASS".to_string()];
                    if firmware == "ovmf" {
                        expected.push("RSDP at 000e0000".into());
                    }
                    check_boot(&run, &expected, 0, false)
                }));
            }
        }
    }

    // Video: only a UEFI-only image can carry it; the framebuffer is the GOP's.
    for &table in TABLES {
        let image = build_for(&VIDEO, table, Firmware::Uefi, false);
        let path = env.dir.join(format!("video-{table}.raw"));
        write(&image, &path);
        let expected = expected_lines(&VIDEO, &image, false);
        for machine in MACHINES {
            let (e, path, expected) = (env.clone(), path.clone(), expected.clone());
            trials.push(Trial::test(format!("video::{machine}-{table}"), move || {
                let mut devices = Disk::VirtioScsi4k.args(&path);
                devices.extend(["-device".to_string(), "VGA".to_string()]);
                let run = e.run_uefi(machine, "256M", &devices, BOOT_DEADLINE, None);
                check_boot(&run, &expected, EXIT_PASS, false)
            }));
        }
    }
    trials
}

/// Runs mtools `tool` on the FAT partition of `image` at `offset`.
fn mtools(tool: &Path, image: &Path, offset: u64, args: &[&str]) {
    let target = format!("{}@@{offset}", image.display());
    common::run_ok(Command::new(tool).arg("-i").arg(target).args(args));
}

/// The loader's failure paths, each on the hello fixture's hybrid MBR image unless said.
fn failure_trials(env: &Env) -> Vec<Trial> {
    let hello = &FIXTURES[0];
    let image = build(hello, PartitionTable::Mbr, false);
    let layout = image.plan().layout.clone();
    let partition = layout.fat_partition.byte_offset();
    let loader = layout.loader.as_ref().expect("hybrid images carry the UEFI loader");
    let record_at = loader.sectors.byte_offset() + uefi::record_range().unwrap().start as u64;
    let copy = |name: &str| {
        let path = env.dir.join(name);
        write(&image, &path);
        path
    };
    let mut trials = Vec::new();
    let mut add = |name: &str, path: PathBuf, memory: &'static str, devices: Vec<String>, message: String| {
        let e = env.clone();
        trials.push(Trial::test(format!("failure::{name}"), move || {
            let mut all = Disk::VirtioScsi4k.args(&path);
            all.extend(devices);
            let run = e.run_uefi("pc", memory, &all, FAILURE_DEADLINE, Some(&message));
            check_refusal(&run, &message)
        }));
    };

    // The kernel edited in place after the build.
    let path = copy("edited.raw");
    let at = offset_in_fixture(hello.file, b"hello from a Multiboot kernel");
    patch(&path, layout.kernel.sectors.byte_offset() + at, b"HELLO");
    add(
        "kernel_changed_after_build",
        path,
        "256M",
        vec![],
        format!("{UEFI_ERROR}kernel on disk does not match the boot record"),
    );

    // The kernel file deleted, or replaced by a shorter one, with mtools.
    let mdel = common::tool("uefi failure::kernel_missing", "mdel", "mtools");
    let mcopy = common::tool("uefi failure::kernel_size", "mcopy", "mtools");
    if let (Some(mdel), Some(mcopy)) = (mdel, mcopy) {
        let path = copy("missing.raw");
        mtools(&mdel, &path, partition, &[&format!("::{}", hello.file)]);
        add(
            "kernel_missing",
            path,
            "256M",
            vec![],
            format!("{UEFI_ERROR}kernel file \\{} not found on the loader's partition", hello.file),
        );
        let path = copy("resized.raw");
        let short = env.dir.join("short.bin");
        std::fs::write(&short, b"not the kernel").unwrap();
        mtools(&mcopy, &path, partition, &["-o", short.to_str().unwrap(), &format!("::{}", hello.file)]);
        let size = std::fs::metadata(fixture_path(hello.file)).unwrap().len();
        add(
            "kernel_size_changed",
            path,
            "256M",
            vec![],
            format!("{UEFI_ERROR}kernel file \\{} is 14 bytes but the boot record says {size}", hello.file),
        );
    }

    // A flipped byte in the loader's copy of the record (inside the command line).
    let path = copy("record.raw");
    let cmdline_at = record_at + u64::from(u16::from_le_bytes(read(&path, record_at + 0x24, 2).try_into().unwrap()));
    let byte = read(&path, cmdline_at + 3, 1)[0];
    patch(&path, cmdline_at + 3, &[byte ^ 0x01]);
    add("damaged_boot_record", path, "256M", vec![], format!("{UEFI_ERROR}boot record damaged"));

    // Records with a correct CRC whose plan is unsafe, written into the loader's record area:
    // each is refused in the very words the host's check predicts.
    let base = BootRecord::decode(&read(&copy("base.raw"), record_at, uefi::RECORD_MAX)).unwrap();
    for (name, record) in crafted_records(&base, FLAG_QUIET | FLAG_VIDEO) {
        let err = record.check_plan(FLAG_QUIET | FLAG_VIDEO).expect_err("crafted records are invalid");
        let path = copy(&format!("{name}.raw"));
        let mut bytes = record.encode().unwrap();
        bytes.resize(uefi::RECORD_MAX, 0);
        patch(&path, record_at, &bytes);
        add(&format!("record::{name}"), path, "256M", vec![], format!("{UEFI_ERROR}{err}"));
    }

    // A kernel at 1 GiB with 128 MiB of RAM: the range is in no entry of the firmware's map.
    let high = env.dir.join("high.raw");
    let kernel = high_kernel(0x4000_0000);
    let image = mkimage_core::ImageBuilder::new(mkimage_core::Kernel::from_bytes("high.bin", kernel)).build().unwrap();
    write(&image, &high);
    add(
        "kernel_range_not_in_memory_map",
        high,
        "128M",
        vec![],
        format!(
            "{UEFI_ERROR}memory 0x40000000-0x40000fff, where the kernel must be loaded, is not in the firmware's memory map"
        ),
    );

    // The video fixture on a machine without a display adapter: no GOP.
    let path = env.dir.join("video-no-gop.raw");
    write(&build_for(&VIDEO, PartitionTable::Gpt, Firmware::Uefi, false), &path);
    add(
        "no_graphics_output",
        path,
        "256M",
        vec![],
        format!("{UEFI_ERROR}the kernel requires a graphics mode, but the firmware has no graphics output (GOP)"),
    );
    trials
}

/// A kernel of one page loaded at `addr` (a.out kludge), entered at its first byte.
fn high_kernel(addr: u32) -> Vec<u8> {
    let mut kernel = mkimage_core::testkit::multiboot_header(
        mkimage_core::testkit::KLUDGE_FLAGS,
        Some([addr, addr, 0, 0, addr + 0x40]),
    );
    kernel.resize(4096, 0xf4); // hlt
    kernel
}

fn main() {
    let args = Arguments::from_args();
    let tools = qemu::qemu("uefi boot matrix").and_then(|q| qemu::ovmf("uefi boot matrix").map(|o| (q, o)));
    let Some((qemu, ovmf)) = tools else {
        // The SKIPPED line is printed; list the tests as ignored so nothing passes silently.
        let trials = ["matrix::*", "quiet::*", "unicode_name::*", "acpi::*", "video::*", "failure::*"]
            .iter()
            .map(|n| Trial::test(*n, || Ok(())).with_ignored_flag(true))
            .collect();
        libtest_mimic::run(&args, trials).exit();
    };
    let dir = tempfile::tempdir().unwrap();
    let env = Env { qemu, ovmf, dir: dir.path().to_path_buf() };
    let mut trials = matrix_trials(&env);
    trials.extend(feature_trials(&env));
    trials.extend(failure_trials(&env));
    let conclusion = libtest_mimic::run(&args, trials);
    drop(dir);
    conclusion.exit();
}
