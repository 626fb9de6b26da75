//! Any bytes: the Multiboot/ELF parser must return a plan or an error, never panic, and a plan
//! must satisfy the invariants the boot record relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mkimage_core::multiboot::{LoadPlan, MAX_LOAD_END, MIN_LOAD_ADDR};

fuzz_target!(|data: &[u8]| {
    if let Ok(plan) = LoadPlan::new(data) {
        let mut last_end = 0;
        for s in &plan.segments {
            assert!(s.addr >= MIN_LOAD_ADDR && s.end() <= MAX_LOAD_END);
            assert!(s.file_size <= s.mem_size);
            assert!(s.file_offset + s.file_size <= data.len() as u64);
            assert!(s.addr >= last_end, "segments sorted and disjoint");
            last_end = s.end();
        }
        let entry = u64::from(plan.entry);
        assert!(plan.segments.iter().any(|s| entry >= s.addr && entry < s.addr + s.file_size));
    }
});
