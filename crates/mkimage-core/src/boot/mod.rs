//! Boot stages: the machine code that runs before the kernel, and the [`record`] that tells it
//! what to load.
//!
//! - [`bios`]: for legacy BIOS firmware, the MBR code and stage 2 (sources `bios/*.asm`,
//!   committed bytes `bios/*.bin` beside them), which read the kernel's sectors with INT 13h.
//! - [`uefi`]: for UEFI firmware, `\EFI\BOOT\BOOTX64.EFI` (source `uefi/bootx64.asm`), which
//!   reads the kernel file through the firmware's file system.
//!
//! Every stage follows the same [`record::BootRecord`], computed on the host from the kernel's
//! load plan; no stage parses ELF. A [`Firmware`] choice says which stages an image carries.

pub mod bios;
pub mod record;
pub mod uefi;

/// The firmware an image boots from: which boot stages it carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Firmware {
    /// Legacy BIOS only: the MBR code and stage 2.
    Bios,
    /// UEFI only: `\EFI\BOOT\BOOTX64.EFI`; the MBR code only says that the disk needs UEFI.
    Uefi,
    /// Both: the BIOS stage and the UEFI loader, following the same boot record.
    #[default]
    Hybrid,
}

impl Firmware {
    /// The lower-case name used on the command line, in identity derivation and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
            Firmware::Hybrid => "hybrid",
        }
    }

    /// Whether the image carries the BIOS stage.
    pub const fn bios(self) -> bool {
        matches!(self, Firmware::Bios | Firmware::Hybrid)
    }

    /// Whether the image carries the UEFI loader.
    pub const fn uefi(self) -> bool {
        matches!(self, Firmware::Uefi | Firmware::Hybrid)
    }

    /// The record flags every stage of this choice can honour.
    pub const fn allowed_record_flags(self) -> u32 {
        if self.bios() { record::FLAG_QUIET } else { record::FLAG_QUIET | record::FLAG_VIDEO }
    }
}

impl std::fmt::Display for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
