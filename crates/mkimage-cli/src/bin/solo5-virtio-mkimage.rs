//! `solo5-virtio-mkimage`: a drop-in replacement for Solo5's script of that name, for build
//! scripts that call it. Same usage, same result layout (MBR, 1 GiB, the kernel stored as
//! `unikernel.bin`, so the kernel sees `unikernel.bin ARGUMENTS`), but no sfdisk, mtools,
//! SYSLINUX or Docker, and reproducible output.
//!
//! Usage errors print the usage text and exit 1; other errors print
//! `solo5-virtio-mkimage: error: ...` and exit 1. Like the original, an existing IMAGE is
//! replaced (atomically here) and nothing is printed on success.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use unikernel_mkimage::{Failure, Format, OnSignal, handle_signals, output};
use mkimage_core::{ImageBuilder, Kernel, PartitionTable, Timestamp};

/// The name the kernel gets on the disk, and so the first word of its command line.
const KERNEL_NAME: &str = "unikernel.bin";
/// Disk size of the images the original tool makes.
const DISK_SIZE: u64 = 1 << 30;

const USAGE: &str = "\
usage: solo5-virtio-mkimage [ OPTIONS ] [ -- ] IMAGE UNIKERNEL [ ARGUMENTS ... ]

Writes a bootable, MBR-partitioned disk IMAGE holding UNIKERNEL (a Solo5
'virtio' unikernel or any Multiboot kernel). ARGUMENTS, if any, are stored in
the image and passed to the unikernel when it boots.

Options:
    -d: Accepted for compatibility and ignored: no container is needed.

    -f FORMAT: 'raw' writes a raw disk image (the default); 'tar' writes the
        .tar.gz file Google Compute Engine imports.

This is unikernel-mkimage's drop-in replacement; see unikernel-mkimage --help.
";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    docker: bool,
    format: Format,
    image: PathBuf,
    kernel: PathBuf,
    args: Vec<String>,
}

/// Parses the old getopt-style command line (`df:`): options first, `--` optional, then
/// IMAGE UNIKERNEL ARGUMENTS; everything from the first operand on is an operand. `None` on a
/// usage error.
fn parse(args: &[OsString]) -> Option<Request> {
    let mut docker = false;
    let mut format = Format::Raw;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].to_str()?;
        if arg == "--" {
            i += 1;
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            break;
        }
        // A cluster of single-letter options; -f takes the rest of the cluster or the next
        // argument as its value.
        let chars = arg[1..].char_indices();
        for (at, c) in chars {
            match c {
                'd' => docker = true,
                'f' => {
                    let rest = &arg[1 + at + 1..];
                    let value = if rest.is_empty() {
                        i += 1;
                        args.get(i)?.to_str()?
                    } else {
                        rest
                    };
                    format = match value {
                        "raw" => Format::Raw,
                        "tar" => Format::Gce,
                        _ => return None,
                    };
                    break;
                }
                _ => return None,
            }
        }
        i += 1;
    }
    let operands = &args[i.min(args.len())..];
    if operands.len() < 2 {
        return None;
    }
    let strings: Option<Vec<String>> = operands[2..].iter().map(|a| a.to_str().map(str::to_owned)).collect();
    Some(Request {
        docker,
        format,
        image: PathBuf::from(&operands[0]),
        kernel: PathBuf::from(&operands[1]),
        args: strings?,
    })
}

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
        .disk_size(DISK_SIZE)
        .timestamp(Timestamp::from_env()?)
        .build()?;
    output::write(&image, &dest, req.format)?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some(req) = parse(&args) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Option<Request> {
        parse(&args.iter().map(OsString::from).collect::<Vec<_>>())
    }

    fn req(format: Format, docker: bool, args: &[&str]) -> Request {
        Request {
            docker,
            format,
            image: "out".into(),
            kernel: "k".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn argument_shapes_of_real_build_scripts() {
        assert_eq!(
            p(&["-f", "tar", "--", "out", "k", "--ipv4=10.0.0.2/24", "--ipv4-gateway=10.0.0.1"]),
            Some(req(Format::Gce, false, &["--ipv4=10.0.0.2/24", "--ipv4-gateway=10.0.0.1"]))
        );
        assert_eq!(p(&["-f", "tar", "out", "k", "--ipv4=x"]), Some(req(Format::Gce, false, &["--ipv4=x"])));
        assert_eq!(p(&["out", "k"]), Some(req(Format::Raw, false, &[])));
        assert_eq!(p(&["-d", "-f", "raw", "out", "k", "a", "-f"]), Some(req(Format::Raw, true, &["a", "-f"])));
        assert_eq!(p(&["-ftar", "out", "k"]), Some(req(Format::Gce, false, &[])));
        assert_eq!(p(&["-dftar", "out", "k"]), Some(req(Format::Gce, true, &[])));
        assert_eq!(p(&["--", "out", "k", "--", "x"]), Some(req(Format::Raw, false, &["--", "x"])));
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["out"],
            &["-f", "zip", "out", "k"],
            &["-f"],
            &["-x", "out", "k"],
            &["--", "out"],
            &["-f", "tar"],
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }
}
