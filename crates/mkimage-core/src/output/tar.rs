//! The tar header layout: POSIX ustar, and the old-GNU fields this tool writes (sparse map,
//! real size) and the inspector reads. Positions are named once here; the tarball writer fills
//! them through the `tar` crate's header types, whose fields lie at the same offsets, and the
//! inspector reads them by these names.

use std::ops::Range;

/// tar block size.
pub const BLOCK: usize = 512;
/// GNU tar's default record size (blocking factor 20); archives are padded to a multiple of it.
pub const RECORD: u64 = 20 * BLOCK as u64;

/// Member path (ustar: after the prefix).
pub const NAME: Range<usize> = 0..100;
/// Permission bits, octal text.
pub const MODE: Range<usize> = 100..108;
/// Owner id, octal text.
pub const UID: Range<usize> = 108..116;
/// Group id, octal text.
pub const GID: Range<usize> = 116..124;
/// Size of the member's data in the archive, octal text (or GNU base-256).
pub const SIZE: Range<usize> = 124..136;
/// Modification time, octal text.
pub const MTIME: Range<usize> = 136..148;
/// Header checksum: the sum of the header's bytes with this field taken as spaces.
pub const CHECKSUM: Range<usize> = 148..156;
/// Type flag.
pub const TYPEFLAG: usize = 156;
/// Format magic and version.
pub const MAGIC: Range<usize> = 257..265;
/// Owner name.
pub const UNAME: Range<usize> = 265..297;
/// Group name.
pub const GNAME: Range<usize> = 297..329;
/// ustar: path prefix.
pub const PREFIX: Range<usize> = 345..500;
/// old-GNU: access and change times (empty in what GNU tar writes, and what GCE accepts).
pub const GNU_ATIME_CTIME: Range<usize> = 345..369;
/// old-GNU: the sparse map entries held in the header itself.
pub const GNU_SPARSE: usize = 386;
/// old-GNU: whether extension headers with more sparse entries follow.
pub const GNU_IS_EXTENDED: usize = 482;
/// old-GNU: the real size of a sparse file.
pub const GNU_REAL_SIZE: Range<usize> = 483..495;
/// old-GNU extension header: whether another one follows.
pub const EXT_IS_EXTENDED: usize = 504;

/// Magic (and version) of old-GNU headers.
pub const OLDGNU_MAGIC: &[u8; 8] = b"ustar  \0";
/// Magic of POSIX ustar (and PAX) headers.
pub const USTAR_MAGIC: &[u8; 6] = b"ustar\0";

/// Bytes of one sparse map entry: offset and length, 12 bytes of octal text each.
pub const SPARSE_ENTRY_LEN: usize = 24;
/// Width of each number in a sparse entry.
pub const SPARSE_NUMBER_LEN: usize = 12;
/// Sparse map entries held in the main old-GNU header.
pub const HEADER_SPARSE_SLOTS: usize = 4;
/// Sparse map entries held in each extension header.
pub const EXT_SPARSE_SLOTS: usize = 21;

/// Type flag: regular file.
pub const TYPE_REGULAR: u8 = b'0';
/// Type flag: regular file (pre-POSIX archives).
pub const TYPE_REGULAR_OLD: u8 = b'\0';
/// Type flag: contiguous file (read as a regular file).
pub const TYPE_CONTIGUOUS: u8 = b'7';
/// Type flag: old-GNU sparse file.
pub const TYPE_GNU_SPARSE: u8 = b'S';
/// Type flag: GNU long name for the next member.
pub const TYPE_GNU_LONG_NAME: u8 = b'L';
/// Type flag: PAX extended header for the next member.
pub const TYPE_PAX_EXTENDED: u8 = b'x';
/// Type flag: PAX global extended header.
pub const TYPE_PAX_GLOBAL: u8 = b'g';

/// Offset of sparse map entry `slot` of the main header.
pub const fn header_sparse_entry(slot: usize) -> Range<usize> {
    GNU_SPARSE + slot * SPARSE_ENTRY_LEN..GNU_SPARSE + (slot + 1) * SPARSE_ENTRY_LEN
}

/// Offset of sparse map entry `slot` of an extension header.
pub const fn ext_sparse_entry(slot: usize) -> Range<usize> {
    slot * SPARSE_ENTRY_LEN..(slot + 1) * SPARSE_ENTRY_LEN
}

/// Bytes of padding that bring `len` bytes of member data to a whole block.
pub const fn padding(len: u64) -> u64 {
    (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64
}
