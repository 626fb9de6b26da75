//! The decompressed stream of a gzip file that may hold several members one after another (as
//! GNU tar, bsdtar and Python read them), noting what follows the last member if it is not
//! gzip at all.

use std::io::{self, BufRead, Read};

use flate2::bufread::GzDecoder;

/// gzip's magic bytes.
pub const MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Most trailing bytes counted after the last member; beyond it the count says "at least".
pub const MAX_TRAILING_COUNT: u64 = 1 << 20;

/// What follows the last gzip member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Trailing {
    /// Bytes of data that is not gzip after the last member (counted up to
    /// [`MAX_TRAILING_COUNT`]).
    pub bytes: u64,
    /// Whether there were more than could be counted.
    pub more: bool,
}

/// A buffered reader that can take back one byte it gave out (to look two bytes ahead when a
/// buffer boundary falls between them).
struct Pushback<R> {
    byte: Option<u8>,
    inner: R,
}

impl<R: BufRead> Read for Pushback<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = {
            let available = self.fill_buf()?;
            let n = available.len().min(buf.len());
            buf[..n].copy_from_slice(&available[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Pushback<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match &self.byte {
            Some(b) => Ok(std::slice::from_ref(b)),
            None => self.inner.fill_buf(),
        }
    }

    fn consume(&mut self, amount: usize) {
        if amount == 0 {
            return;
        }
        match self.byte.take() {
            Some(_) => self.inner.consume(amount - 1),
            None => self.inner.consume(amount),
        }
    }
}

/// The concatenated decompressed data of every gzip member of `R`.
pub(super) struct Members<R: BufRead> {
    decoder: Option<GzDecoder<Pushback<R>>>,
    /// Members started so far.
    pub(super) count: u32,
    /// Set once the input is exhausted.
    pub(super) trailing: Trailing,
}

impl<R: BufRead> Members<R> {
    /// Starts reading; fails when the input does not start with a gzip header.
    pub(super) fn new(mut input: R) -> io::Result<Self> {
        if !input.fill_buf()?.starts_with(&MAGIC) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a gzip file"));
        }
        let input = Pushback { byte: None, inner: input };
        Ok(Members { decoder: Some(GzDecoder::new(input)), count: 1, trailing: Trailing::default() })
    }

    /// Called when a member ends: starts the next one, or records what follows.
    fn next_member(&mut self) -> io::Result<bool> {
        let Some(decoder) = self.decoder.take() else { return Ok(false) };
        let mut input = decoder.into_inner();
        let Some(&first) = input.fill_buf()?.first() else { return Ok(false) };
        input.consume(1);
        let second = input.fill_buf()?.first().copied();
        if first == MAGIC[0] && second == Some(MAGIC[1]) {
            input.byte = Some(first);
            self.decoder = Some(GzDecoder::new(input));
            self.count += 1;
            return Ok(true);
        }
        let counted = 1 + io::copy(&mut (&mut input).take(MAX_TRAILING_COUNT - 1), &mut io::sink())?;
        let more = !input.fill_buf()?.is_empty();
        self.trailing = Trailing { bytes: counted, more };
        Ok(false)
    }
}

impl<R: BufRead> Read for Members<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(decoder) = self.decoder.as_mut() else { return Ok(0) };
            let n = decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if !self.next_member()? {
                return Ok(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn read_all(input: &[u8]) -> (Vec<u8>, u32, Trailing) {
        let mut m = Members::new(input).unwrap();
        let mut out = Vec::new();
        m.read_to_end(&mut out).unwrap();
        (out, m.count, m.trailing)
    }

    #[test]
    fn concatenated_members_read_as_one_stream() {
        let mut input = gz(b"hello ");
        input.extend(gz(b""));
        input.extend(gz(b"world"));
        assert_eq!(read_all(&input), (b"hello world".to_vec(), 3, Trailing::default()));
    }

    #[test]
    fn a_member_boundary_on_a_buffer_boundary_is_found() {
        let first = gz(b"first ");
        let mut input = first.clone();
        input.extend(gz(b"second"));
        // A reader whose buffer ends one byte into the second member's magic.
        let reader = std::io::BufReader::with_capacity(first.len() + 1, &input[..]);
        let mut m = Members::new(reader).unwrap();
        let mut out = Vec::new();
        m.read_to_end(&mut out).unwrap();
        assert_eq!((out, m.count), (b"first second".to_vec(), 2));
    }

    #[test]
    fn trailing_data_is_counted_not_read_as_gzip() {
        let mut input = gz(b"data");
        input.extend_from_slice(b"garbage!");
        assert_eq!(read_all(&input), (b"data".to_vec(), 1, Trailing { bytes: 8, more: false }));
        let mut input = gz(b"data");
        input.extend(std::iter::repeat_n(0u8, (MAX_TRAILING_COUNT + 5) as usize));
        let (_, _, trailing) = read_all(&input);
        assert_eq!(trailing, Trailing { bytes: MAX_TRAILING_COUNT, more: true });
        assert!(Members::new(&b"plain text"[..]).is_err());
    }
}
