//! Test scaffolding shared by this crate's tests, the command-line tool's tests, the benchmark,
//! the fuzz targets and the documentation examples: tiny valid Multiboot kernels, a Multiboot
//! header writer, an ELF file builder and deterministic random bytes. Not part of the library's
//! API (hidden from its documentation); it may change at any time.
//!
//! [`multiboot_kernel`] wraps arbitrary payload bytes in the smallest file a Multiboot loader
//! accepts: an a.out-kludge header at offset 0 loading the whole file at 1 MiB, whose entry point
//! halts the machine. It lets callers exercise image building without an assembler.

use crate::multiboot::elf::{self, ClassLayout, ELF32, ELF64};
use crate::multiboot::{FLAG_AOUT_KLUDGE, FLAG_MEMORY_INFO, FLAG_PAGE_ALIGN, HEADER_KLUDGE_LEN, HEADER_MAGIC};

/// Physical address the test kernel loads at.
pub const LOAD_ADDR: u32 = 0x10_0000;
/// Header flags of [`multiboot_kernel`]: page-align modules, memory information, a.out kludge.
pub const KLUDGE_FLAGS: u32 = FLAG_PAGE_ALIGN | FLAG_MEMORY_INFO | FLAG_AOUT_KLUDGE;
/// `cli; hlt; jmp $-1`: halts forever with interrupts off.
const HALT_LOOP: [u8; 4] = [0xFA, 0xF4, 0xEB, 0xFD];

/// A Multiboot header with `flags` and a correct checksum, followed by the five a.out kludge
/// fields (header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr) when given.
///
/// ```
/// let h = mkimage_core::testkit::multiboot_header(0x3, None);
/// assert_eq!(h.len(), 12);
/// ```
pub fn multiboot_header(flags: u32, kludge: Option<[u32; 5]>) -> Vec<u8> {
    let checksum = 0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(flags);
    [HEADER_MAGIC, flags, checksum].into_iter().chain(kludge.into_iter().flatten()).flat_map(u32::to_le_bytes).collect()
}

/// Copies `bytes` into `file` at `offset`, growing the file with zeros if needed.
pub fn place(file: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
    if file.len() < offset + bytes.len() {
        file.resize(offset + bytes.len(), 0);
    }
    file[offset..offset + bytes.len()].copy_from_slice(bytes);
}

/// A Multiboot kernel carrying `payload` after its header and halt loop.
///
/// ```
/// let kernel = mkimage_core::testkit::multiboot_kernel(b"payload");
/// assert_eq!(&kernel[..4], &0x1BADB002u32.to_le_bytes());
/// assert!(kernel.ends_with(b"payload"));
/// ```
pub fn multiboot_kernel(payload: &[u8]) -> Vec<u8> {
    let header_len = HEADER_KLUDGE_LEN as u32;
    let fields = [
        LOAD_ADDR,              // header_addr: the header is the first thing loaded
        LOAD_ADDR,              // load_addr
        0,                      // load_end_addr: 0 = load the whole file
        0,                      // bss_end_addr: no bss
        LOAD_ADDR + header_len, // entry_addr: the halt loop after the header
    ];
    let mut file = multiboot_header(KLUDGE_FLAGS, Some(fields));
    file.extend_from_slice(&HALT_LOOP);
    file.extend_from_slice(payload);
    file
}

/// A program header: (type, offset, vaddr, paddr, filesz, memsz).
pub type ProgramHeader = (u32, u64, u64, u64, u64, u64);

/// An ELF file built field by field, for tests of the kernel parser. Every field can be set
/// to any value, valid or not; fields that fall outside `len` bytes are left out, so truncated
/// files can be made too.
#[derive(Clone, Debug)]
pub struct Elf {
    /// `e_ident[EI_CLASS]`: 1 (ELF32) or 2 (ELF64); anything else uses the ELF64 layout.
    pub class: u8,
    /// `e_ident[EI_DATA]`.
    pub data: u8,
    /// `e_machine`.
    pub machine: u16,
    /// `e_type`.
    pub kind: u16,
    /// `e_entry`.
    pub entry: u64,
    /// `e_phoff`, when not right after the file header.
    pub phoff: Option<u64>,
    /// `e_phnum`, when not the number of `segments`.
    pub phnum: Option<u16>,
    /// `e_phentsize`, when not the class's program header size.
    pub phentsize: Option<u16>,
    /// Program headers, written from `e_phoff` on.
    pub segments: Vec<ProgramHeader>,
    /// File length.
    pub len: usize,
    /// A Multiboot header (no kludge fields): its offset and flags.
    pub multiboot: Option<(usize, u32)>,
}

impl Elf {
    /// An executable for x86 of the given class with no segments, `len` 0x1000 and a Multiboot
    /// header asking for memory information at 0x400.
    pub fn new(class64: bool) -> Elf {
        Elf {
            class: if class64 { elf::CLASS64 } else { elf::CLASS32 },
            data: elf::DATA_LSB,
            machine: if class64 { elf::EM_X86_64 } else { elf::EM_386 },
            kind: elf::ET_EXEC,
            entry: 0,
            phoff: None,
            phnum: None,
            phentsize: None,
            segments: Vec::new(),
            len: 0x1000,
            multiboot: Some((0x400, FLAG_MEMORY_INFO)),
        }
    }

    fn layout(&self) -> ClassLayout {
        if self.class == elf::CLASS32 { ELF32 } else { ELF64 }
    }

    /// The file's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let layout = self.layout();
        let mut f = vec![0u8; self.len];
        let mut put = |at: usize, v: u64, width: usize| {
            if let Some(field) = at.checked_add(width).and_then(|end| f.get_mut(at..end)) {
                field.copy_from_slice(&v.to_le_bytes()[..width]);
            }
        };
        put(0, u64::from(u32::from_le_bytes(elf::MAGIC)), 4);
        put(elf::IDENT_CLASS, u64::from(self.class), 1);
        put(elf::IDENT_DATA, u64::from(self.data), 1);
        put(elf::IDENT_VERSION, u64::from(elf::VERSION_CURRENT), 1);
        put(elf::E_TYPE.offset(), u64::from(self.kind), 2);
        put(elf::E_MACHINE.offset(), u64::from(self.machine), 2);
        let phoff = self.phoff.unwrap_or(layout.ehdr_len as u64);
        put(layout.entry, self.entry, layout.word);
        put(layout.phoff, phoff, layout.word);
        put(layout.phentsize, u64::from(self.phentsize.unwrap_or(layout.phdr_len as u16)), 2);
        put(layout.phnum, u64::from(self.phnum.unwrap_or(self.segments.len() as u16)), 2);
        for (i, &(kind, offset, vaddr, paddr, filesz, memsz)) in self.segments.iter().enumerate() {
            let Some(at) = usize::try_from(phoff).ok().and_then(|p| p.checked_add(i * layout.phdr_len)) else {
                continue;
            };
            put(at, u64::from(kind), 4);
            for (field, value) in [
                (layout.p_offset, offset),
                (layout.p_vaddr, vaddr),
                (layout.p_paddr, paddr),
                (layout.p_filesz, filesz),
                (layout.p_memsz, memsz),
            ] {
                put(at.saturating_add(field), value, layout.word);
            }
        }
        if let Some((offset, flags)) = self.multiboot {
            let header = multiboot_header(flags, None);
            if let Some(slot) = f.get_mut(offset..offset + header.len()) {
                slot.copy_from_slice(&header);
            }
        }
        f
    }
}

/// Deterministic pseudo-random bytes (xorshift32 from `seed`, which must not be 0):
/// incompressible test data.
pub fn random_bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
