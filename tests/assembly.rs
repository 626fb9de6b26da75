//! The committed machine code must be exactly what its sources assemble to: the boot stages
//! (embedded in the library: BIOS and UEFI) and the fixture kernels. Needs nasm.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{run_ok, tool};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// (source, include directory, committed output), relative to the repository root.
const SOURCES: &[(&str, &str, &str)] = &[
    (
        "crates/mkimage-core/src/boot/bios/mbr.asm",
        "crates/mkimage-core/src/boot/bios/",
        "crates/mkimage-core/src/boot/bios/mbr.bin",
    ),
    (
        "crates/mkimage-core/src/boot/bios/stage2.asm",
        "crates/mkimage-core/src/boot/bios/",
        "crates/mkimage-core/src/boot/bios/stage2.bin",
    ),
    (
        "crates/mkimage-core/src/boot/bios/nobios.asm",
        "crates/mkimage-core/src/boot/bios/",
        "crates/mkimage-core/src/boot/bios/nobios.bin",
    ),
    (
        "crates/mkimage-core/src/boot/uefi/bootx64.asm",
        "crates/mkimage-core/src/boot/uefi/",
        "crates/mkimage-core/src/boot/uefi/bootx64.bin",
    ),
    ("fixtures/src/hello.asm", "fixtures/src/", "fixtures/hello.elf"),
    ("fixtures/src/multiseg32.asm", "fixtures/src/", "fixtures/multiseg32.elf"),
    ("fixtures/src/higherhalf64.asm", "fixtures/src/", "fixtures/higherhalf64.elf"),
    ("fixtures/src/large.asm", "fixtures/src/", "fixtures/large.bin"),
    ("fixtures/src/acpi.asm", "fixtures/src/", "fixtures/acpi.bin"),
    ("fixtures/src/video.asm", "fixtures/src/", "fixtures/video.bin"),
];

#[test]
fn committed_binaries_match_their_sources() {
    let Some(nasm) = tool("committed_binaries_match_their_sources", "nasm", "nasm") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = root();
    let mut mismatches = Vec::new();
    for (source, include, committed) in SOURCES {
        let out = dir.path().join(Path::new(committed).file_name().unwrap());
        run_ok(
            Command::new(&nasm)
                .args(["-f", "bin", "-I"])
                .arg(root.join(include))
                .arg(root.join(source))
                .arg("-o")
                .arg(&out),
        );
        let built = std::fs::read(&out).unwrap();
        let stored = std::fs::read(root.join(committed)).unwrap();
        if built != stored {
            mismatches.push(format!("{committed} differs from what {source} assembles to (run fixtures/build.sh)"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn mbr_code_fits_and_keeps_the_table_area_free() {
    let mbr = std::fs::read(root().join("crates/mkimage-core/src/boot/bios/mbr.bin")).unwrap();
    assert_eq!(mbr.len(), 440, "the MBR code must end where the disk signature begins");
    let stage2 = std::fs::read(root().join("crates/mkimage-core/src/boot/bios/stage2.bin")).unwrap();
    assert!(stage2.len() <= 16 * 512);
    assert_eq!(&stage2[4..12], b"UKMKSTG2");
}
