//! ELF32 and ELF64 kernels without the a.out kludge: the field positions of the file and program
//! headers ([`ClassLayout`], shared with the test ELF builder) and the planner that turns
//! `PT_LOAD` segments into [`Segment`]s at their physical addresses.

use super::{KernelBytes, KernelError, KernelFormat, MAX_LOAD_END, MAX_PROGRAM_HEADERS, Segment, read_vec};
use crate::bytes::Le;

/// ELF identification: magic bytes.
pub const MAGIC: [u8; 4] = [0x7F, b'E', b'L', b'F'];
/// `e_ident[EI_CLASS]`.
pub const IDENT_CLASS: usize = 4;
/// `e_ident[EI_DATA]`.
pub const IDENT_DATA: usize = 5;
/// `e_ident[EI_VERSION]`.
pub const IDENT_VERSION: usize = 6;
/// Bytes of `e_ident`.
pub const IDENT_LEN: usize = 16;
/// `e_ident[EI_CLASS]` of a 32-bit ELF file.
pub const CLASS32: u8 = 1;
/// `e_ident[EI_CLASS]` of a 64-bit ELF file.
pub const CLASS64: u8 = 2;
/// `e_ident[EI_DATA]` of a little-endian ELF file.
pub const DATA_LSB: u8 = 1;
/// `e_ident[EI_VERSION]`: the current version.
pub const VERSION_CURRENT: u8 = 1;
/// `e_type`.
pub const E_TYPE: Le<u16> = Le::at(16);
/// `e_machine`.
pub const E_MACHINE: Le<u16> = Le::at(18);
/// `e_type` of an executable.
pub const ET_EXEC: u16 = 2;
/// `e_machine` of i386.
pub const EM_386: u16 = 3;
/// `e_machine` of x86-64.
pub const EM_X86_64: u16 = 62;
/// `p_type` of a loadable segment.
pub const PT_LOAD: u32 = 1;

/// Where the fields of one ELF class lie. Address-sized fields ("words") are 4 or 8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassLayout {
    /// The class byte.
    pub class: u8,
    /// Bytes of an address-sized field.
    pub word: usize,
    /// Size of the file header.
    pub ehdr_len: usize,
    /// Size of a program header.
    pub phdr_len: usize,
    /// `e_entry` (a word).
    pub entry: usize,
    /// `e_phoff` (a word).
    pub phoff: usize,
    /// `e_phentsize` (u16).
    pub phentsize: usize,
    /// `e_phnum` (u16).
    pub phnum: usize,
    /// `p_offset` within a program header (a word; `p_type` is the u32 at 0).
    pub p_offset: usize,
    /// `p_vaddr` (a word).
    pub p_vaddr: usize,
    /// `p_paddr` (a word).
    pub p_paddr: usize,
    /// `p_filesz` (a word).
    pub p_filesz: usize,
    /// `p_memsz` (a word).
    pub p_memsz: usize,
}

/// ELF32 field positions.
pub const ELF32: ClassLayout = ClassLayout {
    class: CLASS32,
    word: 4,
    ehdr_len: 52,
    phdr_len: 32,
    entry: 24,
    phoff: 28,
    phentsize: 42,
    phnum: 44,
    p_offset: 4,
    p_vaddr: 8,
    p_paddr: 12,
    p_filesz: 16,
    p_memsz: 20,
};

/// ELF64 field positions.
pub const ELF64: ClassLayout = ClassLayout {
    class: CLASS64,
    word: 8,
    ehdr_len: 64,
    phdr_len: 56,
    entry: 24,
    phoff: 32,
    phentsize: 54,
    phnum: 56,
    p_offset: 8,
    p_vaddr: 16,
    p_paddr: 24,
    p_filesz: 32,
    p_memsz: 40,
};

impl ClassLayout {
    /// Reads an address-sized field at `at`.
    pub fn word_at(&self, data: &[u8], at: usize) -> Option<u64> {
        if self.word == 4 { Le::<u32>::at(at).get(data).map(u64::from) } else { Le::<u64>::at(at).get(data) }
    }

    /// Reads a u16 field at `at`.
    pub fn half_at(&self, data: &[u8], at: usize) -> Option<u16> {
        Le::<u16>::at(at).get(data)
    }
}

/// One ELF program header, widened to 64 bits.
struct ProgramHeader {
    kind: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

/// Plans an ELF kernel: its class, loadable segments and physical entry point. Reads the file
/// header and the program header table only.
pub(super) fn plan_elf(source: &mut dyn KernelBytes) -> Result<(KernelFormat, Vec<Segment>, u64), KernelError> {
    let file_len = source.len();
    let header_len = file_len.min(ELF64.ehdr_len as u64) as usize;
    let kernel = &read_vec(source, 0, header_len).ok_or(KernelError::ElfTruncated)?[..];
    if kernel.len() < IDENT_LEN || kernel[..4] != MAGIC {
        return Err(KernelError::NotElf);
    }
    let (format, layout) = match kernel[IDENT_CLASS] {
        CLASS32 => (KernelFormat::Elf32, ELF32),
        CLASS64 => (KernelFormat::Elf64, ELF64),
        other => return Err(KernelError::ElfBadClass(other)),
    };
    if kernel[IDENT_DATA] != DATA_LSB {
        return Err(KernelError::ElfNotLittleEndian(kernel[IDENT_DATA]));
    }
    if kernel.len() < layout.ehdr_len {
        return Err(KernelError::ElfTruncated);
    }
    let e_type = E_TYPE.get(kernel).ok_or(KernelError::ElfTruncated)?;
    let machine = E_MACHINE.get(kernel).ok_or(KernelError::ElfTruncated)?;
    let expected_machine = if format == KernelFormat::Elf32 { EM_386 } else { EM_X86_64 };
    if machine != expected_machine && machine != EM_386 {
        return Err(KernelError::ElfBadMachine(machine));
    }
    if e_type != ET_EXEC {
        return Err(KernelError::ElfNotExecutable(e_type));
    }
    let entry = layout.word_at(kernel, layout.entry).ok_or(KernelError::ElfTruncated)?;
    let phoff = layout.word_at(kernel, layout.phoff).ok_or(KernelError::ElfTruncated)?;
    let phentsize = layout.half_at(kernel, layout.phentsize).ok_or(KernelError::ElfTruncated)?;
    let count = usize::from(layout.half_at(kernel, layout.phnum).ok_or(KernelError::ElfTruncated)?);
    if count > MAX_PROGRAM_HEADERS {
        return Err(KernelError::ElfTooManyProgramHeaders(count));
    }
    if count > 0 && usize::from(phentsize) != layout.phdr_len {
        return Err(KernelError::ElfBadProgramHeaderSize { found: phentsize, expected: layout.phdr_len });
    }
    let table_end = phoff.checked_add((count * layout.phdr_len) as u64);
    if table_end.is_none_or(|end| end > file_len) {
        return Err(KernelError::ElfProgramHeadersOutOfFile { offset: phoff, count });
    }
    let table = read_vec(source, phoff, count * layout.phdr_len)
        .ok_or(KernelError::ElfProgramHeadersOutOfFile { offset: phoff, count })?;
    let headers = (0..count).map(|i| {
        let at = i * layout.phdr_len;
        let word = |o: usize| layout.word_at(&table, at + o).unwrap_or(0);
        ProgramHeader {
            kind: Le::<u32>::at(at).get(&table).unwrap_or(0),
            offset: word(layout.p_offset),
            vaddr: word(layout.p_vaddr),
            paddr: word(layout.p_paddr),
            filesz: word(layout.p_filesz),
            memsz: word(layout.p_memsz),
        }
    });
    let mut segments = Vec::new();
    let mut entry_phys = None;
    for (index, ph) in headers.enumerate() {
        if ph.kind != PT_LOAD || ph.memsz == 0 {
            continue;
        }
        if ph.filesz > ph.memsz {
            return Err(KernelError::SegmentFileSizeExceedsMemSize { index, filesz: ph.filesz, memsz: ph.memsz });
        }
        if ph.offset.checked_add(ph.filesz).is_none_or(|end| end > file_len) {
            return Err(KernelError::SegmentOutOfFile { index, offset: ph.offset, filesz: ph.filesz });
        }
        let Some(end) = ph.paddr.checked_add(ph.memsz) else {
            return Err(KernelError::LoadAboveFourGib { start: ph.paddr, end: u64::MAX });
        };
        if end > MAX_LOAD_END {
            return Err(KernelError::LoadAboveFourGib { start: ph.paddr, end });
        }
        // The entry point is virtual; translate it through the segment that contains it.
        if entry_phys.is_none() && entry >= ph.vaddr && entry - ph.vaddr < ph.filesz {
            entry_phys = Some(ph.paddr + (entry - ph.vaddr));
        }
        segments.push(Segment { file_offset: ph.offset, file_size: ph.filesz, addr: ph.paddr, mem_size: ph.memsz });
    }
    if segments.is_empty() {
        return Err(KernelError::NoLoadableSegment);
    }
    let entry = entry_phys.ok_or(KernelError::EntryOutsideImage { entry })?;
    Ok((format, segments, entry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multiboot::{FLAG_AOUT_KLUDGE, FLAG_MEMORY_INFO, LoadPlan};
    use crate::testkit::{Elf, multiboot_header, place};

    fn elf32() -> Elf {
        Elf {
            entry: 0x100010,
            segments: vec![
                (PT_LOAD, 0x1000, 0x100000, 0x100000, 0x800, 0x800),
                (6, 0, 0, 0, 0, 0), // PT_PHDR: ignored
                (PT_LOAD, 0x2000, 0x1000000, 0x1000000, 0x100, 0x4000),
            ],
            len: 0x3000,
            ..Elf::new(false)
        }
    }

    #[test]
    fn elf32_segments_load_at_physical_addresses() {
        let plan = LoadPlan::new(&elf32().bytes()).unwrap();
        assert_eq!(plan.format, KernelFormat::Elf32);
        assert_eq!(plan.segments.len(), 2);
        assert_eq!(
            plan.segments[1],
            Segment { file_offset: 0x2000, file_size: 0x100, addr: 0x1000000, mem_size: 0x4000 }
        );
        assert_eq!(plan.entry, 0x100010);
    }

    #[test]
    fn elf64_higher_half_entry_is_translated() {
        let high = 0xffff_ffff_8000_0000u64;
        let elf = Elf {
            entry: high + 0x100020,
            segments: vec![(PT_LOAD, 0x1000, high + 0x100000, 0x100000, 0x1000, 0x2000)],
            len: 0x2000,
            ..Elf::new(true)
        };
        let plan = LoadPlan::new(&elf.bytes()).unwrap();
        assert_eq!(plan.format, KernelFormat::Elf64);
        assert_eq!(plan.entry, 0x100020);
        assert_eq!(plan.segments[0].addr, 0x100000);
    }

    #[test]
    fn kludge_wins_over_elf() {
        let mut elf = elf32();
        elf.multiboot = Some((0x400, FLAG_MEMORY_INFO | FLAG_AOUT_KLUDGE));
        let mut f = elf.bytes();
        for (i, v) in [0x300400u32, 0x300000, 0x301000, 0x302000, 0x300800].iter().enumerate() {
            f[0x40c + 4 * i..0x410 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        let plan = LoadPlan::new(&f).unwrap();
        assert_eq!(plan.format, KernelFormat::AoutKludge);
        assert_eq!(plan.entry, 0x300800);
    }

    #[test]
    fn elf_errors() {
        let err = |elf: &Elf| LoadPlan::new(&elf.bytes()).unwrap_err();
        let mut e = elf32();
        e.segments[2].4 = 0x5000;
        assert!(matches!(err(&e), KernelError::SegmentFileSizeExceedsMemSize { index: 2, .. }));
        let mut e = elf32();
        e.segments[2].1 = 0x2f01;
        assert!(matches!(err(&e), KernelError::SegmentOutOfFile { index: 2, .. }));
        let mut e = elf32();
        e.segments[2].3 = 0x100400;
        assert!(matches!(err(&e), KernelError::SegmentsOverlap { .. }));
        let mut e = elf32();
        e.segments[0].0 = 6;
        e.segments[2].0 = 6;
        assert_eq!(err(&e), KernelError::NoLoadableSegment);
        let mut e = elf32();
        e.entry = 0x1000200; // in the second segment's zeroed part, not its loaded bytes
        assert!(matches!(err(&e), KernelError::EntryOutsideImage { .. }));
        let mut e = elf32();
        e.segments[0].3 = 0x1000;
        e.segments[0].2 = 0x1000;
        e.entry = 0x1010;
        assert!(matches!(err(&e), KernelError::LoadBelowOneMib { .. }));
        let mut e = elf32();
        e.segments[2].3 = 0xffff_f000;
        assert!(matches!(err(&e), KernelError::LoadAboveFourGib { .. }));
        let mut f = elf32().bytes();
        f[5] = 2;
        assert_eq!(LoadPlan::new(&f).unwrap_err(), KernelError::ElfNotLittleEndian(2));
        let mut f = elf32().bytes();
        f[4] = 3;
        assert_eq!(LoadPlan::new(&f).unwrap_err(), KernelError::ElfBadClass(3));
        let mut f = elf32().bytes();
        f[18] = 40;
        assert_eq!(LoadPlan::new(&f).unwrap_err(), KernelError::ElfBadMachine(40));
        let mut f = elf32().bytes();
        f[16] = 3;
        assert_eq!(LoadPlan::new(&f).unwrap_err(), KernelError::ElfNotExecutable(3));
        let mut f = elf32().bytes();
        f[42] = 40;
        assert!(matches!(LoadPlan::new(&f).unwrap_err(), KernelError::ElfBadProgramHeaderSize { .. }));
        let mut f = elf32().bytes();
        f[28..32].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert!(matches!(LoadPlan::new(&f).unwrap_err(), KernelError::ElfProgramHeadersOutOfFile { .. }));
        let mut f = elf32().bytes();
        f[44..46].copy_from_slice(&2000u16.to_le_bytes());
        assert_eq!(LoadPlan::new(&f).unwrap_err(), KernelError::ElfTooManyProgramHeaders(2000));
        let mut f = vec![0u8; 0x1000];
        place(&mut f, 0, &multiboot_header(FLAG_MEMORY_INFO, None));
        assert_eq!(LoadPlan::new(&f).unwrap_err(), KernelError::NotElf);
        let mut f = elf32().bytes();
        f.truncate(40);
        place(&mut f, 20, &multiboot_header(FLAG_MEMORY_INFO, None));
        assert_eq!(LoadPlan::new(&f).unwrap_err(), KernelError::ElfTruncated);
    }

    #[test]
    fn too_many_segments() {
        let mut e = elf32();
        e.len = 0x40000;
        e.segments =
            (0..40u64).map(|i| (PT_LOAD, 0x1000, 0x100000 + i * 0x1000, 0x100000 + i * 0x1000, 0x10, 0x10)).collect();
        e.entry = 0x100000;
        assert!(matches!(LoadPlan::new(&e.bytes()).unwrap_err(), KernelError::TooManySegments { count: 40, max: 32 }));
    }
}
