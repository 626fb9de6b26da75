//! Any bytes: the boot record decoder must never panic, and what it accepts must encode back to
//! the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mkimage_core::boot::record::BootRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = BootRecord::decode(data) {
        if let Ok(bytes) = record.encode() {
            assert_eq!(BootRecord::decode(&bytes).as_ref(), Ok(&record));
        }
    }
});
