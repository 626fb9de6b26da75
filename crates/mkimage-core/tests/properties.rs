//! Property tests (proptest, on stable) over the kernel parser, the planner and the boot record.

use mkimage_core::Firmware;
use mkimage_core::boot::record::{self, BootRecord, FileExtent, Run, VideoRequest, ZeroRange};
use mkimage_core::bytes::SECTOR_SIZE;
use mkimage_core::layout::{Layout, LayoutRequest, PartitionTable, TableLayout};
use mkimage_core::multiboot::{LoadPlan, MAX_LOAD_END, MIN_LOAD_ADDR};
use mkimage_core::testkit;
use proptest::prelude::*;

fn check_plan(plan: &LoadPlan, len: usize) {
    let mut last_end = 0;
    for s in &plan.segments {
        assert!(s.addr >= MIN_LOAD_ADDR && s.end() <= MAX_LOAD_END);
        assert!(s.file_size <= s.mem_size);
        assert!(s.file_offset + s.file_size <= len as u64);
        assert!(s.addr >= last_end);
        last_end = s.end();
    }
    let entry = u64::from(plan.entry);
    assert!(plan.segments.iter().any(|s| entry >= s.addr && entry < s.addr + s.file_size));
}

/// A Multiboot header (kludge or not) followed by random fields, at a random aligned offset.
fn multiboot_like() -> impl Strategy<Value = Vec<u8>> {
    (0usize..64, any::<bool>(), prop::array::uniform5(any::<u32>()), prop::collection::vec(any::<u8>(), 0..4096))
        .prop_map(|(slot, kludge, fields, tail)| {
            let flags = if kludge { testkit::KLUDGE_FLAGS } else { 0x3 };
            let mut f = vec![0u8; slot * 4];
            f.extend_from_slice(&testkit::multiboot_header(flags, None));
            f.extend(fields.into_iter().flat_map(u32::to_le_bytes));
            f.extend_from_slice(&tail);
            f
        })
}

/// An ELF header with random program headers and a Multiboot header without the kludge.
fn elf_like() -> impl Strategy<Value = Vec<u8>> {
    let phdr = (any::<bool>(), any::<u64>(), any::<u64>(), 0u64..0x2000, 0u64..0x4000, 0u64..0x2000);
    (any::<bool>(), prop::collection::vec(phdr, 0..6), any::<u64>(), 0usize..0x3000).prop_map(
        |(wide, phdrs, entry, extra)| {
            let (eh, ph) = if wide { (64usize, 56usize) } else { (52, 32) };
            let segments = phdrs
                .iter()
                .map(|&(load, vaddr, paddr, off, filesz, memsz)| {
                    // Bias physical addresses towards the valid range now and then.
                    let paddr = if paddr % 3 == 0 { 0x100000 + (paddr % 0x100000) } else { paddr };
                    (u32::from(load), off, vaddr, paddr, filesz, memsz)
                })
                .collect();
            let header_at = (eh + ph * phdrs.len()).div_ceil(4) * 4;
            testkit::Elf {
                entry,
                segments,
                len: eh + ph * phdrs.len() + 0x40 + extra,
                multiboot: Some((header_at, 3)),
                ..testkit::Elf::new(wide)
            }
            .bytes()
        },
    )
}

/// A kernel shaped like Solo5's (and the hello fixture): an ELF64 file whose a.out kludge
/// header at 0x1020 loads the file from 0x1000 to 1 MiB, with bss after it.
fn solo5_shaped_kernel() -> Vec<u8> {
    let mut k = testkit::Elf {
        entry: 0x100300,
        segments: vec![(1, 0x1000, 0x100000, 0x100000, 0xae0, 0x14ae0)],
        len: 6880,
        multiboot: None,
        ..testkit::Elf::new(true)
    }
    .bytes();
    let fields = [0x100020, 0x100000, 0x100ae0, 0x114ae0, 0x100040];
    testkit::place(&mut k, 0x1020, &testkit::multiboot_header(testkit::KLUDGE_FLAGS, Some(fields)));
    k
}

proptest! {
    #[test]
    fn parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..12_000)) {
        if let Ok(plan) = LoadPlan::new(&bytes) {
            check_plan(&plan, bytes.len());
        }
    }

    #[test]
    fn parser_keeps_invariants_on_multiboot_like_files(bytes in multiboot_like()) {
        if let Ok(plan) = LoadPlan::new(&bytes) {
            check_plan(&plan, bytes.len());
        }
    }

    #[test]
    fn parser_keeps_invariants_on_elf_like_files(bytes in elf_like()) {
        if let Ok(plan) = LoadPlan::new(&bytes) {
            check_plan(&plan, bytes.len());
        }
    }

    #[test]
    fn mutated_kernels_never_panic(flips in prop::collection::vec((0usize..6000, any::<u8>()), 1..20)) {
        let mut k = solo5_shaped_kernel();
        for (at, b) in flips {
            let at = at % k.len();
            k[at] = b;
        }
        if let Ok(plan) = LoadPlan::new(&k) {
            check_plan(&plan, k.len());
        }
    }

    #[test]
    fn layouts_keep_their_invariants(
        gpt in any::<bool>(),
        firmware in 0usize..3,
        disk_mib in 2u64..70_000,
        kernel in 1u64..(300 << 20),
        name_len in 1usize..256,
    ) {
        let name = "n".repeat(name_len);
        let table = if gpt { PartitionTable::Gpt } else { PartitionTable::Mbr };
        let firmware = [Firmware::Bios, Firmware::Uefi, Firmware::Hybrid][firmware];
        let req = LayoutRequest {
            table, firmware, disk_size: disk_mib << 20, kernel_name: &name, kernel_size: kernel,
            info_name: "build-info.txt", info_size: 700,
        };
        match Layout::plan(&req) {
            Ok(l) => {
                let total = l.total_sectors();
                prop_assert_eq!(l.boot_area.is_some(), firmware.bios());
                prop_assert_eq!(l.loader.is_some(), firmware.uefi());
                if let Some(area) = l.boot_area {
                    prop_assert!(area.start >= 1 && area.end() <= l.fat_partition.start);
                }
                prop_assert!(l.fat_partition.end() <= total);
                if let TableLayout::Gpt(g) = l.table {
                    prop_assert!(l.fat_partition.end() <= g.backup_entries.start);
                    prop_assert!(g.bios_boot.is_none_or(|b| b.start >= g.first_usable && b.end() <= l.fat_partition.start));
                }
                for f in [Some(&l.kernel), Some(&l.info), l.loader.as_ref()].into_iter().flatten() {
                    prop_assert!(f.sectors.start >= l.fat_partition.start && f.sectors.end() <= l.fat_partition.end());
                    prop_assert!(f.sectors.byte_len() >= f.file.size);
                }
                prop_assert!(l.kernel.sectors.end() <= l.info.sectors.start);
                if let Some(loader) = &l.loader {
                    prop_assert!(l.info.sectors.end() <= loader.sectors.start);
                }
                prop_assert!(l.fat.next_free_cluster - 2 <= l.fat.geometry.total_clusters());
                // The minimum the planner reports never exceeds a size that works.
                let min = Layout::minimum_disk_size(&req);
                prop_assert!(min <= disk_mib << 20);
            }
            Err(mkimage_core::Error::DiskTooSmall { needed, .. }) => {
                prop_assert!(needed > disk_mib << 20);
                if needed <= mkimage_core::layout::MAX_DISK_SIZE {
                    let at_minimum = LayoutRequest { disk_size: needed, ..req };
                    prop_assert!(Layout::plan(&at_minimum).is_ok());
                }
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn runs_cover_exactly_the_loaded_bytes(
        offset in 0u64..10_000,
        size in 1u64..300_000,
        memextra in 0u64..10_000,
        split in 1u64..400,
    ) {
        let kernel = testkit::multiboot_kernel(&vec![1; (offset + size) as usize]);
        let mut plan = LoadPlan::new(&kernel).unwrap();
        plan.segments[0].file_offset = offset;
        plan.segments[0].file_size = size;
        plan.segments[0].mem_size = size + memextra;
        // The file in two extents split at a sector boundary.
        let cut = (split * SECTOR_SIZE).min((offset + size).div_ceil(SECTOR_SIZE) * SECTOR_SIZE);
        let extents = [
            FileExtent { file_offset: 0, lba: 1000, len: cut },
            FileExtent { file_offset: cut, lba: 50_000, len: (offset + size + SECTOR_SIZE).saturating_sub(cut) },
        ];
        let (runs, zeros) = record::plan_runs(&plan, &extents);
        let total: u64 = runs.iter().map(|(r, _)| u64::from(r.len)).sum();
        prop_assert_eq!(total, size);
        let mut expect_dest = 0x100000u64;
        let mut expect_off = offset;
        for (r, off) in &runs {
            prop_assert_eq!(u64::from(r.dest), expect_dest);
            prop_assert_eq!(*off, expect_off);
            prop_assert!(u64::from(r.skip) < SECTOR_SIZE);
            prop_assert_eq!(u64::from(r.sectors), (u64::from(r.skip) + u64::from(r.len)).div_ceil(SECTOR_SIZE));
            let e = extents.iter().find(|e| *off >= e.file_offset && *off < e.file_offset + e.len).unwrap();
            prop_assert_eq!(r.lba, e.lba + (off - e.file_offset) / SECTOR_SIZE);
            prop_assert!(off + u64::from(r.len) <= e.file_offset + e.len);
            expect_dest += u64::from(r.len);
            expect_off += u64::from(r.len);
        }
        prop_assert_eq!(zeros.iter().map(|z| u64::from(z.len)).sum::<u64>(), memextra);
    }

    #[test]
    fn boot_records_round_trip(
        runs in prop::collection::vec((any::<u64>(), any::<u32>(), 0u16..512, any::<u32>(), any::<u32>()), 0..32),
        zeros in prop::collection::vec((any::<u32>(), any::<u32>()), 0..32),
        cmdline in "[ -~]{0,4095}",
        name in "[a-z0-9._-]{1,255}",
        flags in any::<u32>(), entry in any::<u32>(), part in any::<u8>(),
        checksum in (any::<u32>(), any::<u32>()), size in any::<u32>(), crc in any::<u32>(),
        kernel_lba in any::<u64>(), video in prop::array::uniform4(any::<u32>()),
    ) {
        let record = BootRecord {
            flags, entry,
            runs: runs.into_iter().map(|(lba, dest, skip, len, sectors)| Run { lba, dest, skip, len, sectors }).collect(),
            zeros: zeros.into_iter().map(|(dest, len)| ZeroRange { dest, len }).collect(),
            cmdline, kernel_name: name, loader_name: "unikernel-mkimage test".into(),
            boot_partition: part, checksum, kernel_size: size, stage2_crc: crc, kernel_lba,
            video: VideoRequest { mode_type: video[0], width: video[1], height: video[2], depth: video[3] },
        };
        let bytes = record.encode().unwrap();
        prop_assert!(bytes.len() < record::BOOT_RECORD_MAX);
        prop_assert_eq!(BootRecord::decode(&bytes).unwrap(), record);
    }

    #[test]
    fn record_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..9000)) {
        let _ = BootRecord::decode(&bytes);
    }
}
