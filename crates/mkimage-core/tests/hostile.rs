//! The library against hostile and unstable input: a kernel file that changes while it is
//! read, and images crafted to make a reader loop, read outside the file or allocate what they
//! merely claim.

use std::io::{Cursor, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mkimage_core::inspect::{self, CheckName};
use mkimage_core::{Error, ImageBuilder, Kernel, PartitionTable, testkit};

#[test]
fn a_kernel_changing_while_read_is_refused() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kernel.bin");
    std::fs::write(&path, testkit::multiboot_kernel(&vec![0x5a; 128 << 20])).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, path) = (Arc::clone(&stop), path.clone());
        std::thread::spawn(move || {
            let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            let mut n = 0u8;
            while !stop.load(Ordering::Relaxed) {
                n = n.wrapping_add(1);
                file.write_at(&[n], 100).unwrap();
            }
        })
    };
    // Give the writer a head start, then read the kernel while it keeps writing.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let results: Vec<_> = (0..3).map(|_| Kernel::from_path(&path)).collect();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    for r in results {
        match r {
            Err(Error::KernelChanged { path: p }) => assert_eq!(p, path),
            other => panic!("expected KernelChanged, got {:?}", other.map(|k| k.bytes().len())),
        }
    }
    // Once it is still, it reads fine.
    assert!(Kernel::from_path(&path).is_ok());
}

/// A FAT16 image of a small kernel, raw, with a hook to damage it.
fn image_bytes(damage: impl FnOnce(&mut Vec<u8>, &mkimage_core::Plan)) -> Vec<u8> {
    let image = ImageBuilder::new(Kernel::from_bytes("k", testkit::multiboot_kernel(&[7; 5000])))
        .partition_table(PartitionTable::Mbr)
        .disk_size(8 << 20)
        .build()
        .unwrap();
    let mut raw = Cursor::new(Vec::new());
    image.write_raw(&mut raw).unwrap();
    let mut bytes = raw.into_inner();
    damage(&mut bytes, image.plan());
    bytes
}

#[test]
fn a_cyclic_fat_chain_ends_the_walk() {
    let bytes = image_bytes(|b, plan| {
        // Point the kernel's first cluster at itself, in both FAT copies.
        let l = &plan.layout;
        let g = l.fat.geometry;
        let first = l.kernel.file.first_cluster as usize;
        for copy in 0..2 {
            let fat =
                (l.fat_partition.start as usize + g.reserved_sectors as usize + copy * g.sectors_per_fat as usize)
                    * 512;
            b[fat + first * 2..fat + first * 2 + 2].copy_from_slice(&(first as u16).to_le_bytes());
        }
    });
    let report = inspect::inspect_raw(Cursor::new(bytes), "cyclic").unwrap();
    let kernel_check = report.checks.iter().find(|c| c.name == CheckName::KernelFile).unwrap();
    assert!(!kernel_check.ok);
    assert!(
        kernel_check.detail.contains("loops") || kernel_check.detail.contains("shorter"),
        "{}",
        kernel_check.detail
    );
}

#[test]
fn a_huge_gpt_entry_count_is_refused_without_allocating_it() {
    let image = ImageBuilder::new(Kernel::from_bytes("k", testkit::multiboot_kernel(&[7; 100])))
        .partition_table(PartitionTable::Gpt)
        .disk_size(8 << 20)
        .build()
        .unwrap();
    let mut raw = Cursor::new(Vec::new());
    image.write_raw(&mut raw).unwrap();
    let mut b = raw.into_inner();
    // Claim 2^31 entries in the primary header and fix its CRC so only the count is wrong.
    b[512 + 80..512 + 84].copy_from_slice(&0x8000_0000u32.to_le_bytes());
    b[512 + 16..512 + 20].fill(0);
    let crc = crc32fast::hash(&b[512..512 + 92]);
    b[512 + 16..512 + 20].copy_from_slice(&crc.to_le_bytes());
    let report = inspect::inspect_raw(Cursor::new(b), "gpt").unwrap();
    let table = report.checks.iter().find(|c| c.name == CheckName::PartitionTable).unwrap();
    assert!(!table.ok && table.detail.contains("unsupported shape"), "{}", table.detail);
}

/// A gzip-compressed tar holding one old-GNU sparse header whose map is `map` (offset, length)
/// with real size `real`, followed by `data` bytes.
fn sparse_tarball(map: &[(u64, u64)], real: u64, stored: u64, data: &[u8]) -> Vec<u8> {
    let mut block = tar::Header::new_gnu();
    let h = block.as_gnu_mut().unwrap();
    h.as_header_mut().set_path("disk.raw").unwrap();
    h.as_header_mut().set_size(stored);
    h.as_header_mut().set_entry_type(tar::EntryType::new(b'S'));
    h.set_real_size(real);
    for (slot, &(o, l)) in h.sparse.iter_mut().zip(map) {
        slot.set_offset(o);
        slot.set_length(l);
    }
    h.as_header_mut().set_cksum();
    let mut tar = block.as_bytes().to_vec();
    tar.extend_from_slice(data);
    tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

#[test]
fn bogus_sparse_maps_are_refused() {
    // (what, sparse map, real size, stored size field, data bytes present)
    type Case = (&'static str, Vec<(u64, u64)>, u64, u64, usize);
    let cases: [Case; 5] = [
        ("out of order", vec![(4096, 512), (0, 512)], 1 << 30, 1024, 1024),
        ("beyond the real size", vec![(2 << 30, 512)], 1 << 30, 512, 512),
        ("map and size disagree", vec![(0, 512)], 1 << 30, 4096, 4096),
        ("claims more data than the stream holds", vec![(0, 1 << 40)], 2 << 40, 1 << 40, 512),
        ("overflowing offsets", vec![(u64::MAX - 10, 512)], 1 << 30, 512, 512),
    ];
    for (what, map, real, stored, data) in cases {
        let tgz = sparse_tarball(&map, real, stored, &vec![0x11; data]);
        assert!(inspect::inspect_tarball(&tgz[..], "t").is_err(), "{what}");
    }
}

#[test]
fn claimed_sizes_do_not_allocate() {
    // A 2 TiB disk of which a few bytes are present costs a few blocks when unpacked.
    let tgz = sparse_tarball(&[((2 << 40) - 4096, 4096)], 2 << 40, 4096, &[1; 4096]);
    let mut disk = tempfile::tempfile().unwrap();
    let (_, found) = inspect::tarball::unpack(&tgz[..], Some(tgz.len() as u64), &mut disk).unwrap();
    assert_eq!(found.unwrap().size, 2 << 40);
    {
        use std::os::unix::fs::MetadataExt;
        assert!(disk.metadata().unwrap().blocks() * 512 <= 64 << 10);
    }
    // A tarball claiming a 2 TiB sparse disk with one small extent is read in bounded memory.
    let tgz = sparse_tarball(&[(0, 512)], 2 << 40, 512, &[0x55; 512]);
    let err = inspect::inspect_tarball(&tgz[..], "t").unwrap_err();
    assert!(err.to_string().contains("not a disk image"), "{err}");
}

/// A hybrid (or `firmware`) GPT image of a small kernel, raw, and its plan.
fn uefi_image(firmware: mkimage_core::Firmware) -> (Vec<u8>, mkimage_core::Plan) {
    let image = ImageBuilder::new(Kernel::from_bytes("k", testkit::multiboot_kernel(&[7; 5000])))
        .partition_table(PartitionTable::Gpt)
        .firmware(firmware)
        .disk_size(64 << 20)
        .build()
        .unwrap();
    let mut raw = Cursor::new(Vec::new());
    image.write_raw(&mut raw).unwrap();
    (raw.into_inner(), image.plan().clone())
}

fn check(report: &inspect::Report, name: CheckName) -> inspect::Check {
    report.checks.iter().find(|c| c.name == name).unwrap().clone()
}

#[test]
fn the_uefi_loader_is_checked_byte_for_byte() {
    use mkimage_core::Firmware;
    use mkimage_core::boot::uefi;
    let (clean, plan) = uefi_image(Firmware::Hybrid);
    let report = inspect::inspect_raw(Cursor::new(clean.clone()), "hybrid").unwrap();
    assert!(report.all_ok(), "{:#?}", report.checks);
    assert_eq!(report.firmware, [Firmware::Bios, Firmware::Uefi]);
    let loader_at = plan.layout.loader.as_ref().unwrap().sectors.byte_offset() as usize;
    let record_at = loader_at + uefi::record_range().unwrap().start;

    // A byte of its code changed: named, with its offset.
    let mut b = clean.clone();
    b[loader_at + 0x1100] ^= 0x40;
    let c = check(&inspect::inspect_raw(Cursor::new(b), "code").unwrap(), CheckName::UefiLoader);
    assert!(!c.ok && c.detail.contains("its code differs from this version's at byte 0x1100"), "{}", c.detail);

    // Its record no longer the BIOS stage's (a flag flipped and the CRC made right again, so
    // only the comparison can tell).
    let mut b = clean.clone();
    let mut record = mkimage_core::boot::record::BootRecord::decode(&b[record_at..record_at + 8192]).unwrap();
    record.flags ^= mkimage_core::boot::record::FLAG_QUIET;
    let bytes = record.encode().unwrap();
    b[record_at..record_at + bytes.len()].copy_from_slice(&bytes);
    let c = check(&inspect::inspect_raw(Cursor::new(b), "record").unwrap(), CheckName::UefiLoader);
    assert!(!c.ok && c.detail.contains("boot record differs from the BIOS stage's"), "{}", c.detail);

    // Someone else's BOOTX64.EFI: reported, and the disk still boots from UEFI.
    let mut b = clean;
    b[loader_at + 0x1000..loader_at + 0x1008].copy_from_slice(b"SOMEONE!");
    let report = inspect::inspect_raw(Cursor::new(b), "foreign").unwrap();
    let c = check(&report, CheckName::UefiLoader);
    assert!(!c.ok && c.detail.contains("is not unikernel-mkimage's UEFI loader"), "{}", c.detail);
    assert_eq!(report.firmware, [Firmware::Bios, Firmware::Uefi]);
    assert_eq!(report.boot_loader.uefi_loader_version(), None);
}

#[test]
fn single_firmware_images_say_what_they_boot_from() {
    use mkimage_core::Firmware;
    let (uefi, _) = uefi_image(Firmware::Uefi);
    let report = inspect::inspect_raw(Cursor::new(uefi.clone()), "uefi").unwrap();
    assert!(report.all_ok(), "{:#?}", report.checks);
    assert_eq!(report.firmware, [Firmware::Uefi]);
    assert_eq!(report.boot_loader.stage_version(), None);
    assert!(check(&report, CheckName::BootCode).detail.contains("boots only from UEFI firmware"));
    // Without its loader, a UEFI-only disk boots from nothing, and says so.
    let mut b = uefi;
    let at = b.windows(8).position(|w| w == b"UKMKEFI1").unwrap();
    b[at - 0x1000..at - 0x1000 + 2].copy_from_slice(b"XX");
    b[at..at + 8].fill(0);
    let report = inspect::inspect_raw(Cursor::new(b), "uefi-damaged").unwrap();
    assert!(!check(&report, CheckName::UefiLoader).ok);
    let (bios, _) = uefi_image(Firmware::Bios);
    let report = inspect::inspect_raw(Cursor::new(bios), "bios").unwrap();
    assert!(report.all_ok(), "{:#?}", report.checks);
    assert_eq!(report.firmware, [Firmware::Bios]);
    assert_eq!(report.boot_loader.uefi_loader_version(), None);
}
