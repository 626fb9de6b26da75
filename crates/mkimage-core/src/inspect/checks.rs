//! The checks a report lists: their names, and the checks that need nothing but the container
//! and the partition table (GCE's import rules, the table itself, a bootable partition).

use super::tables::Table;
use super::tarball::{Archive, Format, Member, Sparse};
use crate::output::gce::MEMBER_NAME;
use crate::size::GIB;

/// What a check is about. Its [`CheckName::as_str`] form is the stable identifier used in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckName {
    /// GCE: the tarball holds exactly one member.
    GceSingleMember,
    /// GCE: that member is `disk.raw`.
    GceMemberName,
    /// GCE: old-GNU format, no PAX headers, no atime/ctime.
    GceFormat,
    /// GCE: the disk is a whole, non-zero number of GiB.
    GceSize,
    /// The partition table is valid and has partitions.
    PartitionTable,
    /// A partition is marked bootable (or is an EFI system partition).
    BootablePartition,
    /// A FAT filesystem was found, with consistent boot sectors.
    Filesystem,
    /// The MBR holds this tool's boot code (the BIOS stage, or the notice of a UEFI-only disk).
    BootCode,
    /// `\EFI\BOOT\BOOTX64.EFI`, when present, is this tool's UEFI loader, with the BIOS stage's
    /// boot record when there is one.
    UefiLoader,
    /// The kernel file is on the filesystem and readable.
    KernelFile,
    /// The kernel is a Multiboot kernel this tool can load.
    KernelMultiboot,
    /// The boot record loads exactly the kernel file.
    BootRecord,
    /// `build-info.txt` records the kernel found (size, SHA-256, command line).
    BuildInfo,
}

impl CheckName {
    /// The checks that make up GCE's import rules.
    pub const GCE_RULES: [CheckName; 4] =
        [CheckName::GceSingleMember, CheckName::GceMemberName, CheckName::GceFormat, CheckName::GceSize];

    /// The stable identifier (`"gce_format"`, `"boot_record"`...).
    pub const fn as_str(self) -> &'static str {
        match self {
            CheckName::GceSingleMember => "gce_single_member",
            CheckName::GceMemberName => "gce_member_name",
            CheckName::GceFormat => "gce_format",
            CheckName::GceSize => "gce_size",
            CheckName::PartitionTable => "partition_table",
            CheckName::BootablePartition => "bootable_partition",
            CheckName::Filesystem => "filesystem",
            CheckName::BootCode => "boot_code",
            CheckName::UefiLoader => "uefi_loader",
            CheckName::KernelFile => "kernel_file",
            CheckName::KernelMultiboot => "kernel_multiboot",
            CheckName::BootRecord => "boot_record",
            CheckName::BuildInfo => "build_info",
        }
    }
}

impl std::fmt::Display for CheckName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One check and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Check {
    /// What it is about.
    pub name: CheckName,
    /// Whether it holds.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

impl Check {
    /// A check's outcome.
    pub fn new(name: CheckName, ok: bool, detail: impl Into<String>) -> Check {
        Check { name, ok, detail: detail.into() }
    }

    /// The outcome of a check whose detail is the reason when it fails.
    pub fn from_result(name: CheckName, result: Result<String, String>) -> Check {
        match result {
            Ok(detail) => Check::new(name, true, detail),
            Err(detail) => Check::new(name, false, detail),
        }
    }
}

/// GCE's import rules for a tarball holding a disk of `disk_size` bytes.
pub(super) fn gce_rules(archive: &Archive, disk_size: u64) -> Vec<Check> {
    let members = &archive.members;
    let first = members.first();
    let member = members.iter().find(|m| m.name == MEMBER_NAME).or(first);
    let whole_gib = disk_size.is_multiple_of(GIB);
    vec![
        Check::new(CheckName::GceSingleMember, members.len() == 1, format!("{} member(s)", members.len())),
        Check::new(
            CheckName::GceMemberName,
            first.is_some_and(|m| m.name == MEMBER_NAME),
            format!("first member: {}", first.map_or("none", |m| m.name.as_str())),
        ),
        Check::from_result(CheckName::GceFormat, format_rule(archive, member)),
        Check::new(
            CheckName::GceSize,
            disk_size > 0 && whole_gib,
            format!("{disk_size} bytes{}", if whole_gib { "" } else { ", not a whole number of GiB" }),
        ),
    ]
}

/// GCE reads GNU and old-GNU tar (old-GNU sparse entries included) in a gzip stream; it
/// rejects PAX headers and old-GNU headers with access or change times.
fn format_rule(archive: &Archive, member: Option<&Member>) -> Result<String, String> {
    let Some(m) = member else { return Err("no member".into()) };
    let mut described = vec![format!("{} format", m.format.name())];
    described.extend(m.sparse.map(|s| s.name().to_string()));
    if archive.gzip_members > 1 {
        described.push(format!("{} gzip members", archive.gzip_members));
    }
    let mut problems = Vec::new();
    if m.format != Format::OldGnu {
        problems.push("GCE accepts only GNU and old-GNU tar headers".to_string());
    }
    if archive.pax_headers {
        problems.push("PAX headers, which GCE rejects".into());
    }
    if matches!(m.sparse, Some(Sparse::Pax(_))) {
        problems.push("a PAX sparse file (GCE reads old-GNU sparse entries only)".into());
    }
    if m.atime_or_ctime {
        problems.push("atime/ctime set, which GCE rejects".into());
    }
    let trailing = archive.trailing;
    if trailing.bytes > 0 {
        problems.push(format!(
            "{}{} bytes after the gzip stream that are not gzip",
            if trailing.more { "more than " } else { "" },
            trailing.bytes
        ));
    }
    if archive.after_end > 0 {
        problems.push("data after the tar end-of-archive marker".into());
    }
    let described = described.join(", ");
    if problems.is_empty() { Ok(described) } else { Err(format!("{described}: {}", problems.join("; "))) }
}
/// The partition table is valid and non-empty; a partition is bootable.
pub(super) fn table_checks(table: &Table) -> [Check; 2] {
    let table_ok = table.problems.is_empty() && !table.partitions.is_empty();
    let table_detail = if table.problems.is_empty() {
        format!("{}, {} partition(s)", table.kind.to_uppercase(), table.partitions.len())
    } else {
        table.problems.join("; ")
    };
    let bootable = table.partitions.iter().find(|p| p.bootable || p.kind_name == super::tables::KIND_EFI_SYSTEM);
    [
        Check::new(CheckName::PartitionTable, table_ok, table_detail),
        Check::new(
            CheckName::BootablePartition,
            bootable.is_some(),
            bootable.map_or("none marked bootable".to_string(), |p| format!("partition {}", p.number)),
        ),
    ]
}
