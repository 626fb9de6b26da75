//! Reading a GCE image tarball as a stream: gzip, then tar headers (old-GNU sparse, ustar, PAX
//! and GNU long-name records recognised), keeping the disk member's data in a
//! [`SparseSource`]. Nothing is extracted to disk; memory is bounded by the data actually
//! present (non-zero blocks, at most [`super::source::MAX_STORED`]), and every count or size a
//! header claims is checked against hard limits or against the stream itself.

use std::io::{self, BufReader, Read};

use super::source::SparseSource;
use crate::output::gce::MEMBER_NAME;
use crate::output::tar::{self as layout, BLOCK, padding};

/// Most sparse-map entries accepted for one member.
pub const MAX_SPARSE_ENTRIES: usize = 100_000;
/// Most members examined.
pub const MAX_MEMBERS: usize = 1000;
/// Longest GNU long name accepted.
const MAX_LONG_NAME: u64 = 4096;
/// Bytes read per step while streaming member data.
const CHUNK: usize = 1 << 20;

/// The header format of a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// One archive member as its header describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Path.
    pub name: String,
    /// Type flag character.
    pub typeflag: char,
    /// Header format.
    pub format: Format,
    /// File size (for sparse members, the real size).
    pub size: u64,
    /// Whether the member is an old-GNU sparse file.
    pub sparse: bool,
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
pub struct Archive {
    /// Members in order (PAX and long-name records excluded).
    pub members: Vec<Member>,
    /// Whether PAX extended headers appear.
    pub pax_headers: bool,
    /// Whether GNU long-name records appear.
    pub long_names: bool,
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

/// Reads a gzip-compressed tar stream. Returns its structure and, if it has a member named
/// `disk.raw` (or else a first regular or sparse file), that member's contents as a sparse disk.
pub fn read(input: impl Read) -> io::Result<(Archive, Option<SparseSource>)> {
    let mut r = BufReader::new(flate2::read::GzDecoder::new(input));
    let mut archive = Archive::default();
    let mut disk: Option<(String, SparseSource)> = None;
    let mut long_name: Option<String> = None;
    let mut header = [0u8; BLOCK];
    loop {
        if !read_block(&mut r, &mut header)? {
            if archive.members.is_empty() {
                return Err(invalid("empty archive"));
            }
            break;
        }
        if header.iter().all(|&b| b == 0) {
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
                skip(&mut r, size + padding(size))?;
                continue;
            }
            layout::TYPE_GNU_LONG_NAME => {
                archive.long_names = true;
                long_name = Some(read_long_name(&mut r, size)?);
                continue;
            }
            _ => {}
        }
        let mut member = parse_member(&header, size, long_name.take())?;
        let regular = member.sparse
            || matches!(
                header[layout::TYPEFLAG],
                layout::TYPE_REGULAR | layout::TYPE_REGULAR_OLD | layout::TYPE_CONTIGUOUS
            );
        // The disk is the member named disk.raw, or else the first regular file.
        let wanted = regular && disk.as_ref().is_none_or(|(n, _)| n != MEMBER_NAME && member.name == MEMBER_NAME);
        let target = if member.sparse {
            let (map, real) = read_sparse_map(&mut r, &header, size)?;
            member.size = real;
            let mut target = wanted.then(|| SparseSource::new(real));
            for &(offset, len) in &map {
                stream_into(&mut r, len, offset, target.as_mut())?;
            }
            skip(&mut r, padding(size))?;
            target
        } else if regular {
            let mut target = wanted.then(|| SparseSource::new(size));
            stream_into(&mut r, size, 0, target.as_mut())?;
            skip(&mut r, padding(size))?;
            target
        } else {
            skip(&mut r, size + padding(size))?;
            None
        };
        if let Some(t) = target {
            disk = Some((member.name.clone(), t));
        }
        archive.members.push(member);
    }
    Ok((archive, disk.map(|(_, d)| d)))
}

/// Reads the data of a GNU long-name record: the next member's name.
fn read_long_name(r: &mut impl Read, size: u64) -> io::Result<String> {
    if size > MAX_LONG_NAME {
        return Err(invalid("long name too long"));
    }
    let mut name = vec![0u8; size as usize];
    r.read_exact(&mut name)?;
    skip(r, padding(size))?;
    Ok(text(&name))
}

/// The member a header describes (for a sparse member, `size` is still the stored size).
fn parse_member(header: &[u8; BLOCK], size: u64, long_name: Option<String>) -> io::Result<Member> {
    let magic = &header[layout::MAGIC];
    let format = if magic == layout::OLDGNU_MAGIC {
        Format::OldGnu
    } else if &magic[..layout::USTAR_MAGIC.len()] == layout::USTAR_MAGIC {
        Format::Ustar
    } else {
        Format::V7
    };
    let mut name = long_name.unwrap_or_else(|| text(&header[layout::NAME]));
    let prefix = &header[layout::PREFIX];
    if format == Format::Ustar && prefix[0] != 0 {
        name = format!("{}/{}", text(prefix), name);
    }
    let typeflag = header[layout::TYPEFLAG];
    Ok(Member {
        name,
        typeflag: typeflag as char,
        format,
        size,
        sparse: typeflag == layout::TYPE_GNU_SPARSE && format == Format::OldGnu,
        mode: number(&header[layout::MODE])? as u32,
        uid: number(&header[layout::UID])?,
        gid: number(&header[layout::GID])?,
        mtime: number(&header[layout::MTIME])?,
        atime_or_ctime: format == Format::OldGnu && header[layout::GNU_ATIME_CTIME].iter().any(|&b| b != 0),
    })
}

/// Reads an old-GNU sparse map: the entries in the header, then those of the extension headers
/// that follow it. Checks that the entries are in order, within the real size, and add up to
/// the stored size. Returns the map (empty entries dropped) and the real size.
fn read_sparse_map(r: &mut impl Read, header: &[u8; BLOCK], stored: u64) -> io::Result<(Vec<(u64, u64)>, u64)> {
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
    let real = number(&header[layout::GNU_REAL_SIZE])?;
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
    let total: u64 =
        map.iter().try_fold(0u64, |a, &(_, l)| a.checked_add(l)).ok_or_else(|| invalid("sparse map overflows"))?;
    if total != stored {
        return Err(invalid("sparse map does not match the member's stored size"));
    }
    let mut last_end = 0u64;
    for &(offset, len) in &map {
        let end = offset.checked_add(len).ok_or_else(|| invalid("sparse map overflows"))?;
        if offset < last_end || end > real {
            return Err(invalid("sparse map is out of order or beyond the file size"));
        }
        last_end = end;
    }
    Ok((map, real))
}

/// Copies `len` bytes of the stream to `offset` of `target` (or discards them).
fn stream_into(r: &mut impl Read, len: u64, offset: u64, mut target: Option<&mut SparseSource>) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK.min(len as usize).max(1)];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        r.read_exact(&mut buf[..n]).map_err(|_| invalid("archive ends inside member data"))?;
        if let Some(t) = target.as_deref_mut() {
            t.store(offset + done, &buf[..n])?;
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

    #[test]
    fn garbage_is_not_an_archive() {
        let mut gz = Vec::new();
        {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
            e.write_all(&[0x41u8; 2048]).unwrap();
            e.finish().unwrap();
        }
        assert!(read(&gz[..]).is_err());
        assert!(read(&b"not gzip at all"[..]).is_err());
    }
}
