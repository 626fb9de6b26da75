//! Reading a GCE image tarball as a stream: gzip, then tar headers (old-GNU sparse, ustar, PAX
//! and GNU long-name records recognised), keeping the disk member's data in a
//! [`SparseSource`]. Nothing is extracted to disk; memory is bounded by the data actually
//! present (non-zero blocks, at most [`super::source::MAX_STORED`]), and every count or size a
//! header claims is checked against hard limits or against the stream itself.

use std::io::{self, BufReader, Read};

use super::source::SparseSource;

/// tar block size.
const BLOCK: usize = 512;
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
    let Ok(stored) = number(&h[148..156]) else { return false };
    let sum: u64 = h.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u64::from(b) }).sum();
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

fn padding(len: u64) -> u64 {
    (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64
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
        let typeflag = header[156] as char;
        let size = number(&header[124..136])?;
        match typeflag {
            'x' | 'g' => {
                archive.pax_headers = true;
                skip(&mut r, size + padding(size))?;
                continue;
            }
            'L' => {
                archive.long_names = true;
                if size > MAX_LONG_NAME {
                    return Err(invalid("long name too long"));
                }
                let mut name = vec![0u8; size as usize];
                r.read_exact(&mut name)?;
                skip(&mut r, padding(size))?;
                long_name = Some(text(&name));
                continue;
            }
            _ => {}
        }
        let format = match &header[257..265] {
            b"ustar  \0" => Format::OldGnu,
            m if &m[..6] == b"ustar\0" => Format::Ustar,
            _ => Format::V7,
        };
        let mut name = long_name.take().unwrap_or_else(|| text(&header[..100]));
        if format == Format::Ustar && header[345] != 0 {
            name = format!("{}/{}", text(&header[345..500]), name);
        }
        let sparse = typeflag == 'S' && format == Format::OldGnu;
        let mut member = Member {
            name,
            typeflag,
            format,
            size,
            sparse,
            mode: number(&header[100..108])? as u32,
            uid: number(&header[108..116])?,
            gid: number(&header[116..124])?,
            mtime: number(&header[136..148])?,
            atime_or_ctime: format == Format::OldGnu && header[345..369].iter().any(|&b| b != 0),
        };
        let regular = matches!(typeflag, '0' | '\0' | '7') || sparse;
        let wanted = regular && disk.as_ref().is_none_or(|(n, _)| n != "disk.raw" && member.name == "disk.raw");
        if sparse {
            let mut map = Vec::new();
            let mut push = |entry: &[u8]| -> io::Result<()> {
                let (offset, len) = (number(&entry[..12])?, number(&entry[12..24])?);
                if offset != 0 || len != 0 {
                    if map.len() >= MAX_SPARSE_ENTRIES {
                        return Err(invalid("sparse map too long"));
                    }
                    map.push((offset, len));
                }
                Ok(())
            };
            for i in 0..4 {
                push(&header[386 + 24 * i..410 + 24 * i])?;
            }
            let mut extended = header[482] != 0;
            let real = number(&header[483..495])?;
            let mut ext = [0u8; BLOCK];
            while extended {
                if !read_block(&mut r, &mut ext)? {
                    return Err(invalid("archive ends inside a sparse map"));
                }
                for i in 0..21 {
                    push(&ext[24 * i..24 * i + 24])?;
                }
                extended = ext[504] != 0;
            }
            let stored: u64 = map
                .iter()
                .try_fold(0u64, |a, &(_, l)| a.checked_add(l))
                .ok_or_else(|| invalid("sparse map overflows"))?;
            if stored != size {
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
            member.size = real;
            let mut target = wanted.then(|| SparseSource::new(real));
            for &(offset, len) in &map {
                stream_into(&mut r, len, offset, target.as_mut())?;
            }
            skip(&mut r, padding(size))?;
            if let Some(t) = target {
                disk = Some((member.name.clone(), t));
            }
        } else if regular {
            let mut target = wanted.then(|| SparseSource::new(size));
            stream_into(&mut r, size, 0, target.as_mut())?;
            skip(&mut r, padding(size))?;
            if let Some(t) = target {
                disk = Some((member.name.clone(), t));
            }
        } else {
            skip(&mut r, size + padding(size))?;
        }
        archive.members.push(member);
    }
    Ok((archive, disk.map(|(_, d)| d)))
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
