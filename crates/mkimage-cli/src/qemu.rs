//! How QEMU is started to boot an image: a headless machine with COM1 on standard output, the
//! one table of disk attachments, and UEFI firmware (OVMF) found where distributions install
//! it. Used by `run`, the boot tests and the benchmark.

use std::path::{Path, PathBuf};

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

/// A path as a value of QEMU's `-drive file=`, where a comma must be doubled.
fn drive_path(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
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
        let drive = |extra: &str| format!("file={},format=raw,{extra}", drive_path(image));
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

/// Where distributions install OVMF, QEMU's UEFI firmware, as (code, variable store template),
/// in the order they are tried: Debian and Ubuntu (`ovmf`, 4 MiB and 2 MiB builds), Fedora
/// (`edk2-ovmf`), Arch (`edk2-ovmf`, current and older layouts), and QEMU's own copy. Builds
/// with Secure Boot enabled are not listed: they need SMM, which the `pc` machine lacks, and
/// the loader is not signed.
pub const OVMF_LOCATIONS: &[(&str, &str)] = &[
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
    ("/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"),
    ("/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"),
    ("/usr/share/edk2-ovmf/x64/OVMF_CODE.fd", "/usr/share/edk2-ovmf/x64/OVMF_VARS.fd"),
    ("/usr/share/qemu/edk2-x86_64-code.fd", "/usr/share/qemu/edk2-i386-vars.fd"),
];

/// UEFI firmware for QEMU: the code, mapped read-only, and the template of its variable store,
/// which is never written (each boot gets a copy, [`Ovmf::args`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ovmf {
    /// The firmware code.
    pub code: PathBuf,
    /// The variable store template.
    pub vars: PathBuf,
}

impl Ovmf {
    /// The first of [`OVMF_LOCATIONS`] whose two files exist.
    pub fn find() -> Option<Ovmf> {
        OVMF_LOCATIONS
            .iter()
            .map(|(code, vars)| Ovmf { code: code.into(), vars: vars.into() })
            .find(|o| o.code.is_file() && o.vars.is_file())
    }

    /// Firmware from `--ovmf CODE[,VARS]`: without VARS, the variable store that
    /// [`OVMF_LOCATIONS`] pairs with CODE's file name, in CODE's directory.
    ///
    /// # Errors
    /// Which file is missing, or that no variable store is known for CODE.
    pub fn from_arg(arg: &str) -> Result<Ovmf, String> {
        let (code, vars) = match arg.split_once(',') {
            Some((code, vars)) => (PathBuf::from(code), PathBuf::from(vars)),
            None => {
                let code = PathBuf::from(arg);
                let name = code.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
                let vars = OVMF_LOCATIONS
                    .iter()
                    .find(|(c, _)| Path::new(c).file_name().and_then(|n| n.to_str()) == Some(name.as_str()))
                    .and_then(|(_, v)| Path::new(v).file_name())
                    .map(|v| code.with_file_name(v))
                    .ok_or_else(|| format!("no variable store is known to go with {arg}; give --ovmf CODE,VARS"))?;
                (code, vars)
            }
        };
        for (what, path) in [("code", &code), ("variable store", &vars)] {
            if !path.is_file() {
                return Err(format!("OVMF {what} {} is not a file", path.display()));
            }
        }
        Ok(Ovmf { code, vars })
    }

    /// QEMU arguments for this firmware with `vars_copy`, a writable copy of the variable
    /// store that the caller made (and removes).
    pub fn args(&self, vars_copy: &Path) -> Vec<String> {
        vec![
            "-drive".into(),
            format!("if=pflash,format=raw,unit=0,readonly=on,file={}", drive_path(&self.code)),
            "-drive".into(),
            format!("if=pflash,format=raw,unit=1,file={}", drive_path(vars_copy)),
        ]
    }
}
