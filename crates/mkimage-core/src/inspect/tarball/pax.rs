//! PAX extended headers: the records (`"LEN KEY=VALUE\n"`) and the keys this reader honours:
//! `path` and `size`, and GNU tar's sparse files in its three PAX encodings (0.0: the map as
//! repeated `GNU.sparse.offset`/`GNU.sparse.numbytes` records; 0.1: `GNU.sparse.map`; 1.0:
//! the map at the start of the member's data).

use std::io;

use super::{MAX_SPARSE_ENTRIES, invalid};

/// GNU's PAX sparse encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PaxSparse {
    /// Format 0.0: offset/size records in the header.
    V0_0,
    /// Format 0.1: one `GNU.sparse.map` record.
    V0_1,
    /// Format 1.0: the map is the start of the member's data.
    V1_0,
}

/// What a PAX extended header says about the member after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Extended {
    /// `path` (or, for sparse files, `GNU.sparse.name`).
    pub(super) path: Option<String>,
    /// `size`: the member's data in the archive.
    pub(super) size: Option<u64>,
    /// The sparse encoding, if the member is a GNU sparse file.
    pub(super) sparse: Option<PaxSparse>,
    /// `GNU.sparse.size` or `GNU.sparse.realsize`: the file's real size.
    pub(super) real_size: Option<u64>,
    /// The sparse map, for formats 0.0 and 0.1.
    pub(super) map: Vec<(u64, u64)>,
}

fn number(value: &[u8]) -> io::Result<u64> {
    std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()).ok_or_else(|| invalid("bad number in a PAX header"))
}

fn push(map: &mut Vec<(u64, u64)>, entry: (u64, u64)) -> io::Result<()> {
    if map.len() >= MAX_SPARSE_ENTRIES {
        return Err(invalid("sparse map too long"));
    }
    map.push(entry);
    Ok(())
}

/// Parses the records of a PAX extended header.
pub(super) fn parse(data: &[u8]) -> io::Result<Extended> {
    let mut ext = Extended::default();
    let mut rest = data;
    let mut pending_offset = None;
    let mut version = (None, None);
    while !rest.is_empty() && rest[0] != 0 {
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(|| invalid("malformed PAX record"))?;
        let len = usize::try_from(number(&rest[..space])?).map_err(|_| invalid("malformed PAX record"))?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(invalid("malformed PAX record"));
        }
        let record = &rest[space + 1..len - 1];
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(|| invalid("malformed PAX record"))?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        let text = || String::from_utf8_lossy(value).into_owned();
        match key {
            b"path" => ext.path = Some(text()),
            b"size" => ext.size = Some(number(value)?),
            b"GNU.sparse.name" => ext.path = Some(text()),
            b"GNU.sparse.size" | b"GNU.sparse.realsize" => ext.real_size = Some(number(value)?),
            b"GNU.sparse.major" => version.0 = Some(number(value)?),
            b"GNU.sparse.minor" => version.1 = Some(number(value)?),
            b"GNU.sparse.numblocks" => {
                ext.sparse.get_or_insert(PaxSparse::V0_0);
            }
            b"GNU.sparse.offset" => pending_offset = Some(number(value)?),
            b"GNU.sparse.numbytes" => {
                let offset = pending_offset.take().ok_or_else(|| invalid("PAX sparse map out of order"))?;
                push(&mut ext.map, (offset, number(value)?))?;
                ext.sparse = Some(PaxSparse::V0_0);
            }
            b"GNU.sparse.map" => {
                let numbers: Vec<u64> =
                    value.split(|&b| b == b',').filter(|v| !v.is_empty()).map(number).collect::<io::Result<_>>()?;
                if !numbers.len().is_multiple_of(2) {
                    return Err(invalid("PAX sparse map has an odd number of values"));
                }
                for pair in numbers.chunks_exact(2) {
                    push(&mut ext.map, (pair[0], pair[1]))?;
                }
                ext.sparse = Some(PaxSparse::V0_1);
            }
            _ => {}
        }
        rest = &rest[len..];
    }
    if version == (Some(1), Some(0)) {
        ext.sparse = Some(PaxSparse::V1_0);
    } else if version.0.is_some() {
        return Err(invalid("unknown GNU sparse format version"));
    }
    Ok(ext)
}

/// Longest map region of a format 1.0 sparse member.
pub(super) const MAX_V1_MAP: u64 = 4 << 20;

/// Parses the decimal numbers of a format 1.0 map (`COUNT\n` then `OFFSET\nSIZE\n` pairs) from
/// `region`; returns the map, or `None` if the region does not hold all of it yet.
pub(super) fn parse_v1_map(region: &[u8]) -> io::Result<Option<Vec<(u64, u64)>>> {
    let mut lines = region.split(|&b| b == b'\n');
    let complete = region.iter().filter(|&&b| b == b'\n').count();
    let Some(count) = lines.next().filter(|_| complete >= 1) else { return Ok(None) };
    let count = usize::try_from(number(count)?).map_err(|_| invalid("sparse map too long"))?;
    if count > MAX_SPARSE_ENTRIES {
        return Err(invalid("sparse map too long"));
    }
    if complete < 1 + 2 * count {
        return Ok(None);
    }
    let mut map = Vec::with_capacity(count);
    for _ in 0..count {
        let (Some(offset), Some(size)) = (lines.next(), lines.next()) else { return Ok(None) };
        map.push((number(offset)?, number(size)?));
    }
    Ok(Some(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: &str) -> String {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while format!("{len}{body}").len() != len {
            len += 1;
        }
        format!("{len}{body}")
    }

    #[test]
    fn records_and_sparse_formats() {
        let h = record("path", "a/disk.raw") + &record("size", "1024") + &record("mtime", "1.5");
        let ext = parse(h.as_bytes()).unwrap();
        assert_eq!((ext.path.as_deref(), ext.size, ext.sparse), (Some("a/disk.raw"), Some(1024), None));
        let h = record("GNU.sparse.size", "4096")
            + &record("GNU.sparse.numblocks", "2")
            + &record("GNU.sparse.offset", "0")
            + &record("GNU.sparse.numbytes", "512")
            + &record("GNU.sparse.offset", "2048")
            + &record("GNU.sparse.numbytes", "512");
        let ext = parse(h.as_bytes()).unwrap();
        assert_eq!(
            (ext.sparse, ext.real_size, ext.map),
            (Some(PaxSparse::V0_0), Some(4096), vec![(0, 512), (2048, 512)])
        );
        let h = record("GNU.sparse.size", "4096") + &record("GNU.sparse.map", "0,512,2048,512");
        assert_eq!(parse(h.as_bytes()).unwrap().sparse, Some(PaxSparse::V0_1));
        let h = record("GNU.sparse.major", "1") + &record("GNU.sparse.minor", "0") + &record("GNU.sparse.name", "d");
        let ext = parse(h.as_bytes()).unwrap();
        assert_eq!((ext.sparse, ext.path.as_deref()), (Some(PaxSparse::V1_0), Some("d")));
        assert!(parse(b"12 path=a\n").is_err());
        assert!(parse(b"99999999999 path=a\n").is_err());
        assert!(parse(record("GNU.sparse.map", "1,2,3").as_bytes()).is_err());
    }

    #[test]
    fn v1_maps() {
        assert_eq!(parse_v1_map(b"2\n0\n512\n4096\n512\n").unwrap(), Some(vec![(0, 512), (4096, 512)]));
        assert_eq!(parse_v1_map(b"2\n0\n512\n40").unwrap(), None);
        assert!(parse_v1_map(b"x\n").is_err());
        assert!(parse_v1_map(b"99999999\n").is_err());
    }
}
