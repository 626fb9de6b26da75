//! `unikernel-mkimage`: the command-line front end of `mkimage-core`.
//!
//! Exit status: 0 on success; 1 when a build fails or `inspect` finds a failing check; 2 on a
//! usage error or when `inspect`'s input is not an image; `run` exits with QEMU's status, 124
//! when `--timeout` expires and 127 when QEMU is missing; 130 or 143 after SIGINT or SIGTERM.

mod inspect_cmd;
mod manual;
mod plan_text;
#[cfg(feature = "gce")]
mod push_cmd;
mod run_cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use mkimage_core::size::{format_size, parse_size};
use mkimage_core::{Firmware, ImageBuilder, Kernel, PartitionTable, Timestamp};
use unikernel_mkimage::{Failure, Format, OnSignal, handle_signals, infer_format, output};

#[derive(Parser, Debug)]
#[command(
    name = "unikernel-mkimage",
    about = "Turn a Multiboot unikernel into a bootable disk image or a GCE image tarball",
    long_about = "Turn a Multiboot unikernel (a Solo5 virtio or MirageOS build, or any Multiboot 1 kernel) into a \
                  bootable disk image, or into the disk.raw-in-a-.tar.gz file that Google Compute Engine imports; \
                  inspect images; boot them in QEMU.",
    after_help = "Exit status: 0 success; 1 build failed or a check failed; 2 usage error or not an image; \
                  run: QEMU's status, 124 on timeout, 125 when KVM fails under --accel kvm, 127 without QEMU; \
                  130/143 after SIGINT/SIGTERM."
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
    /// Publish an image: upload a GCE tarball and create a Compute Engine image from it.
    #[cfg(feature = "gce")]
    Push(push_cmd::PushArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  unikernel-mkimage completions bash > /etc/bash_completion.d/unikernel-mkimage\n  unikernel-mkimage completions zsh > ~/.zfunc/_unikernel-mkimage"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print a manual page (roff): the tool's, or a subcommand's; or write them all.
    #[command(after_help = MANPAGE_EXAMPLES)]
    Manpage(ManpageArgs),
}

const MANPAGE_EXAMPLES: &str = "\
Examples:
  unikernel-mkimage manpage > unikernel-mkimage.1 && man ./unikernel-mkimage.1
  unikernel-mkimage manpage build | man -l -
  unikernel-mkimage manpage --dir /usr/share/man/man1

--dir writes unikernel-mkimage.1, unikernel-mkimage-SUBCOMMAND.1 for each subcommand, and
solo5-virtio-mkimage.1 for the drop-in.";

#[derive(clap::Args, Debug)]
struct ManpageArgs {
    /// The subcommand whose page to print [default: the tool's own page].
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(SUBCOMMANDS))]
    subcommand: Option<String>,
    /// Write every page into DIR instead (for packagers).
    #[arg(long, value_name = "DIR", conflicts_with = "subcommand")]
    dir: Option<PathBuf>,
}

/// The subcommands, which have pages of their own (a test keeps the list complete); a nested
/// one is named with a dash (`push-gce`).
#[cfg(feature = "gce")]
const SUBCOMMANDS: &[&str] = &["build", "inspect", "run", "push", "push-gce", "completions", "manpage"];
/// The subcommands, which have pages of their own (a test keeps the list complete).
#[cfg(not(feature = "gce"))]
const SUBCOMMANDS: &[&str] = &["build", "inspect", "run", "completions", "manpage"];

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

When KVM cannot run the guest (\"KVM internal error\"), run says so and restarts under software
emulation; with --accel kvm it stops instead.

Exit status: QEMU's, 124 when --timeout expires, 125 when KVM fails under --accel kvm, 127 when
QEMU is missing.";

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
    /// GUID partition table with an EFI system partition (and a BIOS boot partition for the
    /// BIOS stage).
    Gpt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FirmwareArg {
    /// Legacy BIOS only: the MBR code and the boot stage.
    Bios,
    /// UEFI only: \EFI\BOOT\BOOTX64.EFI (needed for kernels that require a graphics mode).
    Uefi,
    /// Both, from the same bytes: boots under SeaBIOS and under OVMF alike.
    Hybrid,
}

impl From<FirmwareArg> for Firmware {
    fn from(arg: FirmwareArg) -> Firmware {
        match arg {
            FirmwareArg::Bios => Firmware::Bios,
            FirmwareArg::Uefi => Firmware::Uefi,
            FirmwareArg::Hybrid => Firmware::Hybrid,
        }
    }
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
    /// The firmware the image boots from.
    #[arg(long, value_enum, default_value_t = FirmwareArg::Hybrid)]
    firmware: FirmwareArg,
    /// Disk size: bytes, or with a binary unit and maybe a fraction (512M, 1.5G, 2GiB). GCE
    /// needs whole GiB.
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

/// The clap command with the version line, which names the boot stages too.
fn command() -> clap::Command {
    Cli::command().version(format!(
        "{} (boot stage {}, UEFI loader {})",
        env!("CARGO_PKG_VERSION"),
        mkimage_core::boot::bios::stage_version(),
        mkimage_core::boot::uefi::loader_version()
    ))
}

/// Exit status of a usage error.
const EXIT_USAGE: u8 = 2;

/// Why a command stopped.
enum Stop {
    /// It failed (exit status 1).
    Failed(Failure),
    /// The options cannot be honoured as given (exit status 2).
    Usage(String),
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Self {
        Stop::Failed(f)
    }
}

/// Reports a command-line error clap found in the same form as ours: one
/// `unikernel-mkimage: error:` line (clap's message, its lines joined), exit status 2. Help and
/// version go to standard output with status 0.
fn clap_exit(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        _ => {
            let text = err.render().to_string();
            // The message is the first paragraph; clap's usage hint follows a blank line.
            let message: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            let message = message.join(" ");
            unikernel_mkimage::print_error("unikernel-mkimage", message.strip_prefix("error: ").unwrap_or(&message));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn main() -> ExitCode {
    let cli = match command().try_get_matches().and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    let result = match cli.command {
        Command::Build(args) => {
            handle_signals(OnSignal::Exit);
            match build(args) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(Stop::Failed(f)) => Err(f),
                Err(Stop::Usage(message)) => {
                    unikernel_mkimage::print_error("unikernel-mkimage", &message);
                    Ok(ExitCode::from(EXIT_USAGE))
                }
            }
        }
        Command::Inspect(args) => Ok(inspect_cmd::inspect(&args)),
        Command::Run(args) => {
            handle_signals(OnSignal::Record);
            run_cmd::run(args)
        }
        #[cfg(feature = "gce")]
        Command::Push(args) => {
            handle_signals(OnSignal::Record);
            Ok(push_cmd::push(args))
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut command(), "unikernel-mkimage", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpage(args) => {
            manual::manpage(&command(), &args.subcommand, args.dir.as_deref()).map(|()| ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(Failure(message)) => {
            unikernel_mkimage::print_error("unikernel-mkimage", &message);
            ExitCode::from(unikernel_mkimage::EXIT_FAILURE)
        }
    }
}

fn build(args: BuildArgs) -> Result<(), Stop> {
    let started = Instant::now();
    // Problems with the options concern the output; say which.
    let usage = |e: mkimage_core::Error| Stop::Usage(format!("{}: {}", args.output.display(), failure(&e).0));
    let disk_size = parse_size(&args.size).map_err(usage)?;
    mkimage_core::Layout::check_disk_size(disk_size).map_err(usage)?;
    let format = match args.format {
        Some(FormatArg::Raw) => Format::Raw,
        Some(FormatArg::Gce) => Format::Gce,
        None => infer_format(&args.output),
    };
    if let Some(ext) = unikernel_mkimage::foreign_extension(&args.output) {
        let written = if format == Format::Gce { "a GCE tarball" } else { "a raw image" };
        if args.format.is_none() {
            return Err(Stop::Usage(format!(
                "output {} ends in {ext}, a format this tool does not write; name it .raw or .img for a raw \
                 image, .tar.gz for GCE, or give --format to write {written} under this name anyway",
                args.output.display()
            )));
        }
        eprintln!(
            "unikernel-mkimage: warning: output {} ends in {ext} but will hold {written}, as --format asks",
            unikernel_mkimage::printable(&args.output.display().to_string())
        );
    }
    if format == Format::Gce {
        mkimage_core::output::gce::check_disk_size(disk_size).map_err(usage)?;
    }
    let timestamp = Timestamp::from_env().map_err(Failure::from)?;
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
        .firmware(args.firmware.into())
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
            "unikernel-mkimage: wrote {} ({}, {} disk, {}, {} bytes written) in {:.3} s\n",
            unikernel_mkimage::printable(&shown),
            match format {
                Format::Raw => "raw",
                Format::Gce => "gce",
            },
            format_size(image.disk_size()),
            firmware_words(image.plan().layout.firmware),
            written,
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// How the summary line names the firmware an image boots from.
fn firmware_words(firmware: Firmware) -> &'static str {
    match firmware {
        Firmware::Bios => "BIOS",
        Firmware::Uefi => "UEFI",
        _ => "BIOS and UEFI",
    }
}

/// A library error as one line, with a hint naming the option that avoids it where there is one.
fn failure(err: &mkimage_core::Error) -> Failure {
    use mkimage_core::Error;
    let hint = match err {
        Error::UnsupportedVideoMode { uefi_only_would_work: true, .. } => " (build it with --firmware uefi)".into(),
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
    fn every_subcommand_has_a_page_name() {
        let cmd = command();
        let pages = manual::pages(&cmd);
        let names: Vec<&str> = pages.iter().filter_map(|(name, _)| name.strip_prefix("unikernel-mkimage-")).collect();
        assert_eq!(names, SUBCOMMANDS);
    }

    #[test]
    fn version_names_the_boot_stages() {
        let version = command().render_version();
        assert!(
            version.contains(env!("CARGO_PKG_VERSION"))
                && version.contains(&format!("boot stage {}", mkimage_core::boot::bios::stage_version()))
                && version.contains(&format!("UEFI loader {}", mkimage_core::boot::uefi::loader_version())),
            "{version}"
        );
    }
}
