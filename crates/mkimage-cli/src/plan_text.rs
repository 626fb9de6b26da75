//! Human-readable rendering of a build plan (`build -v`).

use std::fmt::Write;

use mkimage_core::Plan;
use mkimage_core::bytes::SECTOR_SIZE;
use mkimage_core::ident::format_guid;
use mkimage_core::size::format_size;

/// Describes the plan: disk, partitions, filesystem, files, load plan and boot record.
pub(crate) fn describe(plan: &Plan) -> String {
    let l = &plan.layout;
    let g = &l.fat.geometry;
    let mut s = String::new();
    let _ = writeln!(s, "plan:");
    let _ = writeln!(
        s,
        "  disk: {} ({} sectors), {} partition table",
        format_size(l.disk_size),
        l.total_sectors(),
        l.partition_table()
    );
    match l.table.gpt() {
        None => {
            let _ = writeln!(s, "  MBR disk signature: {:#010x}", plan.ids.mbr_disk_signature);
        }
        Some(gpt) => {
            let _ = writeln!(s, "  GPT disk GUID: {}", format_guid(&plan.ids.gpt_disk));
            if let Some(bios_boot) = gpt.bios_boot {
                let _ = writeln!(
                    s,
                    "  BIOS boot partition: LBA {}-{}, GUID {}",
                    bios_boot.start,
                    bios_boot.end() - 1,
                    format_guid(&plan.ids.gpt_bios_boot)
                );
            }
        }
    }
    let _ = writeln!(s, "  firmware: {}", l.firmware);
    match l.boot_area {
        Some(area) => {
            let _ = writeln!(s, "  boot area: LBA {}-{} (stage 2, then the boot record)", area.start, area.end() - 1);
        }
        None => {
            let _ = writeln!(s, "  boot area: none (the MBR code says the disk boots only from UEFI firmware)");
        }
    }
    let _ = writeln!(
        s,
        "  FAT partition {}: LBA {}-{} ({})",
        l.fat_partition_index() + 1,
        l.fat_partition.start,
        l.fat_partition.end() - 1,
        format_size(l.fat_partition.byte_len())
    );
    let _ = writeln!(
        s,
        "  filesystem: {}, {}-byte clusters, {} clusters, data from partition sector {}, volume id {:08X}",
        g.fat_type,
        g.cluster_size(),
        g.total_clusters(),
        g.first_data_sector(),
        plan.ids.fat_volume_id
    );
    for file in [Some(&l.kernel), Some(&l.info), l.loader.as_ref()].into_iter().flatten() {
        let _ = writeln!(
            s,
            "  file {}: {} bytes, clusters {}-{}, LBA {}-{}",
            file.file.name,
            file.file.size,
            file.file.first_cluster,
            file.file.first_cluster + file.file.clusters.max(1) - 1,
            file.sectors.start,
            file.sectors.end().max(file.sectors.start + 1) - 1
        );
    }
    let _ = writeln!(s, "  kernel: {}, entry point {:#010x}", plan.load.format, plan.load.entry);
    for seg in &plan.load.segments {
        let _ = writeln!(
            s,
            "    load file bytes {:#x}+{:#x} to {:#010x}-{:#010x}{}",
            seg.file_offset,
            seg.file_size,
            seg.addr,
            seg.end() - 1,
            if seg.mem_size > seg.file_size {
                format!(" ({:#x} bytes zeroed)", seg.mem_size - seg.file_size)
            } else {
                String::new()
            }
        );
    }
    let rec = &plan.boot_record;
    let _ = writeln!(
        s,
        "  boot record: {} run(s), {} zero range(s), checksum {:08x}:{:08x}",
        rec.runs.len(),
        rec.zeros.len(),
        rec.checksum.0,
        rec.checksum.1
    );
    for run in &rec.runs {
        let _ = writeln!(
            s,
            "    read LBA {} ({} sectors, skip {}) -> {:#010x}, {} bytes (disk offset {:#x})",
            run.lba,
            run.sectors,
            run.skip,
            run.dest,
            run.len,
            run.lba * SECTOR_SIZE + u64::from(run.skip)
        );
    }
    let _ = writeln!(s, "  command line: {}", plan.cmdline);
    s
}
