//! Deterministic parallel gzip: a byte stream that can be read at any offset is cut into
//! fixed-size blocks, each block is deflated on its own (primed with the 32 KiB before it as a
//! dictionary, as pigz does), all but the last end with a sync flush so that they concatenate
//! into one valid deflate stream, and the blocks are written in order between a gzip header and
//! trailer. The output depends only on the input, the level and [`BLOCK_SIZE`], never on the
//! number of threads, so builds stay reproducible on any machine.
//!
//! Memory: each worker keeps one input buffer and one compressor for its whole life, and output
//! buffers are recycled once written, so a build holds a few blocks per thread whatever the
//! size of the stream (allocating per block let the allocator's per-thread arenas grow).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};

use flate2::{Compress, Compression, FlushCompress, Status};

/// Bytes of input per independently compressed block.
pub(crate) const BLOCK_SIZE: u64 = 256 << 10;
/// Bytes of preceding input used as each block's dictionary (deflate's window).
const DICTIONARY: u64 = 32 << 10;
/// Most worker threads.
const MAX_THREADS: usize = 8;
/// gzip magic, method deflate, no flags.
const GZIP_HEADER_START: [u8; 4] = [0x1f, 0x8b, 8, 0];
/// gzip "extra flags" for the slowest (best) compression level.
const GZIP_XFL_BEST: u8 = 2;
/// gzip operating system byte: unknown, so the output does not depend on the build host.
const GZIP_OS_UNKNOWN: u8 = 255;

/// A stream of `len()` bytes readable at any offset, from several threads.
pub(crate) trait Source: Sync {
    /// Total length.
    fn len(&self) -> u64;
    /// Fills `buf` with the bytes at `offset` (always within the stream).
    fn read_at(&self, offset: u64, buf: &mut [u8]);
}

/// The number of worker threads to use: the machine's parallelism, at most [`MAX_THREADS`].
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS)
}

/// A worker's reusable state: its compressor and input buffer.
struct Worker {
    compress: Compress,
    input: Vec<u8>,
    dictionary: Vec<u8>,
}

impl Worker {
    fn new(level: u32) -> Worker {
        Worker {
            compress: Compress::new(Compression::new(level), false),
            input: vec![0u8; BLOCK_SIZE as usize],
            dictionary: vec![0u8; DICTIONARY as usize],
        }
    }

    /// Deflates block `index` of `source` (raw deflate, no header) into `out` (cleared first).
    /// Returns the block's CRC-32.
    fn compress_block(&mut self, source: &dyn Source, index: u64, out: &mut Vec<u8>) -> io::Result<u32> {
        let start = index * BLOCK_SIZE;
        let end = (start + BLOCK_SIZE).min(source.len());
        let last = end == source.len();
        let input = &mut self.input[..(end - start) as usize];
        source.read_at(start, input);
        let crc = crc32fast::hash(input);
        self.compress.reset();
        if start > 0 {
            let dict_start = start.saturating_sub(DICTIONARY);
            let dict = &mut self.dictionary[..(start - dict_start) as usize];
            source.read_at(dict_start, dict);
            self.compress.set_dictionary(dict).map_err(io::Error::other)?;
        }
        let flush = if last { FlushCompress::Finish } else { FlushCompress::Sync };
        out.clear();
        out.reserve(input.len() + input.len() / 64 + 128);
        let mut consumed = 0usize;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity() / 2 + 64);
            }
            let before_in = self.compress.total_in();
            let status = self.compress.compress_vec(&input[consumed..], out, flush).map_err(io::Error::other)?;
            consumed += (self.compress.total_in() - before_in) as usize;
            let done = match status {
                Status::StreamEnd => true,
                // A sync flush is complete once all input is taken and the output was not full.
                Status::Ok | Status::BufError => !last && consumed == input.len() && out.len() < out.capacity(),
            };
            if done {
                return Ok(crc);
            }
        }
    }
}

/// Writes `source` gzip-compressed to `out` using `threads` threads. Returns `out` and the
/// number of compressed bytes written.
pub(crate) fn compress<W: Write>(source: &dyn Source, out: W, level: u32, threads: usize) -> io::Result<(W, u64)> {
    let blocks = source.len().div_ceil(BLOCK_SIZE).max(1);
    let threads = threads.clamp(1, MAX_THREADS).min(blocks as usize);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<(u64, io::Result<(Vec<u8>, u32)>)>(threads);
    // Written output buffers come back here for reuse.
    let spare: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (tx, next, spare) = (tx.clone(), &next, &spare);
            scope.spawn(move || {
                let mut worker = Worker::new(level);
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst) as u64;
                    if index >= blocks {
                        return;
                    }
                    let mut out = spare.lock().ok().and_then(|mut s| s.pop()).unwrap_or_default();
                    let result = worker.compress_block(source, index, &mut out).map(|crc| (out, crc));
                    let failed = result.is_err();
                    if tx.send((index, result)).is_err() || failed {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut out = out;
        let mut written = 0u64;
        let mut header = GZIP_HEADER_START.to_vec();
        header.extend_from_slice(&0u32.to_le_bytes()); // mtime 0
        header.push(if level >= 9 { GZIP_XFL_BEST } else { 0 });
        header.push(GZIP_OS_UNKNOWN);
        out.write_all(&header)?;
        written += header.len() as u64;
        let mut crc = crc32fast::Hasher::new();
        let mut pending: BTreeMap<u64, (Vec<u8>, u32)> = BTreeMap::new();
        let mut expected = 0u64;
        for (index, result) in rx {
            pending.insert(index, result?);
            while let Some((data, block_crc)) = pending.remove(&expected) {
                out.write_all(&data)?;
                written += data.len() as u64;
                let block_len = (source.len() - expected * BLOCK_SIZE).min(BLOCK_SIZE);
                crc.combine(&crc32fast::Hasher::new_with_initial_len(block_crc, block_len));
                expected += 1;
                if let Ok(mut s) = spare.lock() {
                    s.push(data);
                }
            }
        }
        if expected != blocks {
            return Err(io::Error::other("a compression thread stopped early"));
        }
        out.write_all(&crc.finalize().to_le_bytes())?;
        out.write_all(&(source.len() as u32).to_le_bytes())?;
        written += 8;
        out.flush()?;
        Ok((out, written))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    struct Bytes(Vec<u8>);

    impl Source for Bytes {
        fn len(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) {
            buf.copy_from_slice(&self.0[offset as usize..offset as usize + buf.len()]);
        }
    }

    fn sample(len: usize) -> Vec<u8> {
        // Compressible with long-range repeats, plus a stretch of noise.
        let mut x = 0x1234_5678u32;
        (0..len)
            .map(|i| {
                if (i / 100_000) % 3 == 2 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                } else {
                    (i % 251) as u8 ^ (i / 4096) as u8
                }
            })
            .collect()
    }

    #[test]
    fn output_is_valid_gzip_and_independent_of_threads() {
        for len in [0usize, 1, 1000, BLOCK_SIZE as usize, BLOCK_SIZE as usize + 1, 3 * BLOCK_SIZE as usize + 12345] {
            let data = sample(len);
            let source = Bytes(data.clone());
            let (one, n1) = compress(&source, Vec::new(), 9, 1).unwrap();
            assert_eq!(n1, one.len() as u64);
            for threads in [2, 3, 8] {
                let (many, _) = compress(&source, Vec::new(), 9, threads).unwrap();
                assert!(many == one, "len {len}: {threads} threads differ from one");
            }
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&one[..]).read_to_end(&mut back).unwrap();
            assert!(back == data, "len {len}: round trip");
            assert_eq!(&one[..4], &GZIP_HEADER_START);
            assert_eq!(&one[4..8], &[0, 0, 0, 0]);
            assert_eq!(one[9], GZIP_OS_UNKNOWN);
        }
    }

    #[test]
    fn dictionaries_keep_the_ratio_of_a_single_stream() {
        let data = sample(4 * BLOCK_SIZE as usize);
        let (blocks, _) = compress(&Bytes(data.clone()), Vec::new(), 9, 2).unwrap();
        let mut single = flate2::write::GzEncoder::new(Vec::new(), Compression::new(9));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap();
        // Within 0.5% of one stream.
        assert!((blocks.len() as f64) < single.len() as f64 * 1.005, "{} vs {}", blocks.len(), single.len());
    }
}
