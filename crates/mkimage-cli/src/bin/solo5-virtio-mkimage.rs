//! `solo5-virtio-mkimage`: a drop-in replacement for Solo5's script of that name, for build
//! scripts that call it. Same usage, same result layout (MBR, 1 GiB, the kernel stored as
//! `unikernel.bin`, so the kernel sees `unikernel.bin ARGUMENTS`), but no sfdisk, mtools,
//! SYSLINUX or Docker, and reproducible output. The images are hybrid: they also boot from UEFI
//! firmware (GCE's `UEFI_COMPATIBLE`), which costs nothing a BIOS boot sees: the extra
//! `EFI` directory sits beside the kernel, whose name, place and command line do not change.
//!
//! Usage errors print the usage text and exit 1; other errors print
//! `solo5-virtio-mkimage: error: ...` and exit 1. Like the original, an existing IMAGE is
//! replaced (atomically here) and nothing is printed on success.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use mkimage_core::{Firmware, ImageBuilder, Kernel, PartitionTable, Timestamp};
use unikernel_mkimage::dropin::{self, Request, USAGE};
use unikernel_mkimage::{Failure, OnSignal, handle_signals, output};

/// The name the kernel gets on the disk, and so the first word of its command line.
const KERNEL_NAME: &str = "unikernel.bin";
/// Disk size of the images the original tool makes.
const DISK_SIZE: u64 = 1 << 30;

fn build(req: &Request) -> Result<(), Failure> {
    if std::fs::metadata(&req.kernel).is_err() {
        return Err(Failure(format!("not found: {}", req.kernel.display())));
    }
    if unikernel_mkimage::same_file(&req.image, &req.kernel) {
        return Err(Failure(format!(
            "{} is the unikernel itself; the input is never overwritten",
            req.image.display()
        )));
    }
    if std::fs::metadata(&req.image).is_ok_and(|m| m.is_dir()) {
        return Err(Failure(format!("{} is a directory", req.image.display())));
    }
    // Like the script, IMAGE is always a path (a file named "-" included), and an existing one
    // is replaced; a device or FIFO is written into, never replaced.
    let image_path = if req.image.as_os_str() == "-" { PathBuf::from("./-") } else { req.image.clone() };
    let dest = output::prepare(&image_path, &req.kernel, req.format, true)?;
    let kernel = Kernel::from_path(&req.kernel)?;
    let image = ImageBuilder::new(kernel)
        .name(KERNEL_NAME)
        .args(req.args.iter().cloned())
        .partition_table(PartitionTable::Mbr)
        .firmware(Firmware::Hybrid)
        .disk_size(DISK_SIZE)
        .timestamp(Timestamp::from_env()?)
        .build()?;
    output::write(&image, &dest, req.format)?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let posixly_correct = std::env::var_os("POSIXLY_CORRECT").is_some();
    let Some(req) = dropin::parse(&args, posixly_correct) else {
        eprint!("{USAGE}");
        return ExitCode::from(unikernel_mkimage::EXIT_FAILURE);
    };
    if req.docker {
        eprintln!("solo5-virtio-mkimage: note: -d ignored: no container is needed");
    }
    handle_signals(OnSignal::Exit);
    match build(&req) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            unikernel_mkimage::print_error("solo5-virtio-mkimage", &message);
            ExitCode::from(unikernel_mkimage::EXIT_FAILURE)
        }
    }
}
