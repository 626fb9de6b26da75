//! Reading a GCE image tarball as a stream: gzip (any number of members, see [`gzip`]), then
//! tar headers (old-GNU with sparse maps, ustar, PAX records with GNU's sparse encodings (see
//! [`pax`]), GNU long names), writing the disk member's data into a caller's file (sparsely:
//! zero blocks become holes). Memory stays bounded whatever the archive holds.
//!
//! Every size a header claims is checked as soon as it is read: a member of more than 2 TiB,
//! more data than the compressed input can hold (deflate expands at most 1032:1), a disk whose
//! size is not whole sectors, or a sparse map beyond the file are refused at once, before any
//! of the data is read. Reading stops as soon as the answer is known: after the disk member, a
//! second member's header is recorded but its data is not read; after the end-of-archive
//! marker at most [`MAX_AFTER_END`] bytes are; and a disk whose first sector holds no partition
//! table is not read further. [`Archive::not_read`] says what was left.

pub mod gzip;
pub mod pax;

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};

use crate::layout::MAX_DISK_SIZE;
use crate::output::gce::MEMBER_NAME;
use crate::output::tar::{self as layout, BLOCK, padding};
use pax::PaxSparse;

/// Most sparse-map entries accepted for one member.
pub const MAX_SPARSE_ENTRIES: usize = 100_000;
/// Most members examined.
pub const MAX_MEMBERS: usize = 1000;
/// Longest GNU long name accepted.
const MAX_LONG_NAME: u64 = 4096;
/// Largest PAX extended header accepted.
const MAX_PAX_HEADER: u64 = 64 << 10;
/// Bytes read per step while streaming member data.
const CHUNK: usize = 1 << 20;
/// Granularity at which zero data becomes holes in the unpacked disk.
const HOLE_BLOCK: usize = 4096;
/// Most decompressed bytes read after the end-of-archive marker.
pub const MAX_AFTER_END: u64 = 1 << 20;
/// The most deflate can expand its input: 258-byte matches coded in 2 bits, about 1032:1.
pub const MAX_DEFLATE_RATIO: u64 = 1032;
/// Slack on top of the expansion bound (gzip headers, a final partial block).
const EXPANSION_SLACK: u64 = 1 << 20;
/// Bytes per sector; a disk member's size must be whole sectors.
const SECTOR: u64 = crate::bytes::SECTOR_SIZE;

/// The header format of a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// `"ustar  \0"`: GNU tar's old-GNU format (what GCE's instructions produce).
    OldGnu,
    /// `"ustar\0"` + `"00"`: POSIX ustar (PAX).
    Ustar,
    /// No magic: pre-POSIX tar.
    V7,
}

impl Format {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Format::OldGnu => "old-GNU",
            Format::Ustar => "ustar",
            Format::V7 => "v7",
        }
    }
}

/// How a sparse member records its holes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sparse {
    /// An old-GNU `'S'` header with its sparse map (what GCE accepts).
    OldGnu,
    /// GNU's PAX encodings.
    Pax(PaxSparse),
}

impl Sparse {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Sparse::OldGnu => "old-GNU sparse",
            Sparse::Pax(PaxSparse::V0_0) => "PAX sparse 0.0",
            Sparse::Pax(PaxSparse::V0_1) => "PAX sparse 0.1",
            Sparse::Pax(PaxSparse::V1_0) => "PAX sparse 1.0",
        }
    }
}

/// One archive member as its headers describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Member {
    /// Path (from a PAX `path` record or GNU long name when there is one).
    pub name: String,
    /// Type flag character.
    pub typeflag: char,
    /// Header format.
    pub format: Format,
    /// File size (for sparse members, the real size).
    pub size: u64,
    /// How it is sparse, if it is.
    pub sparse: Option<Sparse>,
    /// Whether a PAX extended header describes it.
    pub pax: bool,
    /// Permission bits.
    pub mode: u32,
    /// Owner id.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
    /// Modification time.
    pub mtime: u64,
    /// Whether the old-GNU atime or ctime fields are filled (GCE rejects such headers).
    pub atime_or_ctime: bool,
}

/// The archive's structure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Archive {
    /// Members in order (PAX and long-name records excluded).
    pub members: Vec<Member>,
    /// Whether PAX extended headers appear.
    pub pax_headers: bool,
    /// Whether GNU long-name records appear.
    pub long_names: bool,
    /// gzip members the file holds.
    pub gzip_members: u32,
    /// Data after the last gzip member that is not gzip.
    pub trailing: gzip::Trailing,
    /// Non-zero bytes after the end-of-archive marker, within the part read.
    pub after_end: u64,
    /// What was not read because the answer was known without it.
    pub not_read: Option<String>,
}

/// The disk member found and unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Disk {
    /// Its size in bytes.
    pub size: u64,
    /// Its position among the members (0-based).
    pub member: usize,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Parses a numeric header field: octal text, or GNU base-256 when the top bit is set.
fn number(field: &[u8]) -> io::Result<u64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| invalid("number too large"))?;
        }
        return Ok(v);
    }
    let text: Vec<u8> = field.iter().copied().skip_while(|&b| b == b' ').take_while(|&b| b != 0 && b != b' ').collect();
    if text.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&text).map_err(|_| invalid("bad number"))?;
    u64::from_str_radix(s, 8).map_err(|_| invalid("bad number"))
}

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn checksum_ok(h: &[u8; BLOCK]) -> bool {
    let Ok(stored) = number(&h[layout::CHECKSUM]) else { return false };
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| if layout::CHECKSUM.contains(&i) { u64::from(b' ') } else { u64::from(b) })
        .sum();
    sum == stored
}

/// Reads exactly one block; `Ok(false)` at a clean end of stream.
fn read_block(r: &mut impl Read, buf: &mut [u8; BLOCK]) -> io::Result<bool> {
    let mut n = 0;
    while n < BLOCK {
        match r.read(&mut buf[n..])? {
            0 if n == 0 => return Ok(false),
            0 => return Err(invalid("archive ends inside a header")),
            k => n += k,
        }
    }
    Ok(true)
}

fn skip(r: &mut impl Read, len: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.take(len), &mut io::sink())?;
    if copied != len {
        return Err(invalid("archive ends inside member data"));
    }
    Ok(())
}

/// Reads the data of a small record (long name, PAX header) of `size` bytes, at most `max`.
fn read_record(r: &mut impl Read, size: u64, max: u64, what: &str) -> io::Result<Vec<u8>> {
    if size > max {
        return Err(invalid(format!("{what} is too long")));
    }
    let mut data = vec![0u8; size as usize];
    r.read_exact(&mut data).map_err(|_| invalid("archive ends inside member data"))?;
    skip(r, padding(size))?;
    Ok(data)
}

/// What the records before a member say about it.
#[derive(Default)]
struct Pending {
    long_name: Option<String>,
    pax: Option<pax::Extended>,
}

/// Reads a gzip-compressed tar stream of `compressed_len` bytes (when known, it bounds what
/// the headers may claim), and writes the disk member's data (the member named `disk.raw`,
/// or else the first regular file) into `disk` at its offsets, leaving holes for zeros.
///
/// # Errors
/// An error of kind [`io::ErrorKind::InvalidData`], saying why, when the input is not a gzip
/// compressed tar or a header is corrupt or claims an impossible size; I/O errors of the input or
/// of `disk` as they come.
pub fn unpack(input: impl Read, compressed_len: Option<u64>, disk: &mut File) -> io::Result<(Archive, Option<Disk>)> {
    let mut gz = gzip::Members::new(BufReader::new(input))?;
    let budget = compressed_len.map(|len| len.saturating_mul(MAX_DEFLATE_RATIO).saturating_add(EXPANSION_SLACK));
    let mut archive = Archive::default();
    let mut found: Option<(String, Disk)> = None;
    let mut pending = Pending::default();
    let mut header = [0u8; BLOCK];
    loop {
        if !read_block(&mut gz, &mut header)? {
            if archive.members.is_empty() {
                return Err(invalid("empty archive"));
            }
            break;
        }
        if header.iter().all(|&b| b == 0) {
            read_after_end(&mut gz, &mut archive)?;
            break;
        }
        if !checksum_ok(&header) {
            return Err(invalid(if archive.members.is_empty() { "not a tar archive" } else { "corrupt tar header" }));
        }
        if archive.members.len() >= MAX_MEMBERS {
            return Err(invalid("too many members"));
        }
        let size = number(&header[layout::SIZE])?;
        match header[layout::TYPEFLAG] {
            layout::TYPE_PAX_EXTENDED | layout::TYPE_PAX_GLOBAL => {
                archive.pax_headers = true;
                let data = read_record(&mut gz, size, MAX_PAX_HEADER, "PAX header")?;
                if header[layout::TYPEFLAG] == layout::TYPE_PAX_EXTENDED {
                    pending.pax = Some(pax::parse(&data)?);
                }
                continue;
            }
            layout::TYPE_GNU_LONG_NAME => {
                archive.long_names = true;
                pending.long_name = Some(text(&read_record(&mut gz, size, MAX_LONG_NAME, "long name")?));
                continue;
            }
            _ => {}
        }
        let parsed = parse_member(&header, size, std::mem::take(&mut pending))?;
        if found.as_ref().is_some_and(|(name, _)| name == MEMBER_NAME) {
            // The disk is read; another member settles the single-member rule.
            archive.not_read =
                Some(format!("the data of member {} and everything after it", archive.members.len() + 1));
            archive.members.push(parsed.member);
            break;
        }
        if budget.is_some_and(|b| parsed.stored > b) {
            return Err(invalid(format!(
                "member {} claims {} bytes of data, more than the {}-byte compressed file can hold",
                parsed.member.name,
                parsed.stored,
                compressed_len.unwrap_or(0)
            )));
        }
        let regular = parsed.member.sparse.is_some()
            || matches!(
                header[layout::TYPEFLAG],
                layout::TYPE_REGULAR | layout::TYPE_REGULAR_OLD | layout::TYPE_CONTIGUOUS
            );
        let wanted =
            regular && found.as_ref().is_none_or(|(n, _)| n != MEMBER_NAME && parsed.member.name == MEMBER_NAME);
        if wanted && !parsed.member.size.is_multiple_of(SECTOR) {
            return Err(invalid(format!(
                "disk member {} is {} bytes, not a whole number of 512-byte sectors",
                parsed.member.name, parsed.member.size
            )));
        }
        let index = archive.members.len();
        let complete = read_member_data(&mut gz, &header, &parsed, wanted.then_some(&mut *disk))?;
        if wanted {
            found = Some((parsed.member.name.clone(), Disk { size: parsed.member.size, member: index }));
        }
        if !complete {
            // The disk cannot be an image: nothing after its first sector can change that.
            archive.not_read =
                Some(format!("the rest of {}: its first sector holds no partition table", parsed.member.name));
            archive.members.push(parsed.member);
            break;
        }
        archive.members.push(parsed.member);
    }
    archive.gzip_members = gz.count;
    archive.trailing = gz.trailing;
    Ok((archive, found.map(|(_, disk)| disk)))
}

/// Reads what follows the end-of-archive marker: zero padding normally. Reads at most
/// [`MAX_AFTER_END`] bytes; notes non-zero data, and what was left unread.
fn read_after_end(r: &mut impl Read, archive: &mut Archive) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK.min(MAX_AFTER_END as usize)];
    let mut read = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        archive.after_end += buf[..n].iter().filter(|&&b| b != 0).count() as u64;
        read += n as u64;
        if read >= MAX_AFTER_END {
            archive.not_read = Some(format!("the stream beyond {MAX_AFTER_END} bytes after the end-of-archive marker"));
            return Ok(());
        }
    }
}

/// A member as its headers describe it, and how its data follows.
struct Parsed {
    member: Member,
    /// Bytes of data after its header in the archive.
    stored: u64,
    /// The sparse map of a PAX 0.x sparse member (from its extended header).
    pax_map: Vec<(u64, u64)>,
}

/// The member a header (and the records before it) describes.
fn parse_member(header: &[u8; BLOCK], size: u64, pending: Pending) -> io::Result<Parsed> {
    let magic = &header[layout::MAGIC];
    let format = if magic == layout::OLDGNU_MAGIC {
        Format::OldGnu
    } else if &magic[..layout::USTAR_MAGIC.len()] == layout::USTAR_MAGIC {
        Format::Ustar
    } else {
        Format::V7
    };
    let mut name = pending.long_name.unwrap_or_else(|| text(&header[layout::NAME]));
    let prefix = &header[layout::PREFIX];
    if format == Format::Ustar && prefix[0] != 0 {
        name = format!("{}/{}", text(prefix), name);
    }
    let typeflag = header[layout::TYPEFLAG];
    let pax = pending.pax.is_some();
    let ext = pending.pax.unwrap_or_default();
    let stored = ext.size.unwrap_or(size);
    let sparse = match (typeflag, format, ext.sparse) {
        (_, _, Some(s)) => Some(Sparse::Pax(s)),
        (layout::TYPE_GNU_SPARSE, Format::OldGnu, None) => Some(Sparse::OldGnu),
        _ => None,
    };
    let real = match sparse {
        Some(Sparse::OldGnu) => number(&header[layout::GNU_REAL_SIZE])?,
        Some(Sparse::Pax(_)) => ext.real_size.ok_or_else(|| invalid("PAX sparse file without a real size"))?,
        None => stored,
    };
    if real > MAX_DISK_SIZE || stored > MAX_DISK_SIZE {
        return Err(invalid(format!("member {name} claims {} bytes, beyond the 2 TiB limit", real.max(stored))));
    }
    let member = Member {
        name: ext.path.unwrap_or(name),
        typeflag: typeflag as char,
        format,
        size: real,
        sparse,
        pax,
        mode: number(&header[layout::MODE])? as u32,
        uid: number(&header[layout::UID])?,
        gid: number(&header[layout::GID])?,
        mtime: number(&header[layout::MTIME])?,
        atime_or_ctime: format == Format::OldGnu && header[layout::GNU_ATIME_CTIME].iter().any(|&b| b != 0),
    };
    Ok(Parsed { member, stored, pax_map: ext.map })
}

/// Whether the first bytes of a disk hold the boot signature every partitioned disk has.
fn partitioned(first_sector: &[u8]) -> bool {
    first_sector.get(crate::partition::mbr::BOOT_SIGNATURE_AT) == Some(&crate::partition::mbr::BOOT_SIGNATURE[..])
}

/// Reads (or skips) a member's data; for the disk member, writes it into `disk`. Returns false
/// when it stopped early: the disk's first sector holds no partition table, so it cannot be an
/// image whatever follows.
fn read_member_data(
    r: &mut impl Read,
    header: &[u8; BLOCK],
    parsed: &Parsed,
    mut disk: Option<&mut File>,
) -> io::Result<bool> {
    let (real, stored) = (parsed.member.size, parsed.stored);
    if let Some(d) = disk.as_deref_mut() {
        d.set_len(0)?;
        d.set_len(real)?;
    }
    match parsed.member.sparse {
        None if disk.is_some() => {
            let mut first = vec![0u8; BLOCK.min(stored as usize)];
            r.read_exact(&mut first).map_err(|_| invalid("archive ends inside member data"))?;
            if !partitioned(&first) {
                return Ok(false);
            }
            copy_extent(&mut first.as_slice().chain(&mut *r), stored, 0, disk)?;
        }
        None => skip(r, stored)?,
        Some(kind) => {
            let mut consumed = 0;
            let map = match kind {
                Sparse::OldGnu => read_old_gnu_map(r, header)?,
                Sparse::Pax(PaxSparse::V1_0) => {
                    let (map, len) = read_v1_map(r, stored)?;
                    consumed = len;
                    map
                }
                Sparse::Pax(_) => parsed.pax_map.clone(),
            };
            check_sparse_map(&map, stored - consumed, real)?;
            // A hole at the start means a zero first sector.
            if disk.is_some() && map.first().is_none_or(|&(offset, len)| offset > 0 || len < BLOCK as u64) {
                return Ok(false);
            }
            for (i, &(offset, len)) in map.iter().enumerate() {
                if i == 0 && disk.is_some() {
                    let mut first = [0u8; BLOCK];
                    r.read_exact(&mut first).map_err(|_| invalid("archive ends inside member data"))?;
                    if !partitioned(&first) {
                        return Ok(false);
                    }
                    copy_extent(&mut first.as_slice().chain(&mut *r), len, offset, disk.as_deref_mut())?;
                } else {
                    copy_extent(r, len, offset, disk.as_deref_mut())?;
                }
            }
        }
    }
    skip(r, padding(stored))?;
    Ok(true)
}

/// Reads an old-GNU sparse map: the entries in the header, then those of the extension headers
/// that follow it (empty entries dropped).
fn read_old_gnu_map(r: &mut impl Read, header: &[u8; BLOCK]) -> io::Result<Vec<(u64, u64)>> {
    let mut map = Vec::new();
    let mut push = |entry: &[u8]| -> io::Result<()> {
        let (offset, len) = entry.split_at(layout::SPARSE_NUMBER_LEN);
        let (offset, len) = (number(offset)?, number(len)?);
        if offset != 0 || len != 0 {
            if map.len() >= MAX_SPARSE_ENTRIES {
                return Err(invalid("sparse map too long"));
            }
            map.push((offset, len));
        }
        Ok(())
    };
    for slot in 0..layout::HEADER_SPARSE_SLOTS {
        push(&header[layout::header_sparse_entry(slot)])?;
    }
    let mut extended = header[layout::GNU_IS_EXTENDED] != 0;
    let mut ext = [0u8; BLOCK];
    while extended {
        if !read_block(r, &mut ext)? {
            return Err(invalid("archive ends inside a sparse map"));
        }
        for slot in 0..layout::EXT_SPARSE_SLOTS {
            push(&ext[layout::ext_sparse_entry(slot)])?;
        }
        extended = ext[layout::EXT_IS_EXTENDED] != 0;
    }
    Ok(map)
}

/// Reads the map at the start of a PAX 1.0 sparse member's data (whole blocks); returns it and
/// the bytes it took.
fn read_v1_map(r: &mut impl Read, stored: u64) -> io::Result<(Vec<(u64, u64)>, u64)> {
    let mut region = Vec::new();
    let mut block = [0u8; BLOCK];
    while (region.len() as u64) < pax::MAX_V1_MAP.min(stored) {
        if !read_block(r, &mut block)? {
            return Err(invalid("archive ends inside a sparse map"));
        }
        region.extend_from_slice(&block);
        if let Some(map) = pax::parse_v1_map(&region)? {
            return Ok((map, region.len() as u64));
        }
    }
    Err(invalid("PAX sparse map is cut off or too long"))
}

/// Checks a sparse map: in order, within the real size, adding up to the stored data.
fn check_sparse_map(map: &[(u64, u64)], stored: u64, real: u64) -> io::Result<()> {
    let total: u64 =
        map.iter().try_fold(0u64, |a, &(_, l)| a.checked_add(l)).ok_or_else(|| invalid("sparse map overflows"))?;
    if total != stored {
        return Err(invalid("sparse map does not match the member's stored size"));
    }
    let mut last_end = 0u64;
    for &(offset, len) in map {
        let end = offset.checked_add(len).ok_or_else(|| invalid("sparse map overflows"))?;
        if offset < last_end || end > real {
            return Err(invalid("sparse map is out of order or beyond the file size"));
        }
        last_end = end;
    }
    Ok(())
}

/// Copies `len` bytes of the stream to `offset` of `disk` (or discards them), leaving holes
/// where whole blocks are zero.
fn copy_extent(r: &mut impl Read, len: u64, offset: u64, mut disk: Option<&mut File>) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK.min(len as usize).max(1)];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        r.read_exact(&mut buf[..n]).map_err(|_| invalid("archive ends inside member data"))?;
        if let Some(d) = disk.as_deref_mut() {
            for (i, block) in buf[..n].chunks(HOLE_BLOCK).enumerate() {
                if block.iter().any(|&b| b != 0) {
                    d.seek(SeekFrom::Start(offset + done + (i * HOLE_BLOCK) as u64))?;
                    d.write_all(block)?;
                }
            }
        }
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(number(b"0000644\0").unwrap(), 0o644);
        assert_eq!(number(b"  123 \0").unwrap(), 0o123);
        assert_eq!(number(b"\0\0\0").unwrap(), 0);
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0]).unwrap(), 2 << 32);
        assert!(number(b"9\0").is_err());
        assert!(number(&[0xff; 12]).is_err());
    }

    fn unpack_bytes(input: &[u8]) -> io::Result<(Archive, Option<Disk>)> {
        let mut disk = tempfile::tempfile().unwrap();
        unpack(input, Some(input.len() as u64), &mut disk)
    }

    #[test]
    fn garbage_is_not_an_archive() {
        let mut gz = Vec::new();
        {
            let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
            e.write_all(&[0x41u8; 2048]).unwrap();
            e.finish().unwrap();
        }
        assert!(unpack_bytes(&gz).is_err());
        assert!(unpack_bytes(b"not gzip at all").is_err());
    }
}
