//! Writes seed corpora for the fuzz targets from images this library builds (MBR and GPT,
//! FAT16 and FAT32, short and long names): `cargo +nightly run --bin make_seeds`.

use std::io::Read;
use std::path::Path;

use mkimage_core::{ImageBuilder, Kernel, PartitionTable, testkit};

fn write(dir: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    for f in ["hello.elf", "multiseg32.elf", "higherhalf64.elf"] {
        write("multiboot", f, &std::fs::read(fixtures.join(f)).unwrap());
    }
    write("multiboot", "testkit", &testkit::multiboot_kernel(b"payload"));
    let cases = [
        ("mbr-fat16", PartitionTable::Mbr, 8u64 << 20, "k"),
        ("gpt-fat16", PartitionTable::Gpt, 8 << 20, "kernel.elf"),
        ("mbr-fat32", PartitionTable::Mbr, 40 << 20, &*"long".repeat(50)),
        ("gpt-fat32", PartitionTable::Gpt, 1 << 30, "unikernel.bin"),
    ];
    for (name, table, size, kname) in cases {
        let image = ImageBuilder::new(Kernel::from_bytes(kname, testkit::multiboot_kernel(&[0x90; 3000])))
            .args(["a", "b"])
            .partition_table(table)
            .disk_size(size)
            .build()
            .unwrap();
        // inspect_raw: size in KiB, then (sector, length, bytes) records of the data extents.
        let mut seed = ((size / 1024) as u32).to_le_bytes().to_vec();
        for e in image.data_extents() {
            let mut offset = e.offset;
            while offset < e.end() {
                let n = (e.end() - offset).min(32 * 1024);
                let mut buf = vec![0u8; n as usize];
                image.read_at(offset, &mut buf).unwrap();
                seed.extend_from_slice(&((offset / 512) as u32).to_le_bytes());
                seed.extend_from_slice(&(n as u16).to_le_bytes());
                seed.extend_from_slice(&buf);
                offset += n;
            }
        }
        write("inspect_raw", name, &seed);
        // boot_record: the record as written.
        write("boot_record", name, &image.plan().boot_record.encode().unwrap());
        // inspect_tarball: the uncompressed tar of the GCE tarball (whole-GiB disks only).
        if size % (1 << 30) == 0 {
            let mut tgz = Vec::new();
            image.write_gce(&mut tgz).unwrap();
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(&tgz[..]).read_to_end(&mut tar).unwrap();
            write("inspect_tarball", name, &tar);
        }
    }
}
