//! The fixture kernels and what the boot tests (SeaBIOS and OVMF) do with them: build images,
//! write them, patch them, and craft boot records the boot stages must refuse.

use std::path::{Path, PathBuf};

use mkimage_core::boot::record::{BootRecord, ZeroRange};
use mkimage_core::{Firmware, Image, ImageBuilder, Kernel, PartitionTable};

/// A fixture kernel (see fixtures/src) and the arguments it is booted with.
pub struct Fixture {
    pub name: &'static str,
    pub file: &'static str,
    pub args: &'static [&'static str],
}

/// The fixtures of the boot matrix.
pub const FIXTURES: &[Fixture] = &[
    Fixture { name: "hello", file: "hello.elf", args: &["Hello_Solo5", "--ipv4=10.0.0.2/24"] },
    Fixture { name: "multiseg32", file: "multiseg32.elf", args: &["a"] },
    Fixture { name: "higherhalf64", file: "higherhalf64.elf", args: &[] },
    Fixture { name: "large", file: "large.bin", args: &["big"] },
];

/// The fixture that powers off through ACPI, after finding the RSDP where Solo5 looks.
pub const ACPI: Fixture = Fixture { name: "acpi", file: "acpi.bin", args: &[] };

/// The fixture that requires a graphics mode.
pub const VIDEO: Fixture = Fixture { name: "video", file: "video.bin", args: &[] };

pub fn fixture_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(file)
}

/// Builds `fixture` into an image for `firmware` (the tests' default is the builder's, hybrid).
pub fn build_for(fixture: &Fixture, table: PartitionTable, firmware: Firmware, quiet: bool) -> Image {
    let kernel = Kernel::from_path(fixture_path(fixture.file)).unwrap();
    ImageBuilder::new(kernel)
        .args(fixture.args.iter().copied())
        .partition_table(table)
        .firmware(firmware)
        .quiet_boot(quiet)
        .build()
        .unwrap()
}

/// Builds `fixture` the default way: a hybrid image.
pub fn build(fixture: &Fixture, table: PartitionTable, quiet: bool) -> Image {
    build_for(fixture, table, Firmware::default(), quiet)
}

pub fn write(image: &Image, path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    image.write_raw_file(&mut file).unwrap();
}

/// What a passing boot of `fixture` from `image` prints: the contract's lines, and unless
/// `quiet` the boot stage's start line, naming the stage as `stage` does (`boot stage 2`,
/// `UEFI loader`).
pub fn expected_lines(fixture: &Fixture, image: &Image, quiet: bool, stage: &str) -> Vec<String> {
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
            "unikernel-mkimage {} ({stage}): loading {} ({size} bytes)",
            mkimage_core::TOOL_VERSION,
            fixture.file
        ));
    }
    lines
}

/// Overwrites bytes of an image file.
pub fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

pub fn read(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).unwrap();
    buf
}

/// Where `needle` (unique) lies in the fixture file `file`.
pub fn offset_in_fixture(file: &str, needle: &[u8]) -> u64 {
    let kernel = std::fs::read(fixture_path(file)).unwrap();
    kernel.windows(needle.len()).position(|w| w == needle).unwrap() as u64
}

/// How many random records the fuzz loop boots.
pub const FUZZ_RECORDS: usize = 24;

/// Records derived from `base` with a valid CRC but an unsafe plan for a boot stage that
/// honours `allowed_flags`: the cases a damaged or hostile record must not get past (a run into
/// the loader's memory, a zero range over it, entry 0, a run length of FFFFFFFFh...), then random
/// mutations of one field each; each kept when the host's check of the plan (which mirrors the
/// boot stages') refuses it.
pub fn crafted_records(base: &BootRecord, allowed_flags: u32) -> Vec<(String, BootRecord)> {
    let mut out = Vec::new();
    let mut named = |name: &str, change: &dyn Fn(&mut BootRecord)| {
        let mut r = base.clone();
        change(&mut r);
        if r.check_plan(allowed_flags).is_err() {
            out.push((name.to_string(), r));
        }
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
        if r.check_plan(allowed_flags).is_err() {
            out.push((format!("fuzz_{fuzzed:02}"), r));
            fuzzed += 1;
        }
    }
    out
}
