//! `unikernel-mkimage inspect`: a report on an image, as text or as JSON (schema documented in
//! docs/inspect-json.md; `schema_version` changes only when a field changes meaning or goes
//! away).

use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use mkimage_core::Firmware;
use mkimage_core::inspect::{self, Report};
use mkimage_core::size::format_size;
use serde_json::{Value, json};
use unikernel_mkimage::printable as p;

/// Version of the JSON schema.
pub(crate) const JSON_SCHEMA_VERSION: u32 = 3;
/// Exit status when a check fails.
const EXIT_CHECK_FAILED: u8 = 1;
/// Exit status when the input is not an image.
const EXIT_NOT_AN_IMAGE: u8 = 2;

#[derive(clap::Args, Debug)]
pub(crate) struct InspectArgs {
    /// A raw disk image (file or block device) or a GCE tarball (.tar.gz); - reads standard
    /// input.
    image: PathBuf,
    /// Print a JSON document instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn inspect(args: &InspectArgs) -> ExitCode {
    let result = if args.image.as_os_str() == "-" {
        inspect::inspect_stream(std::io::stdin().lock(), "standard input")
    } else {
        inspect::inspect_path(&args.image)
    };
    match result {
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&to_json(&args.image, &report)).unwrap_or_default());
            } else {
                print!("{}", to_text(&args.image, &report));
            }
            if report.all_ok() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_CHECK_FAILED) }
        }
        Err(err) => {
            let message = unikernel_mkimage::chain(&err);
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "schema_version": JSON_SCHEMA_VERSION,
                        "path": args.image.display().to_string(),
                        "error": message,
                    }))
                    .unwrap_or_default()
                );
            }
            unikernel_mkimage::print_error("unikernel-mkimage", &message);
            ExitCode::from(EXIT_NOT_AN_IMAGE)
        }
    }
}

fn container_text(report: &Report) -> String {
    match report.container.tarball() {
        None => "raw disk image".into(),
        Some(a) => {
            let members: Vec<String> = a
                .members
                .iter()
                .map(|m| {
                    let sparse = m.sparse.map(|s| format!(", {}", s.name())).unwrap_or_default();
                    format!("{} ({}{sparse})", p(&m.name), m.format.name())
                })
                .collect();
            let mut notes = Vec::new();
            if a.pax_headers {
                notes.push("PAX headers".to_string());
            }
            if a.gzip_members > 1 {
                notes.push(format!("{} gzip members", a.gzip_members));
            }
            if a.trailing.bytes > 0 {
                notes.push(format!(
                    "{}{} bytes of trailing data after the gzip stream",
                    if a.trailing.more { "more than " } else { "" },
                    a.trailing.bytes
                ));
            }
            if let Some(what) = &a.not_read {
                notes.push(format!("not read: {what}"));
            }
            let notes = notes.iter().map(|n| format!("; {n}")).collect::<String>();
            format!("gzip-compressed tar: {}{notes}", members.join(", "))
        }
    }
}

fn to_text(path: &std::path::Path, r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "image: {} ({})", p(&path.display().to_string()), container_text(r));
    let _ = writeln!(
        s,
        "disk: {}, {} partition table, disk id {}",
        format_size(r.disk_size),
        r.table.kind.to_uppercase(),
        p(&r.table.disk_id)
    );
    for part in &r.table.partitions {
        let _ = writeln!(
            s,
            "  partition {}: LBA {}-{} ({}), {} {}{}{}",
            part.number,
            part.start,
            (part.start + part.sectors).saturating_sub(1),
            format_size(part.sectors * 512),
            part.kind,
            part.kind_name,
            if part.bootable { ", bootable" } else { "" },
            part.name.as_deref().filter(|n| !n.is_empty()).map(|n| format!(", \"{}\"", p(n))).unwrap_or_default()
        );
    }
    match &r.filesystem {
        Some(fs) => {
            let _ = writeln!(
                s,
                "filesystem: {} in partition {}, {}-byte clusters, volume id {:04X}-{:04X}",
                fs.fat_type,
                fs.partition,
                fs.cluster_size,
                fs.volume_id >> 16,
                fs.volume_id & 0xffff
            );
            for f in &fs.files {
                let _ = writeln!(
                    s,
                    "  {:<32} {:>12} bytes{}",
                    p(&f.name),
                    f.size,
                    if f.directory { " (directory)" } else { "" }
                );
            }
        }
        None => {
            let _ = writeln!(s, "filesystem: none found");
        }
    }
    let stages: Vec<String> = [
        r.boot_loader.stage_version().map(|v| format!("boot stage {v}")),
        r.boot_loader.uefi_loader_version().map(|v| format!("UEFI loader {v}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let loader = match (r.boot_loader.record(), r.boot_loader.kind()) {
        (Some(Ok(_)), _) => format!("unikernel-mkimage, {}", stages.join(", ")),
        (Some(Err(e)), _) => format!("unikernel-mkimage, {} (boot record unusable: {})", stages.join(", "), p(e)),
        (_, "syslinux") => "SYSLINUX (no unikernel-mkimage boot record)".into(),
        (_, kind) => kind.into(),
    };
    let _ = writeln!(s, "boot loader: {loader}");
    let firmware: Vec<&str> = r.firmware.iter().map(|f| firmware_text(*f)).collect();
    let _ = writeln!(s, "firmware: {}", if firmware.is_empty() { "none".into() } else { firmware.join(", ") });
    match &r.kernel {
        Some(k) => {
            let _ = writeln!(s, "kernel: {}, {} bytes, sha256 {}", p(&k.name), k.size, k.sha256);
            if let Some(h) = &k.header {
                let _ = writeln!(s, "  multiboot header at offset {:#x}, flags {:#010x}", h.offset, h.flags);
            }
            match &k.load {
                Ok(plan) => {
                    let _ = writeln!(s, "  load plan: {}, entry point {:#010x}", plan.format, plan.entry);
                    for seg in &plan.segments {
                        let _ = writeln!(
                            s,
                            "    file bytes {:#x}+{:#x} -> {:#010x}, {:#x} bytes in memory",
                            seg.file_offset, seg.file_size, seg.addr, seg.mem_size
                        );
                    }
                }
                Err(e) => {
                    let _ = writeln!(s, "  not loadable: {}", p(e));
                }
            }
        }
        None => {
            let _ = writeln!(s, "kernel: not identified");
        }
    }
    if let Some(c) = &r.cmdline {
        let _ = writeln!(s, "command line: {}", p(c));
    }
    let _ = writeln!(s, "checks:");
    for c in &r.checks {
        let _ = writeln!(s, "  {:<4} {:<20} {}", if c.ok { "ok" } else { "FAIL" }, c.name, p(&c.detail));
    }
    let _ = writeln!(s, "GCE ready: {}", if r.gce_ready() { "yes" } else { "no" });
    s
}

/// A firmware as the text report names it.
fn firmware_text(firmware: Firmware) -> &'static str {
    match firmware {
        Firmware::Bios => "BIOS",
        Firmware::Uefi => "UEFI",
        _ => "BIOS and UEFI",
    }
}

fn to_json(path: &std::path::Path, r: &Report) -> Value {
    let tarball = match r.container.tarball() {
        None => Value::Null,
        Some(a) => json!({
            "members": a.members.iter().map(|m| json!({
                "name": m.name,
                "type": m.typeflag.to_string(),
                "format": m.format.name(),
                "sparse": m.sparse.is_some(),
                "sparse_format": m.sparse.map(|s| s.name()),
                "pax": m.pax,
                "size": m.size,
                "mode": m.mode,
                "uid": m.uid,
                "gid": m.gid,
                "mtime": m.mtime,
            })).collect::<Vec<_>>(),
            "pax_headers": a.pax_headers,
            "gzip_members": a.gzip_members,
            "trailing_bytes": a.trailing.bytes,
            "not_read": a.not_read,
        }),
    };
    let filesystem = r.filesystem.as_ref().map_or(Value::Null, |fs| {
        json!({
            "partition": fs.partition,
            "type": fs.fat_type,
            "cluster_size": fs.cluster_size,
            "volume_id": fs.volume_id,
            "files": fs.files.iter().map(|f| json!({
                "name": f.name, "size": f.size, "first_cluster": f.first_cluster, "directory": f.directory,
            })).collect::<Vec<_>>(),
        })
    });
    let record = r.boot_loader.record();
    let boot_loader = json!({
        "kind": r.boot_loader.kind(),
        "stage_version": r.boot_loader.stage_version(),
        "uefi_loader_version": r.boot_loader.uefi_loader_version(),
        "record": record.and_then(|rec| rec.as_ref().ok()).map(|rec| json!({
            "runs": rec.runs.iter().map(|run| json!({
                "lba": run.lba, "dest": run.dest, "skip": run.skip, "length": run.len, "sectors": run.sectors,
            })).collect::<Vec<_>>(),
            "zero_ranges": rec.zeros.iter().map(|z| json!({"dest": z.dest, "length": z.len})).collect::<Vec<_>>(),
            "entry": rec.entry,
            "loader_name": rec.loader_name,
            "boot_partition": u32::from(rec.boot_partition) + 1,
            "quiet": rec.flags & mkimage_core::boot::record::FLAG_QUIET != 0,
            "video": (rec.flags & mkimage_core::boot::record::FLAG_VIDEO != 0).then(|| json!({
                "mode_type": rec.video.mode_type,
                "width": rec.video.width,
                "height": rec.video.height,
                "depth": rec.video.depth,
            })),
        })),
        "record_error": record.and_then(|rec| rec.as_ref().err()),
    });
    let kernel = r.kernel.as_ref().map_or(Value::Null, |k| {
        json!({
            "name": k.name,
            "size": k.size,
            "sha256": k.sha256,
            "contiguous": k.contiguous,
            "multiboot": k.load.as_ref().ok().map(|plan| json!({
                "header_offset": plan.header.offset,
                "flags": plan.header.flags,
                "format": plan.format.to_string(),
                "entry": plan.entry,
                "segments": plan.segments.iter().map(|s| json!({
                    "file_offset": s.file_offset, "file_size": s.file_size, "addr": s.addr, "mem_size": s.mem_size,
                })).collect::<Vec<_>>(),
            })),
            "multiboot_error": k.load.as_ref().err(),
        })
    });
    json!({
        "schema_version": JSON_SCHEMA_VERSION,
        "path": path.display().to_string(),
        "container": r.container.name(),
        "tarball": tarball,
        "disk_size": r.disk_size,
        "partition_table": r.table.kind,
        "disk_id": r.table.disk_id,
        "partitions": r.table.partitions.iter().map(|p| json!({
            "number": p.number,
            "start_lba": p.start,
            "sectors": p.sectors,
            "type": p.kind,
            "type_name": p.kind_name,
            "bootable": p.bootable,
            "name": p.name,
            "guid": p.guid,
        })).collect::<Vec<_>>(),
        "filesystem": filesystem,
        "boot_loader": boot_loader,
        "firmware": r.firmware.iter().map(|f| f.name()).collect::<Vec<_>>(),
        "kernel": kernel,
        "cmdline": r.cmdline,
        "checks": r.checks.iter().map(|c| json!({"name": c.name.as_str(), "ok": c.ok, "detail": c.detail})).collect::<Vec<_>>(),
        "gce_ready": r.gce_ready(),
    })
}
