//! How QEMU is started to boot an image: a headless machine with COM1 on standard output, and
//! the one table of disk attachments. Used by `run`, the boot tests and the benchmark.

use std::path::Path;

/// The I/O port and size of QEMU's isa-debug-exit device, as the fixture kernels use it.
pub const DEBUG_EXIT_DEVICE: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";

/// Arguments of a headless machine of type `machine` with `memory` (QEMU's syntax) whose only
/// console is COM1 on standard input and output: no default devices, no display.
pub fn headless(machine: &str, memory: &str) -> Vec<String> {
    ["-machine", machine, "-m", memory, "-nodefaults", "-display", "none", "-serial", "stdio"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// How the boot disk is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disk {
    /// The machine's IDE controller (PIIX on pc; on q35, the ICH9 SATA ports).
    Ide,
    /// An AHCI controller added as a device.
    Ahci,
    /// virtio-scsi, 512-byte sectors.
    VirtioScsi,
    /// virtio-scsi with 4096-byte physical sectors (512-byte logical), GCE's geometry.
    VirtioScsi4k,
    /// virtio-blk.
    VirtioBlk,
    /// NVMe.
    Nvme,
}

impl Disk {
    /// Short name, for test names and reports.
    pub fn name(self) -> &'static str {
        match self {
            Disk::Ide => "ide",
            Disk::Ahci => "ahci",
            Disk::VirtioScsi => "virtio-scsi",
            Disk::VirtioScsi4k => "virtio-scsi-4k",
            Disk::VirtioBlk => "virtio-blk",
            Disk::Nvme => "nvme",
        }
    }

    /// QEMU arguments attaching the raw image `image` as the boot disk. The caller decides
    /// whether writes reach it (`-snapshot`).
    pub fn args(self, image: &Path) -> Vec<String> {
        let drive = |extra: &str| format!("file={},format=raw,{extra}", image.display());
        let devices: &[&str] = match self {
            Disk::Ide => return vec!["-drive".into(), drive("if=ide")],
            Disk::Ahci => &["ahci,id=ahci", "ide-hd,drive=disk0,bus=ahci.0"],
            Disk::VirtioScsi => &["virtio-scsi-pci,id=scsi", "scsi-hd,drive=disk0"],
            Disk::VirtioScsi4k => {
                &["virtio-scsi-pci,id=scsi", "scsi-hd,drive=disk0,physical_block_size=4096,logical_block_size=512"]
            }
            Disk::VirtioBlk => &["virtio-blk-pci,drive=disk0"],
            Disk::Nvme => &["nvme,serial=mkimage,drive=disk0"],
        };
        let mut args: Vec<String> = devices.iter().flat_map(|d| ["-device".to_string(), d.to_string()]).collect();
        args.extend(["-drive".to_string(), drive("if=none,id=disk0")]);
        args
    }
}

impl std::fmt::Display for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}
