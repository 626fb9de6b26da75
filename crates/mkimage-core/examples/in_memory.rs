//! Builds a disk image entirely in memory: a GCE tarball into a `Vec<u8>` and a raw image into a
//! `Cursor`, then prints what was produced.
//!
//! ```text
//! cargo run -p mkimage-core --example in_memory                 # a tiny generated kernel
//! cargo run -p mkimage-core --example in_memory -- path/to/kernel arg1 arg2
//! ```

use std::io::Cursor;

use mkimage_core::size::{MIB, format_size};
use mkimage_core::{ImageBuilder, Kernel, PartitionTable, Timestamp, testkit};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let kernel = match args.next() {
        Some(path) => Kernel::from_path(path)?,
        None => Kernel::from_bytes("example.bin", testkit::multiboot_kernel(b"an example payload")),
    };
    let kernel_args: Vec<String> = args.collect();

    // The GCE tarball streams to any `Write`; here, a vector.
    let image = ImageBuilder::new(kernel.clone())
        .args(kernel_args.iter().cloned())
        .timestamp(Timestamp::from_unix(1_700_000_000))
        .build()?;
    let mut tarball = Vec::new();
    image.write_gce(&mut tarball)?;
    println!(
        "GCE tarball: {} bytes for a {} disk; the kernel sees {:?}",
        tarball.len(),
        format_size(image.disk_size()),
        image.plan().cmdline
    );

    // A smaller GPT disk, written raw into memory.
    let image =
        ImageBuilder::new(kernel).args(kernel_args).partition_table(PartitionTable::Gpt).disk_size(64 * MIB).build()?;
    let mut raw = Cursor::new(Vec::new());
    image.write_raw(&mut raw)?;
    let layout = &image.plan().layout;
    println!(
        "raw GPT image: {} bytes, {} filesystem, kernel at LBA {} ({} sectors), {} bytes of data",
        raw.get_ref().len(),
        layout.fat.geometry.fat_type,
        layout.kernel.sectors.start,
        layout.kernel.sectors.count,
        image.data_len()
    );
    Ok(())
}
