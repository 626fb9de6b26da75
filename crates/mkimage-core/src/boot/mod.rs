//! Boot stages: the machine code that runs before the kernel, and the [`record`] that tells it
//! what to load.
//!
//! - [`bios`]: for legacy BIOS firmware, the MBR code and stage 2 (sources `bios/*.asm`,
//!   committed bytes `bios/*.bin` beside them), which read the kernel's sectors with INT 13h.
//!
//! Every stage follows the same [`record::BootRecord`], computed on the host from the kernel's
//! load plan; no stage parses ELF.

pub mod bios;
pub mod record;
