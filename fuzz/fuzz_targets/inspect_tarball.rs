//! Any bytes, gzip-compressed, as a GCE tarball: the inspector must return a report or an
//! error, never panic, and never keep more than its limit in memory.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut gz = Vec::new();
    {
        let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
        let _ = e.write_all(data);
        let _ = e.finish();
    }
    let _ = mkimage_core::inspect::inspect_tarball(&gz[..], "fuzz");
    // The same bytes uncompressed (not a gzip stream) must be refused, not crash.
    let _ = mkimage_core::inspect::inspect_tarball(data, "fuzz");
});
