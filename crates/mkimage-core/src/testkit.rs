//! Tiny, valid Multiboot kernels for tests, examples and documentation.
//!
//! [`multiboot_kernel`] wraps arbitrary payload bytes in the smallest file a Multiboot loader
//! accepts: an a.out-kludge header at offset 0 loading the whole file at 1 MiB, whose entry point
//! halts the machine. It lets callers exercise image building without an assembler.

/// Physical address the test kernel loads at.
pub const LOAD_ADDR: u32 = 0x10_0000;
/// Multiboot 1 header magic.
const MULTIBOOT_MAGIC: u32 = 0x1BAD_B002;
/// Header flags: page-align modules (bit 0), memory information (bit 1), a.out kludge (bit 16).
const FLAGS: u32 = 0x0001_0003;
/// Size of the header with the kludge address fields.
const HEADER_LEN: u32 = 32;
/// `cli; hlt; jmp $-1`: halts forever with interrupts off.
const HALT_LOOP: [u8; 4] = [0xFA, 0xF4, 0xEB, 0xFD];

/// A Multiboot kernel carrying `payload` after its header and halt loop.
///
/// ```
/// let kernel = mkimage_core::testkit::multiboot_kernel(b"payload");
/// assert_eq!(&kernel[..4], &0x1BADB002u32.to_le_bytes());
/// assert!(kernel.ends_with(b"payload"));
/// ```
pub fn multiboot_kernel(payload: &[u8]) -> Vec<u8> {
    let mut file = Vec::with_capacity(HEADER_LEN as usize + HALT_LOOP.len() + payload.len());
    let fields = [
        MULTIBOOT_MAGIC,
        FLAGS,
        0u32.wrapping_sub(MULTIBOOT_MAGIC).wrapping_sub(FLAGS),
        LOAD_ADDR,              // header_addr: the header is the first thing loaded
        LOAD_ADDR,              // load_addr
        0,                      // load_end_addr: 0 = load the whole file
        0,                      // bss_end_addr: no bss
        LOAD_ADDR + HEADER_LEN, // entry_addr: the halt loop after the header
    ];
    for field in fields {
        file.extend_from_slice(&field.to_le_bytes());
    }
    file.extend_from_slice(&HALT_LOOP);
    file.extend_from_slice(payload);
    file
}
