//! Builds images through the public API and reads them back with independent readers: `mbrman`
//! for the MBR, `gpt` for the GUID partition table, `fatfs` for the filesystem, `tar` for the
//! tarball. Destinations start out non-zero where zero-filled storage could hide a bug.

use std::io::{Cursor, Read, Seek, SeekFrom, Write};

use mkimage_core::bytes::SECTOR_SIZE;
use mkimage_core::size::{GIB, MIB};
use mkimage_core::{Image, ImageBuilder, Kernel, PartitionTable, Timestamp, testkit};

/// A kernel whose payload is recognisable at every offset.
fn kernel(len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    testkit::multiboot_kernel(&payload)
}

fn build(table: PartitionTable, size: u64, kernel_bytes: Vec<u8>, name: &str) -> Image {
    ImageBuilder::new(Kernel::from_bytes(name, kernel_bytes))
        .args(["--ipv4=10.0.0.2/24", "--hello"])
        .partition_table(table)
        .disk_size(size)
        .timestamp(Timestamp::from_unix(1_700_000_000))
        .build()
        .unwrap()
}

/// The raw image in memory, written over a buffer full of 0xAA so that any byte the writer
/// forgets shows up.
fn raw(image: &Image) -> Vec<u8> {
    let mut buf = Cursor::new(vec![0xAAu8; image.disk_size() as usize]);
    image.write_raw(&mut buf).unwrap();
    buf.into_inner()
}

/// A range of an assembled image (the whole disk or a partition) as a read-only device. Reads
/// go through [`Image::read_at`], so no multi-gigabyte buffer is needed.
#[derive(Debug)]
struct Part<'a> {
    image: &'a Image,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Part<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min((self.len - self.pos) as usize);
        self.image.read_at(self.start + self.pos, &mut buf[..n]).unwrap();
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Part<'_> {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("read-only"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for Part<'_> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.pos = match pos {
            SeekFrom::Start(n) => n,
            SeekFrom::End(d) => self.len.checked_add_signed(d).unwrap(),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d).unwrap(),
        };
        Ok(self.pos)
    }
}

fn whole(image: &Image) -> Part<'_> {
    Part { image, start: 0, len: image.disk_size(), pos: 0 }
}

/// Compares a stream with the image's bytes, chunk by chunk.
fn assert_stream_equals_image(mut stream: impl Read, image: &Image) {
    let mut got = vec![0u8; 1 << 20];
    let mut want = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let n = read_full(&mut stream, &mut got);
        if n == 0 {
            break;
        }
        assert!(offset + n as u64 <= image.disk_size(), "stream longer than the disk");
        image.read_at(offset, &mut want[..n]).unwrap();
        assert!(got[..n] == want[..n], "content differs in the MiB at offset {offset}");
        offset += n as u64;
    }
    assert_eq!(offset, image.disk_size(), "stream shorter than the disk");
}

fn read_full(stream: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match stream.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

fn read_file(image: &Image, name: &str) -> (Vec<u8>, fatfs::DateTime, u32, fatfs::FatType) {
    let part = image.plan().layout.fat_partition;
    let dev = Part { image, start: part.byte_offset(), len: part.byte_len(), pos: 0 };
    let fs = fatfs::FileSystem::new(dev, fatfs::FsOptions::new()).unwrap();
    let root = fs.root_dir();
    let entry = root.iter().map(Result::unwrap).find(|e| e.file_name() == name).expect("file present");
    let mut data = Vec::new();
    entry.to_file().read_to_end(&mut data).unwrap();
    (data, entry.modified(), fs.volume_id(), fs.fat_type())
}

#[test]
fn mbr_image_reads_back() {
    let k = kernel(300_000);
    let image = build(PartitionTable::Mbr, GIB, k.clone(), "unikernel.bin");
    let mut disk = vec![0u8; 4 << 20];
    image.read_at(0, &mut disk).unwrap();
    let mbr = mbrman::MBR::read_from(&mut whole(&image), 512).unwrap();
    let p = &mbr[1];
    assert_eq!(p.boot, 0x80);
    assert_eq!(p.sys, 0x0c);
    assert_eq!(p.starting_lba, 2048);
    assert_eq!(u64::from(p.starting_lba) + u64::from(p.sectors), GIB / 512);
    for i in 2..=4 {
        assert!(mbr[i].is_unused());
    }
    assert_eq!(&disk[510..512], &[0x55, 0xAA]);
    assert_eq!(u32::from_le_bytes(disk[440..444].try_into().unwrap()), image.plan().ids.mbr_disk_signature);

    let (data, modified, volume_id, fat_type) = read_file(&image, "unikernel.bin");
    assert_eq!(data, k);
    assert_eq!(fat_type, fatfs::FatType::Fat32);
    assert_eq!(volume_id, image.plan().ids.fat_volume_id);
    // 1_700_000_000 is 2023-11-14T22:13:20Z; FAT keeps even seconds in the main field.
    assert_eq!((modified.date.year, modified.date.month, modified.date.day), (2023, 11, 14));
    assert_eq!((modified.time.hour, modified.time.min, modified.time.sec), (22, 13, 20));
    let (info, ..) = read_file(&image, "build-info.txt");
    let info = String::from_utf8(info).unwrap();
    assert!(info.contains("command line: unikernel.bin --ipv4=10.0.0.2/24 --hello\n"), "{info}");
    assert!(info.contains(mkimage_core::TOOL_VERSION));

    // Hidden sectors equal the partition start, in the boot sector and its backup.
    for boot in [2048 * 512, (2048 + 6) * 512] {
        assert_eq!(u32::from_le_bytes(disk[boot + 0x1c..boot + 0x20].try_into().unwrap()), 2048);
    }
    // The primary and backup boot sectors are identical.
    assert_eq!(disk[2048 * 512..2049 * 512], disk[2054 * 512..2055 * 512]);
    // The kernel's bytes sit, contiguous, exactly where the plan says.
    let mut at_plan = vec![0u8; k.len()];
    image.read_at(image.plan().layout.kernel.sectors.byte_offset(), &mut at_plan).unwrap();
    assert_eq!(at_plan, k);
}

#[test]
fn gpt_image_reads_back() {
    let k = kernel(5000);
    let image = build(PartitionTable::Gpt, 2 * GIB, k.clone(), "kernel.elf");
    let mut disk = vec![0u8; 512];
    image.read_at(0, &mut disk).unwrap();
    let gpt_disk =
        gpt::GptConfig::new().writable(false).only_valid_headers(true).open_from_device(whole(&image)).unwrap();
    let ids = image.plan().ids;
    assert_eq!(gpt_disk.guid().as_bytes(), &ids.gpt_disk);
    let parts = gpt_disk.partitions();
    assert_eq!(parts.len(), 2);
    let bios = &parts[&1];
    assert_eq!(bios.part_type_guid, gpt::partition_types::BIOS);
    assert_eq!((bios.first_lba, bios.last_lba), (64, 2047));
    assert_eq!(bios.part_guid.as_bytes(), &ids.gpt_bios_boot);
    assert_eq!(bios.name, "BIOS boot partition");
    let esp = &parts[&2];
    assert_eq!(esp.part_type_guid, gpt::partition_types::EFI);
    assert_eq!(esp.first_lba, 2048);
    assert_eq!((esp.last_lba + 1) % 2048, 0);
    assert!(esp.last_lba < 2 * GIB / 512 - 33);
    assert_eq!(esp.part_guid.as_bytes(), &ids.gpt_esp);
    assert_eq!(esp.name, "EFI system partition");
    let backup = gpt_disk.backup_header().unwrap();
    assert_eq!(backup.current_lba, 2 * GIB / 512 - 1);
    // Protective MBR: one 0xEE partition from LBA 1.
    assert_eq!(disk[446 + 4], 0xee);
    assert_eq!(u32::from_le_bytes(disk[446 + 8..446 + 12].try_into().unwrap()), 1);
    assert_eq!(&disk[510..512], &[0x55, 0xAA]);

    let (data, ..) = read_file(&image, "kernel.elf");
    assert_eq!(data, k);
}

#[test]
fn every_raw_writer_gives_the_same_bytes() {
    let image = build(PartitionTable::Gpt, 64 * MIB, kernel(70_000), "k");
    let full = raw(&image);
    assert_eq!(full.len() as u64, 64 * MIB);

    let mut sparse = Cursor::new(Vec::new());
    let written = image.write_raw_sparse(&mut sparse).unwrap();
    assert_eq!(sparse.get_ref(), &full);
    assert_eq!(written, image.data_len());

    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&vec![0x55u8; 100 * MIB as usize]).unwrap();
    image.write_raw_file(&mut file).unwrap();
    let mut back = Vec::new();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.read_to_end(&mut back).unwrap();
    assert_eq!(back, full);

    // Writing at an offset of a larger destination leaves the bytes around it alone.
    let mut buf = Cursor::new(vec![0xAAu8; 70 * MIB as usize]);
    buf.seek(SeekFrom::Start(MIB)).unwrap();
    image.write_raw(&mut buf).unwrap();
    let buf = buf.into_inner();
    assert!(buf[..MIB as usize].iter().all(|&b| b == 0xAA));
    assert_eq!(&buf[MIB as usize..65 * MIB as usize], &full[..]);
    assert!(buf[65 * MIB as usize..].iter().all(|&b| b == 0xAA));
}

#[test]
fn data_extents_cover_every_non_zero_byte_and_scale_with_the_kernel() {
    let image = build(PartitionTable::Mbr, 128 * MIB, kernel(1 << 20), "k");
    let disk = raw(&image);
    let mut expected_zero = vec![true; disk.len() / 512];
    for e in image.data_extents() {
        assert_eq!(e.offset % SECTOR_SIZE, 0);
        assert_eq!(e.len % SECTOR_SIZE, 0);
        for s in e.offset / SECTOR_SIZE..e.end() / SECTOR_SIZE {
            expected_zero[s as usize] = false;
        }
    }
    for (sector, zero) in expected_zero.iter().enumerate() {
        if *zero {
            assert!(disk[sector * 512..sector * 512 + 512].iter().all(|&b| b == 0), "sector {sector}");
        }
    }
    // A disk holding a 1 MiB kernel carries little more than the kernel, whatever its size.
    assert!(image.data_len() < (1 << 20) + 256 * 1024, "{}", image.data_len());
    let big = build(PartitionTable::Gpt, 2 << 40, kernel(1 << 20), "k");
    assert!(big.data_len() < (1 << 20) + 1024 * 1024, "{}", big.data_len());
}

#[test]
fn tarball_unpacks_to_the_raw_image() {
    let image = build(PartitionTable::Mbr, GIB, kernel(100_000), "unikernel.bin");
    let mut tgz = Vec::new();
    let written = image.write_gce(&mut tgz).unwrap();
    assert_eq!(written, tgz.len() as u64);
    // gzip header: no name flag, mtime 0.
    assert_eq!(&tgz[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&tgz[4..8], &[0, 0, 0, 0]);
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&tgz[..]).read_to_end(&mut tar_bytes).unwrap();
    assert_eq!(tar_bytes.len() % 10240, 0);
    let header = &tar_bytes[..512];
    assert_eq!(&header[257..265], b"ustar  \0");
    assert_eq!(header[156], b'S');
    assert_eq!(&header[100..108], b"0000644\0");
    assert_eq!(&header[108..116], b"0000000\0");
    assert_eq!(&header[136..148], b"14524770400\0"); // 1_700_000_000 in octal
    assert!(header[329..345].iter().all(|&b| b == 0), "device numbers empty");
    assert!(header[345..369].iter().all(|&b| b == 0), "atime and ctime empty");
    assert_eq!(&header[483..495], b"10000000000\0"); // real size: 1 GiB

    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut entries = archive.entries().unwrap();
    let mut entry = entries.next().unwrap().unwrap();
    assert_eq!(entry.path().unwrap().to_str(), Some("disk.raw"));
    assert_eq!(entry.header().entry_type(), tar::EntryType::GNUSparse);
    assert_stream_equals_image(&mut entry, &image);
    drop(entry);
    assert!(entries.next().is_none());
}

#[test]
fn tarball_with_many_extents_uses_extension_headers() {
    // A FAT16 volume with a long name spreads metadata over several extents; whatever their
    // number, the sparse map must survive the extension headers.
    let image = build(PartitionTable::Gpt, GIB, kernel(10), &"n".repeat(200));
    let mut tgz = Vec::new();
    image.write_gce(&mut tgz).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&tgz[..]));
    let entry = archive.entries().unwrap().next().unwrap().unwrap();
    assert_stream_equals_image(entry, &image);
}

#[test]
fn gce_tarball_refuses_sizes_that_are_not_whole_gib() {
    let image = build(PartitionTable::Mbr, 1536 * MIB, kernel(10), "k");
    let mut out = Vec::new();
    let err = image.write_gce(&mut out).unwrap_err();
    assert!(matches!(err, mkimage_core::Error::GceSizeNotWholeGib { .. }), "{err}");
    assert!(out.is_empty(), "nothing may be written before the refusal");
}

#[test]
fn identical_inputs_give_identical_bytes_and_each_input_matters() {
    let make = |ts: u64, seed: Option<&str>, args: &[&str]| {
        let mut b = ImageBuilder::new(Kernel::from_bytes("k", kernel(4000)))
            .args(args.iter().copied())
            .disk_size(64 * MIB)
            .timestamp(Timestamp::from_unix(ts));
        if let Some(seed) = seed {
            b = b.identity_seed(seed);
        }
        raw(&b.build().unwrap())
    };
    let a = make(1, None, &["x"]);
    assert!(a == make(1, None, &["x"]));
    assert!(a != make(1_000_000_000, None, &["x"]), "timestamp must change the bytes");
    assert!(a != make(1, None, &["y"]));
    let seeded = make(1, Some("s"), &["x"]);
    assert!(seeded != a);
    // With a seed the identifiers no longer follow the arguments.
    let other_args = make(1, Some("s"), &["y"]);
    assert_eq!(&seeded[440..444], &other_args[440..444]);
}

#[test]
fn planner_and_filesystem_writer_agree_across_geometries() {
    // Sizes around the FAT16/FAT32 switch and the 512-byte/4 KiB cluster switch, names that do
    // and do not overflow a root-directory cluster, both tables. Assembly verifies every byte of
    // the kernel against the plan; reading back checks the result independently.
    let sizes = [5 * MIB, 20 * MIB, 33 * MIB, 34 * MIB, 40 * MIB, 260 * MIB, 262 * MIB, 9 * GIB];
    let names = ["k".to_string(), "a".repeat(182), "b".repeat(195), "c".repeat(200), "ü".repeat(100)];
    for table in [PartitionTable::Mbr, PartitionTable::Gpt] {
        for &size in &sizes {
            for name in &names {
                let k = kernel(3000);
                let image = ImageBuilder::new(Kernel::from_bytes(name.as_str(), k.clone()))
                    .partition_table(table)
                    .disk_size(size)
                    .build()
                    .unwrap_or_else(|e| panic!("{table} {size} {}: {e}", name.len()));
                let (data, ..) = read_file(&image, name);
                assert_eq!(data, k, "{table} {size} {}", name.len());
                let (info, ..) = read_file(&image, "build-info.txt");
                assert_eq!(info, image.plan().info_text.as_bytes());
            }
        }
    }
}

#[test]
fn bad_requests_are_refused_with_their_own_errors() {
    use mkimage_core::Error;
    let k = || Kernel::from_bytes("k", kernel(10));
    let err = |b: ImageBuilder| b.plan().unwrap_err();
    assert!(matches!(err(ImageBuilder::new(Kernel::from_bytes("k", Vec::new()))), Error::KernelEmpty { .. }));
    assert!(matches!(err(ImageBuilder::new(k()).name("a b")), Error::InvalidName { .. }));
    assert!(matches!(err(ImageBuilder::new(k()).name("build-info.txt")), Error::InvalidName { .. }));
    assert!(matches!(err(ImageBuilder::new(k()).args(["x".repeat(5000)])), Error::CommandLineTooLong { .. }));
    assert!(matches!(err(ImageBuilder::new(k()).args(["a\0b"])), Error::InvalidArgument { .. }));
    assert!(matches!(err(ImageBuilder::new(k()).disk_size(MIB)), Error::DiskTooSmall { .. }));
    assert!(matches!(err(ImageBuilder::new(k()).disk_size(1000)), Error::DiskSizeNotSectorMultiple { .. }));
    assert!(matches!(err(ImageBuilder::new(k()).disk_size(4 << 40)), Error::DiskTooLarge { .. }));
    let big = Kernel::from_bytes("k", kernel(40 << 20));
    match err(ImageBuilder::new(big).disk_size(16 * MIB)) {
        Error::DiskTooSmall { needed, .. } => {
            assert!(needed > 40 * MIB && needed <= 44 * MIB, "{needed}")
        }
        other => panic!("{other}"),
    }
}

#[test]
fn reads_outside_the_disk_are_errors_not_panics() {
    let image = build(PartitionTable::Mbr, 64 * MIB, kernel(100), "k.bin");
    let mut buf = [0u8; 16];
    assert!(image.read_at(64 * MIB - 16, &mut buf).is_ok());
    assert!(matches!(image.read_at(64 * MIB - 15, &mut buf), Err(mkimage_core::Error::ReadOutsideDisk { .. })));
    assert!(image.read_at(u64::MAX, &mut buf).is_err());
}

#[test]
fn the_uefi_loader_reads_back_with_the_bios_stages_record() {
    use mkimage_core::boot::{bios, uefi};
    let image = build(PartitionTable::Gpt, GIB, kernel(5000), "unikernel.bin");
    let part = image.plan().layout.fat_partition;
    let dev = Part { image: &image, start: part.byte_offset(), len: part.byte_len(), pos: 0 };
    let fs = fatfs::FileSystem::new(dev, fatfs::FsOptions::new()).unwrap();
    let mut loader = Vec::new();
    fs.root_dir().open_file(uefi::LOADER_PATH).unwrap().read_to_end(&mut loader).unwrap();
    let record = image.plan().boot_record.encode().unwrap();
    assert_eq!(loader, uefi::loader_file(&record).unwrap());
    // The same record bytes as the BIOS stage's boot area.
    let area = image.plan().layout.boot_area.unwrap();
    let mut stored = vec![0u8; record.len()];
    image.read_at(area.byte_offset() + bios::STAGE2_SECTORS * 512, &mut stored).unwrap();
    assert_eq!(stored, record);
    // . and .. come first in the new directories, without long-name entries.
    let names: Vec<String> = fs.root_dir().open_dir("EFI").unwrap().iter().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, [".", "..", "BOOT"]);
}
