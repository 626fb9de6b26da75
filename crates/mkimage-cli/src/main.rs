//! `unikernel-mkimage`: the command-line front end of `mkimage-core`.
//!
//! Exit status: 0 on success; 1 when a build fails or `inspect` finds a failing check; 2 on a
//! usage error or when `inspect`'s input is not an image; `run` exits with QEMU's status, 124
//! when `--timeout` expires and 127 when QEMU is missing; 130 or 143 after SIGINT or SIGTERM.

mod inspect_cmd;
mod plan_text;
mod run_cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use unikernel_mkimage::{Failure, Format, OnSignal, handle_signals, infer_format, output};
use mkimage_core::size::{format_size, parse_size};
use mkimage_core::{ImageBuilder, Kernel, PartitionTable, Timestamp};

#[derive(Parser, Debug)]
#[command(
    name = "unikernel-mkimage",
    about = "Turn a Multiboot unikernel into a bootable disk image or a GCE image tarball",
    long_about = "Turn a Multiboot unikernel (a Solo5 virtio or MirageOS build, or any Multiboot 1 kernel) into a \
                  bootable disk image, or into the disk.raw-in-a-.tar.gz file that Google Compute Engine imports; \
                  inspect images; boot them in QEMU.",
    after_help = "Exit status: 0 success; 1 build failed or a check failed; 2 usage error or not an image; \
                  run: QEMU's status, 124 on timeout, 127 without QEMU; 130/143 after SIGINT/SIGTERM."
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
    /// Describe what an image (raw or GCE tarball) holds and check it.
    #[command(after_help = INSPECT_EXAMPLES)]
    Inspect(inspect_cmd::InspectArgs),
    /// Boot an image (raw or GCE tarball) in QEMU with GCE-like virtual hardware.
    #[command(after_help = RUN_EXAMPLES)]
    Run(run_cmd::RunArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  unikernel-mkimage completions bash > /etc/bash_completion.d/unikernel-mkimage\n  unikernel-mkimage completions zsh > ~/.zfunc/_unikernel-mkimage"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff).
    #[command(after_help = "Example:\n  unikernel-mkimage manpage > unikernel-mkimage.1 && man ./unikernel-mkimage.1")]
    Manpage,
}

const BUILD_EXAMPLES: &str = "\
Examples:
  unikernel-mkimage build hello.virtio -o hello.tar.gz -- --ipv4=10.0.0.2/24
  unikernel-mkimage build hello.virtio -o disk.raw --partition-table gpt --size 2G
  SOURCE_DATE_EPOCH=1700000000 unikernel-mkimage build k.bin -o k.img --name unikernel.bin -v

The kernel receives the command line \"NAME ARGS...\" (NAME defaults to the kernel's file name).
SOURCE_DATE_EPOCH, when set, gives the timestamp recorded in the image.";

const INSPECT_EXAMPLES: &str = "\
Examples:
  unikernel-mkimage inspect hello.tar.gz
  unikernel-mkimage inspect disk.raw --json | jq '.checks[] | select(.ok | not)'

Exit status: 0 when every check holds, 1 when one fails, 2 when the input is not an image.";

const RUN_EXAMPLES: &str = "\
Examples:
  unikernel-mkimage run hello.tar.gz
  unikernel-mkimage run disk.raw --memory 1G --disk-bus ide --timeout 30
  unikernel-mkimage run disk.raw -- -netdev user,id=n0 -device virtio-net-pci,netdev=n0

Exit status: QEMU's, 124 when --timeout expires, 127 when QEMU is missing.";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FormatArg {
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
    format: Option<FormatArg>,
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
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// Print the plan (disk layout and load plan) before writing.
    #[arg(short, long)]
    verbose: bool,
    /// Arguments for the kernel, after `--`.
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

/// The clap command with the version line, which names the boot stage too.
fn command() -> clap::Command {
    Cli::command().version(format!(
        "{} (boot stage {})",
        env!("CARGO_PKG_VERSION"),
        mkimage_core::boot::bios::stage_version()
    ))
}

fn main() -> ExitCode {
    let matches = command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Build(args) => {
            handle_signals(OnSignal::Exit);
            build(args).map(|()| ExitCode::SUCCESS)
        }
        Command::Inspect(args) => Ok(inspect_cmd::inspect(&args)),
        Command::Run(args) => {
            handle_signals(OnSignal::Record);
            run_cmd::run(args)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut command(), "unikernel-mkimage", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpage => match clap_mangen::Man::new(command()).render(&mut std::io::stdout()) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) => Err(Failure(format!("cannot write the manual page: {e}"))),
        },
    };
    match result {
        Ok(code) => code,
        Err(Failure(message)) => {
            unikernel_mkimage::print_error("unikernel-mkimage", &message);
            ExitCode::from(unikernel_mkimage::EXIT_FAILURE)
        }
    }
}

fn build(args: BuildArgs) -> Result<(), Failure> {
    let started = Instant::now();
    // Problems with the options concern the output; say which.
    let about_output = |e: mkimage_core::Error| Failure(format!("{}: {}", args.output.display(), failure(&e).0));
    let disk_size = parse_size(&args.size).map_err(about_output)?;
    mkimage_core::Layout::check_disk_size(disk_size).map_err(about_output)?;
    let format = match args.format {
        Some(FormatArg::Raw) => Format::Raw,
        Some(FormatArg::Gce) => Format::Gce,
        None => infer_format(&args.output),
    };
    if format == Format::Gce {
        mkimage_core::output::gce::check_disk_size(disk_size).map_err(about_output)?;
    }
    let timestamp = Timestamp::from_env()?;
    let dest = output::prepare(&args.output, &args.kernel, format, args.force)?;
    // With the image on standard output, everything else goes to standard error.
    let say = |text: &str| if dest.is_stdout() { eprint!("{text}") } else { print!("{text}") };

    let kernel = Kernel::from_path(&args.kernel).map_err(|e| failure(&e))?;
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
    if args.verbose {
        say(&unikernel_mkimage::printable(&plan_text::describe(&builder.plan().map_err(|e| failure(&e))?)));
    }
    let image = builder.build().map_err(|e| failure(&e))?;
    let written = output::write(&image, &dest, format)?;
    if !args.quiet {
        let shown = if dest.is_stdout() { "standard output".into() } else { args.output.display().to_string() };
        say(&format!(
            "unikernel-mkimage: wrote {} ({}, {} disk, {} bytes written) in {:.3} s\n",
            unikernel_mkimage::printable(&shown),
            match format {
                Format::Raw => "raw",
                Format::Gce => "gce",
            },
            format_size(image.disk_size()),
            written,
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// A library error as one line, with a hint naming the option that avoids it where there is one.
fn failure(err: &mkimage_core::Error) -> Failure {
    use mkimage_core::Error;
    let hint = match err {
        Error::GceSizeNotWholeGib { size } => format!(" (try --size {}G)", size.div_ceil(mkimage_core::size::GIB)),
        Error::KernelNameNotUtf8 { .. } => " (give the kernel a name with --name)".into(),
        _ => String::new(),
    };
    Failure(format!("{}{hint}", unikernel_mkimage::chain(err)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn version_names_the_boot_stage() {
        let version = command().render_version();
        assert!(
            version.contains(env!("CARGO_PKG_VERSION"))
                && version.contains(&format!("boot stage {}", mkimage_core::boot::bios::stage_version())),
            "{version}"
        );
    }
}
