//! Running a disk image (or a kernel) in QEMU under software emulation, with the serial console
//! captured, a hard deadline, and an early stop once an expected line has appeared.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use unikernel_mkimage::qemu::DEBUG_EXIT_DEVICE;
/// QEMU's exit status when a fixture reports success (0x10 << 1 | 1).
pub const EXIT_PASS: i32 = 33;
/// QEMU's exit status when a fixture reports a failure (0x11 << 1 | 1).
pub const EXIT_FAIL: i32 = 35;

#[allow(unused_imports)]
pub use unikernel_mkimage::qemu::Disk;

/// The common QEMU arguments: machine, memory, serial console on stdout, nothing else that
/// could slow the boot, the debug-exit device, and no writes to the image.
pub fn base_args(machine: &str, memory: &str) -> Vec<String> {
    let mut args = unikernel_mkimage::qemu::headless(machine, memory);
    args.extend(["-accel", "tcg", "-no-reboot", "-snapshot", "-device", DEBUG_EXIT_DEVICE].map(String::from));
    args
}

/// What a QEMU run produced.
#[derive(Debug)]
pub struct Run {
    /// Exit status, or `None` when QEMU was stopped (deadline or early stop).
    pub status: Option<i32>,
    /// Everything the guest printed on COM1.
    pub serial: String,
    /// QEMU's own error output.
    pub stderr: String,
    /// Whether the deadline expired.
    pub timed_out: bool,
    /// When each serial line arrived, from the start of QEMU.
    pub line_times: Vec<(Duration, String)>,
    /// The command line, for failure reports.
    pub command: String,
}

impl Run {
    /// Time from QEMU's start to the first line containing `needle`.
    pub fn time_to(&self, needle: &str) -> Option<Duration> {
        self.line_times.iter().find(|(_, l)| l.contains(needle)).map(|(t, _)| *t)
    }

    /// A report for assertion messages: command, status and the whole serial log.
    pub fn report(&self) -> String {
        format!(
            "command: {}\nstatus: {:?}{}\n--- serial log ---\n{}--- qemu stderr ---\n{}",
            self.command,
            self.status,
            if self.timed_out { " (timed out)" } else { "" },
            self.serial,
            self.stderr
        )
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `qemu` with `args` until it exits, `deadline` passes, or (if given) a serial line
/// containing `stop_at` has been seen (QEMU is then stopped after a short grace period, which
/// is how tests of boot failures, which halt the machine, end).
pub fn run(qemu: &Path, args: &[String], deadline: Duration, stop_at: Option<&str>) -> Run {
    let command = format!("{} {}", qemu.display(), args.join(" "));
    let start = Instant::now();
    let mut child = Command::new(qemu)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<(Duration, String)>();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut buf = Vec::new();
        while lines.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
            let text = String::from_utf8_lossy(&buf).replace('\r', "");
            if tx.send((start.elapsed(), text)).is_err() {
                break;
            }
            buf.clear();
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut line_times = Vec::new();
    let mut timed_out = false;
    let mut killed = false;
    let mut stop_deadline: Option<Instant> = None;
    let hard_deadline = start + deadline;
    loop {
        let now = Instant::now();
        let until = stop_deadline.map_or(hard_deadline, |d| d.min(hard_deadline));
        if now >= until {
            timed_out = now >= hard_deadline;
            kill(&mut child);
            killed = true;
            break;
        }
        match rx.recv_timeout(until - now) {
            Ok((t, line)) => {
                if stop_deadline.is_none() && stop_at.is_some_and(|s| line.contains(s)) {
                    stop_deadline = Some(Instant::now() + Duration::from_millis(300));
                }
                line_times.push((t, line));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait().ok().and_then(|s| s.code());
    let _ = reader.join();
    while let Ok(item) = rx.try_recv() {
        line_times.push(item);
    }
    let stderr = err_reader.join().unwrap_or_default();
    let serial = line_times.iter().map(|(_, l)| l.as_str()).collect();
    Run { status: if killed { None } else { status }, serial, stderr, timed_out, line_times, command }
}

/// Finds QEMU (see [`super::tool`]).
pub fn qemu(test: &str) -> Option<PathBuf> {
    super::tool(test, "qemu-system-x86_64", "qemu-system-x86")
}

#[allow(unused_imports)]
pub use unikernel_mkimage::qemu::Ovmf;

/// Finds OVMF where distributions install it, reporting it missing the way [`super::tool`]
/// reports a missing program (a SKIPPED line, or a failure under MKIMAGE_REQUIRE_TOOLS=1).
pub fn ovmf(test: &str) -> Option<Ovmf> {
    let found = Ovmf::find();
    if found.is_none() {
        if super::tools_required() {
            panic!("{test}: required UEFI firmware (OVMF) not found (install the Debian package `ovmf`)");
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {test}: OVMF not found (install the Debian package `ovmf`; set MKIMAGE_REQUIRE_TOOLS=1 to make this a failure)"
        );
    }
    found
}

/// The arguments of [`base_args`] booting from `ovmf`, with a fresh copy of its variable store
/// in `dir` (the system's copy is never written).
pub fn uefi_args(machine: &str, memory: &str, ovmf: &Ovmf, dir: &Path) -> Vec<String> {
    let vars = tempfile::Builder::new().prefix("ovmf-vars-").suffix(".fd").tempfile_in(dir).unwrap();
    std::fs::copy(&ovmf.vars, vars.path()).unwrap();
    let (_, path) = vars.keep().unwrap();
    let mut args = base_args(machine, memory);
    args.extend(ovmf.args(&path));
    args
}
