//! `unikernel-mkimage`: the command-line front end of `mkimage-core`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use mkimage_core::size::{format_size, parse_size};
use mkimage_core::{Error, Image, ImageBuilder, Kernel, PartitionTable, Timestamp};

/// Exit status when the build fails.
const EXIT_FAILURE: u8 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "unikernel-mkimage",
    version,
    about = "Turn a Multiboot unikernel into a bootable disk image or a GCE image tarball",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build a disk image (raw) or a Google Compute Engine image tarball (gce) from a kernel.
    #[command(after_help = BUILD_EXAMPLES)]
    Build(BuildArgs),
}

const BUILD_EXAMPLES: &str = "\
Examples:
  unikernel-mkimage build hello.virtio -o hello.tar.gz -- --ipv4=10.0.0.2/24
  unikernel-mkimage build hello.virtio -o disk.raw --partition-table gpt --size 2G
  SOURCE_DATE_EPOCH=1700000000 unikernel-mkimage build k.bin -o k.img --name unikernel.bin

The kernel receives the command line \"NAME ARGS...\" (NAME defaults to the kernel's file name).
SOURCE_DATE_EPOCH, when set, gives the timestamp recorded in the image.";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A raw disk image (sparse file).
    Raw,
    /// A gzip-compressed tar holding disk.raw, for GCE image import.
    Gce,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Table {
    /// Classic MBR with one bootable FAT partition.
    Mbr,
    /// GUID partition table with a BIOS boot partition and an EFI system partition.
    Gpt,
}

#[derive(clap::Args, Debug)]
struct BuildArgs {
    /// The Multiboot kernel to boot.
    kernel: PathBuf,
    /// Where to write the image.
    #[arg(short, long, value_name = "OUTPUT")]
    output: PathBuf,
    /// Output format [default: gce for *.tar.gz and *.tgz, raw otherwise].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Partition table.
    #[arg(long, value_enum, default_value_t = Table::Mbr)]
    partition_table: Table,
    /// Disk size: bytes, or with a binary unit (512M, 2G, 1GiB). GCE needs whole GiB.
    #[arg(long, default_value = "1G", value_name = "SIZE")]
    size: String,
    /// File name of the kernel on the disk, and the first word of its command line.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Derive the disk's identifiers (disk signature, GUIDs, volume id) from this string
    /// instead of from the content.
    #[arg(long, value_name = "STRING")]
    identity_seed: Option<String>,
    /// Make the boot stage silent on success (failures are always reported on COM1).
    #[arg(long)]
    quiet_boot: bool,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    force: bool,
    /// Print nothing on success.
    #[arg(short, long)]
    quiet: bool,
    /// Arguments for the kernel, after `--`.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

/// An error for the user: one line, the cause chain included.
struct Failure(String);

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        Failure(text)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => build(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("unikernel-mkimage: error: {message}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn infer_format(output: &Path) -> Format {
    let name = output
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Format::Gce
    } else {
        Format::Raw
    }
}

fn build(args: BuildArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let disk_size = parse_size(&args.size)?;
    let format = args.format.unwrap_or_else(|| infer_format(&args.output));
    if format == Format::Gce {
        mkimage_core::gce::check_disk_size(disk_size)?;
    }
    let timestamp = Timestamp::from_env()?;
    check_output(&args.output, &args.kernel, args.force)?;

    let kernel = Kernel::from_path(&args.kernel)?;
    let mut builder = ImageBuilder::new(kernel)
        .args(args.args)
        .partition_table(match args.partition_table {
            Table::Mbr => PartitionTable::Mbr,
            Table::Gpt => PartitionTable::Gpt,
        })
        .disk_size(disk_size)
        .timestamp(timestamp)
        .quiet_boot(args.quiet_boot);
    if let Some(name) = args.name {
        builder = builder.name(name);
    }
    if let Some(seed) = args.identity_seed {
        builder = builder.identity_seed(seed);
    }
    let image = builder.build()?;
    let written = write_output(&image, &args.output, format, args.force)?;
    if !args.quiet {
        println!(
            "unikernel-mkimage: wrote {} ({}, {} disk, {} bytes written) in {:.3} s",
            args.output.display(),
            match format {
                Format::Raw => "raw",
                Format::Gce => "gce",
            },
            format_size(image.disk_size()),
            written,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Refuses outputs that would clobber something: an existing file without `--force`, a
/// directory, or the kernel itself.
fn check_output(output: &Path, kernel: &Path, force: bool) -> Result<(), Failure> {
    let Ok(meta) = std::fs::metadata(output) else {
        return Ok(());
    };
    if meta.is_dir() {
        return Err(Failure(format!(
            "output {} is a directory",
            output.display()
        )));
    }
    if same_file(output, kernel) {
        return Err(Failure(format!(
            "output {} is the kernel itself; the input is never overwritten",
            output.display()
        )));
    }
    if !force {
        return Err(Failure(format!(
            "output {} already exists (use --force to replace it)",
            output.display()
        )));
    }
    Ok(())
}

#[cfg(unix)]
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(a: &Path, b: &Path) -> bool {
    std::fs::canonicalize(a)
        .ok()
        .is_some_and(|a| std::fs::canonicalize(b).ok() == Some(a))
}

/// Writes the image to a temporary file next to `output` and renames it into place, so that
/// `output` is either the complete image or untouched. Returns the bytes written.
fn write_output(image: &Image, output: &Path, format: Format, force: bool) -> Result<u64, Failure> {
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let io_failure =
        |what: &str, err: std::io::Error| Failure(format!("{what} {}: {err}", output.display()));
    let mut temp = tempfile::Builder::new()
        .prefix(".unikernel-mkimage-")
        .suffix(".partial")
        .permissions(default_permissions())
        .tempfile_in(dir)
        .map_err(|e| io_failure("cannot create a temporary file next to", e))?;
    let written = match format {
        Format::Raw => image.write_raw_file(temp.as_file_mut())?,
        Format::Gce => image.write_gce(std::io::BufWriter::new(temp.as_file_mut()))?,
    };
    temp.as_file()
        .sync_all()
        .map_err(|e| io_failure("cannot flush", e))?;
    let persisted = if force {
        temp.persist(output)
    } else {
        temp.persist_noclobber(output)
    };
    persisted.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            Failure(format!(
                "output {} already exists (use --force to replace it)",
                output.display()
            ))
        } else {
            io_failure("cannot move the finished image to", e.error)
        }
    })?;
    Ok(written)
}

/// Permissions of a newly created output, before the umask: read-write for everyone, as for any
/// file a program creates.
#[cfg(unix)]
fn default_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o666)
}

#[cfg(not(unix))]
fn default_permissions() -> std::fs::Permissions {
    std::fs::metadata(".")
        .map(|m| m.permissions())
        .expect("current directory is readable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(infer_format(Path::new("x.tar.gz")), Format::Gce);
        assert_eq!(infer_format(Path::new("dir/X.TGZ")), Format::Gce);
        assert_eq!(infer_format(Path::new("disk.raw")), Format::Raw);
        assert_eq!(infer_format(Path::new("disk.gz")), Format::Raw);
        assert_eq!(infer_format(Path::new("")), Format::Raw);
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
