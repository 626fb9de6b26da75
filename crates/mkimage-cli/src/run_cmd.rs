//! `unikernel-mkimage run`: boots an image in QEMU with GCE-like virtual hardware (i440fx,
//! virtio-scsi boot disk with 4096-byte physical sectors, COM1 on the terminal), from SeaBIOS or
//! from OVMF (UEFI; by default when the image boots only from UEFI). A GCE tarball is first
//! unpacked to a sparse temporary file. The image is opened in snapshot mode, so it is never
//! modified, and OVMF gets a temporary copy of its variable store, so the system's is never
//! written either.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use mkimage_core::Firmware;
use unikernel_mkimage::qemu::{Disk, OVMF_LOCATIONS, Ovmf};
use unikernel_mkimage::{Failure, register_temp, unregister_temp};

/// The QEMU program looked up on PATH.
const QEMU: &str = "qemu-system-x86_64";
/// The Debian package that provides it.
const QEMU_PACKAGE: &str = "qemu-system-x86";
/// Exit status when the timeout expires (as timeout(1) uses).
const EXIT_TIMEOUT: u8 = 124;
/// Exit status when QEMU cannot be found (as shells use for a missing command).
const EXIT_NO_QEMU: u8 = 127;
/// Exit status when KVM cannot run the guest and `--accel kvm` was asked for (even, so no
/// isa-debug-exit status can be mistaken for it).
const EXIT_KVM_FAILED: u8 = 125;
/// How often the child is polled for exit, timeout and signals.
const POLL: Duration = Duration::from_millis(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum DiskBus {
    /// The PIIX IDE controller.
    Ide,
    /// An AHCI (SATA) controller.
    Ahci,
    /// virtio-scsi with 4096-byte physical sectors, like GCE's boot disk.
    VirtioScsi,
    /// virtio-blk (Solo5 kernels refuse a virtio-blk boot disk they do not declare).
    VirtioBlk,
    /// NVMe.
    Nvme,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Accel {
    /// Hardware virtualization (needs read-write access to /dev/kvm).
    Kvm,
    /// Software emulation.
    Tcg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum FirmwareArg {
    /// SeaBIOS, QEMU's legacy BIOS.
    Bios,
    /// OVMF, UEFI firmware (Debian package ovmf).
    Uefi,
}

#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
    /// A raw disk image or a GCE tarball (.tar.gz).
    image: PathBuf,
    /// The firmware to boot from [default: uefi when the image boots only from UEFI, else bios].
    #[arg(long, value_enum)]
    firmware: Option<FirmwareArg>,
    /// The UEFI firmware: OVMF's code and, optionally, the variable store it is copied from
    /// [default: the first found in Debian's, Fedora's and Arch's locations].
    #[arg(long, value_name = "CODE[,VARS]")]
    ovmf: Option<String>,
    /// Guest memory, in QEMU's syntax (512M, 2G).
    #[arg(long, default_value = "512M")]
    memory: String,
    /// How the boot disk is attached.
    #[arg(long, value_enum, default_value_t = DiskBus::VirtioScsi)]
    disk_bus: DiskBus,
    /// Stop QEMU after this many seconds and exit with status 124.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// The QEMU program [default: qemu-system-x86_64 on PATH].
    #[arg(long, value_name = "PATH")]
    qemu: Option<PathBuf>,
    /// Accelerator [default: kvm when /dev/kvm is usable, else tcg].
    #[arg(long, value_enum)]
    accel: Option<Accel>,
    /// Extra QEMU arguments, after `--`.
    #[arg(last = true, value_name = "QEMU_ARGS")]
    qemu_args: Vec<String>,
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

fn kvm_usable() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

impl DiskBus {
    /// The attachment this bus stands for.
    fn disk(self) -> Disk {
        match self {
            DiskBus::Ide => Disk::Ide,
            DiskBus::Ahci => Disk::Ahci,
            DiskBus::VirtioScsi => Disk::VirtioScsi4k,
            DiskBus::VirtioBlk => Disk::VirtioBlk,
            DiskBus::Nvme => Disk::Nvme,
        }
    }
}

/// Unpacks the disk of a GCE tarball into a sparse temporary file.
fn unpack(path: &Path) -> Result<tempfile::NamedTempFile, Failure> {
    let file = std::fs::File::open(path).map_err(|e| Failure(format!("cannot read {}: {e}", path.display())))?;
    let len = file.metadata().map(|m| m.len()).ok();
    let mut temp = tempfile::Builder::new()
        .prefix(".unikernel-mkimage-run-")
        .suffix(".raw")
        .tempfile()
        .map_err(|e| Failure(format!("cannot create a temporary file: {e}")))?;
    register_temp(temp.path());
    let (_, disk) = mkimage_core::inspect::tarball::unpack(std::io::BufReader::new(file), len, temp.as_file_mut())
        .map_err(|e| Failure(format!("{} is not a readable image tarball: {e}", path.display())))?;
    disk.ok_or_else(|| Failure(format!("{} holds no disk image", path.display())))?;
    Ok(temp)
}

pub(crate) fn run(args: RunArgs) -> Result<ExitCode, Failure> {
    let qemu = match &args.qemu {
        Some(path) => path.clone(),
        None => match find_on_path(QEMU) {
            Some(path) => path,
            None => {
                unikernel_mkimage::print_error(
                    "unikernel-mkimage",
                    &format!(
                        "{QEMU} not found on PATH; install the Debian package {QEMU_PACKAGE}, or give --qemu PATH"
                    ),
                );
                return Ok(ExitCode::from(EXIT_NO_QEMU));
            }
        },
    };
    let mut magic = [0u8; 2];
    let is_tarball = std::fs::File::open(&args.image)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .map(|()| magic == [0x1f, 0x8b])
        .map_err(|e| Failure(format!("cannot read {}: {e}", args.image.display())))?;
    let unpacked = if is_tarball { Some(unpack(&args.image)?) } else { None };
    let disk = unpacked.as_ref().map_or(args.image.as_path(), |t| t.path());
    let firmware = match args.firmware {
        Some(FirmwareArg::Bios) => None,
        Some(FirmwareArg::Uefi) => Some(find_ovmf(args.ovmf.as_deref())?),
        None if args.ovmf.is_some() || boots_only_from_uefi(disk) => Some(find_ovmf(args.ovmf.as_deref())?),
        None => None,
    };
    let vars = firmware.as_ref().map(private_vars).transpose()?;
    let firmware_args = match (&firmware, &vars) {
        (Some(ovmf), Some(vars)) => ovmf.args(vars.path()),
        _ => Vec::new(),
    };
    let deadline = args.timeout.map(|s| Instant::now() + Duration::from_secs(s));
    let explicit = args.accel.is_some();
    let accel = args.accel.unwrap_or(if kvm_usable() { Accel::Kvm } else { Accel::Tcg });
    let machine = Machine { disk, firmware: &firmware_args };
    let mut outcome = boot(&qemu, accel, &machine, &args, deadline);
    if let Ok(Outcome::KvmFailed(reason)) = &outcome {
        let reason = reason.clone();
        if explicit {
            outcome =
                Ok(Outcome::Refused(format!("KVM could not run the guest (QEMU: {reason}); retry with --accel tcg")));
        } else {
            eprintln!(
                "unikernel-mkimage: run: KVM could not run the guest (QEMU: {}); restarting under software emulation (--accel tcg)",
                unikernel_mkimage::printable(&reason)
            );
            outcome = boot(&qemu, Accel::Tcg, &machine, &args, deadline);
        }
    }
    for temp in [unpacked.as_ref(), vars.as_ref()].into_iter().flatten() {
        unregister_temp(temp.path());
    }
    Ok(match outcome? {
        Outcome::Exited(status) => exit_code(status),
        Outcome::TimedOut => {
            eprintln!("unikernel-mkimage: run: stopped QEMU after the {} s timeout", args.timeout.unwrap_or(0));
            ExitCode::from(EXIT_TIMEOUT)
        }
        Outcome::NoQemu => ExitCode::from(EXIT_NO_QEMU),
        Outcome::KvmFailed(reason) | Outcome::Refused(reason) => {
            unikernel_mkimage::print_error("unikernel-mkimage", &reason);
            ExitCode::from(EXIT_KVM_FAILED)
        }
    })
}

/// Whether the image boots only from UEFI firmware (as `inspect` sees it).
fn boots_only_from_uefi(disk: &Path) -> bool {
    let Ok(file) = std::fs::File::open(disk) else { return false };
    let name = disk.display().to_string();
    mkimage_core::inspect::inspect_raw(std::io::BufReader::new(file), &name)
        .is_ok_and(|report| report.firmware == [Firmware::Uefi])
}

/// OVMF from `--ovmf`, or from the usual locations.
fn find_ovmf(arg: Option<&str>) -> Result<Ovmf, Failure> {
    match arg {
        Some(arg) => Ovmf::from_arg(arg).map_err(Failure),
        None => Ovmf::find().ok_or_else(|| {
            let looked: Vec<&str> = OVMF_LOCATIONS.iter().map(|(code, _)| *code).collect();
            Failure(format!(
                "no UEFI firmware found (looked for {}); install the Debian package ovmf, or give --ovmf CODE,VARS",
                looked.join(", ")
            ))
        }),
    }
}

/// A temporary copy of OVMF's variable store, which the firmware writes to.
fn private_vars(ovmf: &Ovmf) -> Result<tempfile::NamedTempFile, Failure> {
    let temp = tempfile::Builder::new()
        .prefix(".unikernel-mkimage-ovmf-vars-")
        .suffix(".fd")
        .tempfile()
        .map_err(|e| Failure(format!("cannot create a temporary file: {e}")))?;
    register_temp(temp.path());
    std::fs::copy(&ovmf.vars, temp.path())
        .map_err(|e| Failure(format!("cannot copy the OVMF variable store {}: {e}", ovmf.vars.display())))?;
    Ok(temp)
}

/// What the guest boots: the disk and the firmware's QEMU arguments (none for SeaBIOS).
struct Machine<'a> {
    disk: &'a Path,
    firmware: &'a [String],
}

/// How a QEMU run ended.
enum Outcome {
    /// QEMU exited.
    Exited(std::process::ExitStatus),
    /// The timeout expired; QEMU was stopped.
    TimedOut,
    /// QEMU could not be started because it does not exist (already reported).
    NoQemu,
    /// QEMU reported that KVM cannot run the guest (its words); QEMU was stopped.
    KvmFailed(String),
    /// The run is refused, for the reason given.
    Refused(String),
}

/// What QEMU prints when KVM cannot run the guest (it then stops the guest and waits).
const KVM_FAILURES: [&str; 3] = ["KVM internal error", "kvm run failed", "emulation failure"];

/// Starts QEMU with `accel` on `machine` and waits for it to end, for the deadline, for a
/// signal, or for QEMU to say KVM failed (its standard error is read and passed on line by
/// line).
fn boot(
    qemu: &Path,
    accel: Accel,
    machine: &Machine<'_>,
    args: &RunArgs,
    deadline: Option<Instant>,
) -> Result<Outcome, Failure> {
    let mut command = Command::new(qemu);
    command
        .args(unikernel_mkimage::qemu::headless("pc", &args.memory))
        .args(machine.firmware)
        .args(["-accel", if accel == Accel::Kvm { "kvm" } else { "tcg" }, "-snapshot"])
        .args(args.disk_bus.disk().args(machine.disk))
        .args(&args.qemu_args)
        .stdin(Stdio::inherit())
        .stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            unikernel_mkimage::print_error(
                "unikernel-mkimage",
                &format!("{} not found; install the Debian package {QEMU_PACKAGE}", qemu.display()),
            );
            return Ok(Outcome::NoQemu);
        }
        Err(e) => return Err(Failure(format!("cannot start {}: {e}", qemu.display()))),
    };
    let (tx, kvm_failure) = std::sync::mpsc::channel::<String>();
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            use std::io::{BufRead, Write};
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(std::io::stderr(), "{line}");
                if KVM_FAILURES.iter().any(|f| line.contains(f)) {
                    let _ = tx.send(line.trim().to_string());
                }
            }
        });
    }
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(Outcome::Exited(status)),
            Ok(None) => {}
            Err(e) => return Err(Failure(format!("cannot wait for QEMU: {e}"))),
        }
        let stop = |child: &mut std::process::Child| {
            let _ = child.kill();
            let _ = child.wait();
        };
        if let Some(signal) = unikernel_mkimage::interrupted() {
            stop(&mut child);
            std::process::exit(128 + signal);
        }
        if let Ok(reason) = kvm_failure.try_recv() {
            stop(&mut child);
            return Ok(Outcome::KvmFailed(reason));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stop(&mut child);
            return Ok(Outcome::TimedOut);
        }
        std::thread::sleep(POLL);
    }
}

/// QEMU's exit status as ours: its code, or 128 + the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code.clamp(0, 255) as u8),
        (None, Some(signal)) => ExitCode::from((128 + signal).clamp(0, 255) as u8),
        _ => ExitCode::FAILURE,
    }
}
