//! The benchmark: `unikernel-mkimage` against the SYSLINUX pipeline it replaces
//! (`tests/support/syslinux-mkimage.sh`, the same Debian programs `solo5-virtio-mkimage`
//! runs), measured side by side in one run, on three kernels (~225 KB, ~5 MiB, 64 MiB of random
//! bytes): build time (hyperfine medians), the limits (`gzip -6` of the kernel alone, GNU
//! `tar -Sczf` of a sparse 1 GiB file holding it), output size, peak memory
//! (`/usr/bin/time`), and boot time under QEMU (software emulation) from QEMU's start to the
//! fixture kernel's first line, under SeaBIOS against SYSLINUX and under OVMF (UEFI) against
//! GRUB's EFI build loading the same kernel with its `multiboot` command. Writes a Markdown
//! report (default `docs/BENCHMARKS.md`).
//!
//! ```text
//! cargo run --release -p mkimage-bench                     # everything, writes docs/BENCHMARKS.md
//! cargo run --release -p mkimage-bench -- --quick          # fewer runs, for a first look
//! ```
//!
//! Needs the Debian packages hyperfine, time, qemu-system-x86, ovmf, syslinux, syslinux-common,
//! grub-efi-amd64-bin, grub-common, mtools, dosfstools and fdisk.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use unikernel_mkimage::qemu::{self, Disk, Ovmf};

/// Size of the small kernel: Solo5's `test_hello.virtio`.
const SMALL_KERNEL: usize = 225_408;
/// Size of the medium kernel.
const MEDIUM_KERNEL: usize = 5 << 20;
/// Size of the large kernel.
const LARGE_KERNEL: usize = 64 << 20;
/// What a fixture prints first.
const FIRST_LINE: &str = ": started";
/// Longest a boot may take before it counts as failed.
const BOOT_DEADLINE: Duration = Duration::from_secs(120);

/// The programs the benchmark needs, and their Debian packages.
const TOOLS: &[(&str, &str)] = &[
    ("hyperfine", "hyperfine"),
    ("/usr/bin/time", "time"),
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("syslinux", "syslinux"),
    ("mcopy", "mtools"),
    ("mkdosfs", "dosfstools"),
    ("sfdisk", "fdisk"),
    ("gzip", "gzip"),
    ("tar", "tar"),
    ("grub-mkstandalone", "grub-common"),
    ("/usr/lib/grub/x86_64-efi/multiboot.mod", "grub-efi-amd64-bin"),
];

/// GRUB's configuration for the comparison: find the kernel's partition, load it with the
/// `multiboot` command and boot it. `efi_gop` is loaded because GRUB refuses a Multiboot 1
/// kernel without a video request otherwise ("no suitable video mode found").
const GRUB_CFG: &str = "\
set timeout=0
insmod part_msdos
insmod fat
insmod efi_gop
insmod multiboot
search --no-floppy --file --set=root /KERNEL
multiboot /KERNEL ARGS
boot
";
/// The GRUB modules built into the standalone EFI image.
const GRUB_MODULES: &str = "part_msdos part_gpt fat multiboot efi_gop search search_fs_file normal configfile";

struct Config {
    /// Runs of each fast command.
    runs: u32,
    /// Runs of each command of the old pipeline (seconds each).
    slow_runs: u32,
    /// Boots per cell.
    boot_runs: u32,
    output: PathBuf,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn find(program: &str) -> Option<PathBuf> {
    if program.starts_with('/') {
        return Path::new(program).is_file().then(|| PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// Median wall time of a shell command, in seconds, by hyperfine.
fn hyperfine(work: &Path, name: &str, command: &str, runs: u32) -> f64 {
    let json = work.join(format!("{name}.json"));
    let mut cmd = Command::new("hyperfine");
    // `sync` before each run (untimed) keeps the writeback of earlier runs out of the timing.
    cmd.args(["--style", "none", "--warmup", "1", "--prepare", "sync", "--runs", &runs.to_string(), "--export-json"])
        .arg(&json)
        .current_dir(work);
    cmd.arg(command);
    run(&mut cmd);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    v["results"][0]["median"].as_f64().unwrap()
}

/// Median peak resident memory, in KiB, of a shell command (3 runs).
fn peak_rss(work: &Path, command: &str) -> u64 {
    let mut values: Vec<u64> = (0..3)
        .map(|_| {
            let out = Command::new("/usr/bin/time")
                .args(["-f", "%M", "sh", "-c", command])
                .current_dir(work)
                .stdout(Stdio::null())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            err.lines().last().unwrap_or("0").trim().parse().unwrap_or(0)
        })
        .collect();
    values.sort_unstable();
    values[1]
}

/// Machine code of the size wanted: copies of this tool's binary, which compresses about as
/// well as a unikernel does.
fn code_bytes(len: usize, binary: &[u8]) -> Vec<u8> {
    binary.iter().copied().cycle().take(len).collect()
}

/// A kernel for the build benchmark, `len` bytes.
fn make_kernel(kind: &str, len: usize, binary: &[u8]) -> Vec<u8> {
    let header_len = mkimage_core::testkit::multiboot_kernel(&[]).len();
    let payload = match kind {
        "small" => {
            // The demo fixture (a Solo5-shaped ELF64), padded with code to Solo5's test_hello size.
            let mut k = std::fs::read(root().join("fixtures/hello.elf")).unwrap();
            let pad = code_bytes(len - k.len(), binary);
            k.extend_from_slice(&pad);
            return k;
        }
        "medium" => code_bytes(len - header_len, binary),
        _ => mkimage_core::testkit::random_bytes(len - header_len, 0x2545_f491),
    };
    mkimage_core::testkit::multiboot_kernel(&payload)
}

/// Time from QEMU's start to the first line containing [`FIRST_LINE`]; QEMU is stopped then.
fn boot_once(args: &[String]) -> Option<f64> {
    let start = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(FIRST_LINE) {
                let _ = tx.send(start.elapsed());
                return;
            }
        }
    });
    let found = rx.recv_timeout(BOOT_DEADLINE).ok();
    let _ = child.kill();
    let _ = child.wait();
    found.map(|d| d.as_secs_f64())
}

/// The failed checks (and the values they concern) a fixture prints when booted from `image`
/// under OVMF, once.
fn fixture_failures(ovmf: &Ovmf, work: &Path, image: &Path) -> Vec<String> {
    let vars = work.join("ovmf-vars-check.fd");
    std::fs::copy(&ovmf.vars, &vars).unwrap();
    let mut args = qemu::headless("pc", "256M");
    args.extend(["-no-reboot", "-device", qemu::DEBUG_EXIT_DEVICE].map(String::from));
    args.extend(ovmf.args(&vars));
    args.extend(disk_args(Disk::VirtioScsi4k, image));
    let mut child = Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let line = line.trim().to_string();
            let done = line == "PASS" || line == "FAIL";
            lines.push(line);
            if done {
                break;
            }
        }
        let _ = tx.send(lines);
    });
    let lines = rx.recv_timeout(BOOT_DEADLINE).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let value = |prefix: &str| lines.iter().find(|l| l.starts_with(prefix)).cloned();
    let mut failures: Vec<String> = lines.iter().filter_map(|l| l.strip_prefix("FAIL: ")).map(str::to_string).collect();
    if !failures.is_empty() {
        failures.extend(["boot device:", "boot loader:", "command line:"].iter().filter_map(|p| value(p)));
    }
    if lines.is_empty() {
        failures.push("the fixture printed nothing".into());
    }
    failures
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median boot time over `runs`, or `None` if a boot did not reach the first line.
fn boot(base: &[String], extra: &[String], runs: u32) -> Option<f64> {
    let args: Vec<String> = base.iter().chain(extra).cloned().collect();
    let times: Option<Vec<f64>> = (0..runs).map(|_| boot_once(&args)).collect();
    times.map(median)
}

/// QEMU arguments attaching `image` (never written) on `disk`.
fn disk_args(disk: Disk, image: &Path) -> Vec<String> {
    let mut args = disk.args(image);
    args.push("-snapshot".into());
    args
}

fn machine_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu =
        cpuinfo.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("?").trim();
    let cores = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 =
        mem.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0);
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string()))
        .unwrap_or_default();
    let first = |cmd: &mut Command| {
        cmd.output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let kernel = first(Command::new("uname").arg("-r"));
    let qemu = first(Command::new("qemu-system-x86_64").arg("--version"));
    let gzip = first(Command::new("gzip").arg("--version"));
    let tar = first(Command::new("tar").arg("--version"));
    let syslinux = first(Command::new("sh").args(["-c", "syslinux --version 2>&1"]));
    let grub = first(Command::new("grub-mkstandalone").arg("--version"));
    let ovmf = Ovmf::find().map_or("no OVMF".to_string(), |o| format!("OVMF {}", o.code.display()));
    format!(
        "- CPU: {cpu}, {cores} cores; {:.1} GiB RAM; {os}, Linux {kernel}\n- {qemu} (TCG, no KVM), SeaBIOS as shipped, \
         {ovmf}\n- {gzip}; {tar}; {syslinux}; {grub}\n",
        mem_kib as f64 / (1 << 20) as f64
    )
}

fn ms(s: f64) -> String {
    if s >= 1.0 { format!("{s:.2} s") } else { format!("{:.1} ms", s * 1e3) }
}

struct Target {
    what: String,
    measured: String,
    met: bool,
}

/// Everything a run of the benchmark shares: the configuration, the programs compared, the
/// working directory, and the report being written.
struct Bench {
    config: Config,
    /// This tool's release binary.
    tool: PathBuf,
    /// Its bytes (padding for the synthetic kernels).
    binary: Vec<u8>,
    /// The old pipeline's script.
    old: PathBuf,
    work: tempfile::TempDir,
    report: String,
    targets: Vec<Target>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let output = args
        .iter()
        .position(|a| a == "--output")
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| root().join("docs/BENCHMARKS.md"), PathBuf::from);
    let config = if quick {
        Config { runs: 5, slow_runs: 2, boot_runs: 2, output }
    } else {
        Config { runs: 20, slow_runs: 5, boot_runs: 9, output }
    };
    let missing: Vec<String> =
        TOOLS.iter().filter(|(p, _)| find(p).is_none()).map(|(p, pkg)| format!("{p} (Debian package {pkg})")).collect();
    if !missing.is_empty() {
        eprintln!("mkimage-bench: missing: {}", missing.join(", "));
        std::process::exit(1);
    }
    eprintln!("mkimage-bench: building unikernel-mkimage (release)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "unikernel-mkimage", "--bin", "unikernel-mkimage"])
        .current_dir(root()));
    let tool = root().join("target/release/unikernel-mkimage").canonicalize().unwrap();
    let mut bench = Bench {
        binary: std::fs::read(&tool).unwrap(),
        tool,
        old: root().join("tests/support/syslinux-mkimage.sh").canonicalize().unwrap(),
        work: tempfile::tempdir().unwrap(),
        report: String::new(),
        targets: Vec::new(),
        config,
    };
    bench.introduction();
    bench.boot_times();
    bench.uefi_boot_times();
    bench.builds();
    bench.finish();
}

impl Bench {
    fn introduction(&mut self) {
        let report = &mut self.report;
        let _ = writeln!(report, "# Benchmarks\n");
        let _ = writeln!(
            report,
            "Produced by `cargo run --release -p mkimage-bench` (crates/mkimage-bench). Everything below was measured \
             in one run on one machine, side by side; compare ratios, not absolute times. Build times are hyperfine \
             medians ({} runs; {} for the old pipeline); boot times are medians of {} boots.\n",
            self.config.runs, self.config.slow_runs, self.config.boot_runs
        );
        let _ = writeln!(report, "## Machine\n\n{}", machine_description());
        let _ = writeln!(
            report,
            "\"Old pipeline\" is `tests/support/syslinux-mkimage.sh`: the steps of `solo5-virtio-mkimage` with Debian's \
             sfdisk, mkdosfs, SYSLINUX (`mbr.bin`, `mboot.c32 -aout`), mtools, dd and GNU `tar -Sczf`.\n"
        );
    }

    /// Boot time: QEMU start to the fixture's first line, ours and SYSLINUX against `-kernel`.
    fn boot_times(&mut self) {
        let (w, tool, old) = (self.work.path(), &self.tool, &self.old);
        let (report, targets) = (&mut self.report, &mut self.targets);
        eprintln!("mkimage-bench: boot times");
        let _ = writeln!(report, "## Boot time (QEMU start to the fixture's first line, TCG)\n");
        let _ = writeln!(
            report,
            "Overhead is the time beyond QEMU `-kernel`, which hands the kernel over directly; the `-kernel` runs \
             have the same disk attached, so the firmware's set-up of that disk, paid by every boot from it, is not \
             counted as loader overhead. Boots are measured first, on a quiet machine.\n\n\
             | kernel | disk | `-kernel` | ours | SYSLINUX | our overhead | SYSLINUX overhead | ours / SYSLINUX overhead |\n|---|---|---|---|---|---|---|---|"
        );
        let mut base = qemu::headless("pc", "128");
        base.extend(["-no-reboot", "-device", qemu::DEBUG_EXIT_DEVICE].map(String::from));
        for (fixture, label) in [("hello.elf", "hello (7 KB)"), ("large.bin", "large (32 MiB)")] {
            let src = root().join("fixtures").join(fixture);
            let ours = w.join(format!("boot-ours-{fixture}.raw"));
            let old_image = w.join(format!("boot-old-{fixture}.raw"));
            run(Command::new(tool).args(["build", "-q", "--force"]).arg(&src).arg("-o").arg(&ours).args(["--", "x"]));
            run(Command::new("sh").arg(old).arg("raw").arg(&old_image).arg(&src).arg("x"));
            for disk in [Disk::Ide, Disk::VirtioScsi] {
                // The -kernel baseline has the same disk attached, so the firmware's set-up of the
                // disk, which every boot from it pays whatever the loader, is not counted as loader
                // overhead. The three kinds of boot alternate so that drift affects them alike.
                let mut direct_args = disk_args(disk, &ours);
                direct_args.extend(["-kernel".into(), src.display().to_string(), "-append".into(), "x".into()]);
                let (mut direct_t, mut ours_t, mut old_t) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..self.config.boot_runs {
                    direct_t.push(boot(&base, &direct_args, 1));
                    ours_t.push(boot(&base, &disk_args(disk, &ours), 1));
                    old_t.push(boot(&base, &disk_args(disk, &old_image), 1));
                }
                let all = |v: Vec<Option<f64>>| v.into_iter().collect::<Option<Vec<f64>>>().map(median);
                let (direct, ours_t, old_t) = (all(direct_t), all(ours_t), all(old_t));
                let (Some(d), Some(o), Some(s)) = (direct, ours_t, old_t) else {
                    let _ = writeln!(report, "| {label} | {disk} | did not boot | | | | | |");
                    continue;
                };
                let ratio = (o - d) / (s - d);
                let _ = writeln!(
                    report,
                    "| {label} | {disk} | {} | {} | {} | {} | {} | {:.0}% |",
                    ms(d),
                    ms(o),
                    ms(s),
                    ms(o - d),
                    ms(s - d),
                    ratio * 100.0
                );
                targets.push(Target {
                    what: format!("boot overhead, {label} over {disk}: at most 25% of SYSLINUX's"),
                    measured: format!("{:.0}%", ratio * 100.0),
                    met: ratio <= 0.25,
                });
            }
        }
    }

    /// Boot time under OVMF: our UEFI loader against GRUB's EFI build, from the same disk (our
    /// hybrid image with `\EFI\BOOT\BOOTX64.EFI` replaced by GRUB's), and what the fixture
    /// reports about GRUB's hand-over.
    fn uefi_boot_times(&mut self) {
        let (w, tool) = (self.work.path(), &self.tool);
        let (report, targets) = (&mut self.report, &mut self.targets);
        eprintln!("mkimage-bench: UEFI boot times");
        let ovmf = Ovmf::find().expect("OVMF (Debian package ovmf)");
        let _ = writeln!(report, "\n## Boot time under UEFI (OVMF; QEMU start to the fixture's first line, TCG)\n");
        let _ = writeln!(
            report,
            "Both from the same disk: our hybrid image, and a copy whose `\\EFI\\BOOT\\BOOTX64.EFI` is GRUB's \
             (`grub-mkstandalone -O x86_64-efi` with the `multiboot` command, `efi_gop` loaded, a `grub.cfg` that \
             finds the kernel's partition and boots it with the same arguments). Most of the time is the \
             firmware's own start-up, which both pay. Virtio-scsi disk with 4096-byte physical sectors, 256 MiB.\n\n\
             | kernel | machine | ours | GRUB | ours / GRUB |\n|---|---|---|---|---|"
        );
        let mut grub_findings = Vec::new();
        for (fixture, label) in [("hello.elf", "hello (7 KB)"), ("multiseg32.elf", "multiseg32 (16 MiB segment)")] {
            let src = root().join("fixtures").join(fixture);
            let ours = w.join(format!("uefi-ours-{fixture}.raw"));
            let grub = w.join(format!("uefi-grub-{fixture}.raw"));
            run(Command::new(tool).args(["build", "-q", "--force"]).arg(&src).arg("-o").arg(&ours).args(["--", "x"]));
            std::fs::copy(&ours, &grub).unwrap();
            let cfg = w.join("grub.cfg");
            std::fs::write(&cfg, GRUB_CFG.replace("KERNEL", fixture).replace("ARGS", "x")).unwrap();
            let efi = w.join("grubx64.efi");
            run(Command::new("grub-mkstandalone")
                .args(["-O", "x86_64-efi", "-o"])
                .arg(&efi)
                .arg(format!("--modules={GRUB_MODULES}"))
                .arg(format!("boot/grub/grub.cfg={}", cfg.display())));
            let partition = format!("{}@@{}", grub.display(), mkimage_core::layout::FAT_PARTITION_LBA * 512);
            run(Command::new("mcopy").args(["-o", "-i", &partition]).arg(&efi).arg("::/EFI/BOOT/BOOTX64.EFI"));
            for machine in ["pc", "q35"] {
                let mut base = qemu::headless(machine, "256M");
                base.extend(["-no-reboot", "-device", qemu::DEBUG_EXIT_DEVICE].map(String::from));
                let (mut ours_t, mut grub_t) = (Vec::new(), Vec::new());
                for _ in 0..self.config.boot_runs {
                    for (image, times) in [(&ours, &mut ours_t), (&grub, &mut grub_t)] {
                        let vars = w.join("ovmf-vars.fd");
                        std::fs::copy(&ovmf.vars, &vars).unwrap();
                        let mut args = ovmf.args(&vars);
                        args.extend(disk_args(Disk::VirtioScsi4k, image));
                        times.push(boot(&base, &args, 1));
                    }
                }
                let all = |v: Vec<Option<f64>>| v.into_iter().collect::<Option<Vec<f64>>>().map(median);
                match (all(ours_t), all(grub_t)) {
                    (Some(o), Some(g)) => {
                        let _ = writeln!(report, "| {label} | {machine} | {} | {} | {:.2} |", ms(o), ms(g), o / g);
                        targets.push(Target {
                            what: format!("UEFI boot, {label} on {machine}: not slower than GRUB's EFI build"),
                            measured: format!("{:.2}x GRUB's time", o / g),
                            met: o <= g,
                        });
                    }
                    (o, g) => {
                        let shown = |t: Option<f64>| t.map_or("did not boot".to_string(), ms);
                        let _ = writeln!(report, "| {label} | {machine} | {} | {} | |", shown(o), shown(g));
                    }
                }
            }
            grub_findings.push((label, fixture_failures(&ovmf, w, &grub)));
        }
        let _ = writeln!(
            report,
            "\nWhat the fixtures report when GRUB hands them over (their checks of the Multiboot contract):\n"
        );
        for (label, failures) in grub_findings {
            let shown = if failures.is_empty() { "every check holds".to_string() } else { failures.join("; ") };
            let _ = writeln!(report, "- {label}: {shown}");
        }
    }

    /// Build time, output size and peak memory for each kernel.
    fn builds(&mut self) {
        let (w, tool, old, binary) = (self.work.path(), &self.tool, &self.old, &self.binary);
        let (report, targets, config) = (&mut self.report, &mut self.targets, &self.config);
        let _ = writeln!(report, "\n## Build time\n");
        let _ = writeln!(
            report,
            "| kernel | old raw | ours raw | old GCE | ours GCE | speed-up (GCE) | `gzip -6` kernel | `tar -Sczf` sparse 1 GiB | ours GCE / tar | ours GCE / gzip |"
        );
        let _ = writeln!(report, "|---|---|---|---|---|---|---|---|---|---|");
        let mut sizes = String::new();
        let mut memory = String::new();
        for (kind, len) in [("small", SMALL_KERNEL), ("medium", MEDIUM_KERNEL), ("large", LARGE_KERNEL)] {
            eprintln!("mkimage-bench: {kind} kernel ({len} bytes)");
            let kernel = w.join(format!("{kind}.bin"));
            std::fs::write(&kernel, make_kernel(kind, len, binary)).unwrap();
            let k = sh_quote(&kernel);
            let t = sh_quote(tool);
            let o = sh_quote(old);
            // The limit: a sparse 1 GiB file holding the kernel where an image would, tarred.
            let sparse_dir = w.join(format!("{kind}-sparse"));
            std::fs::create_dir_all(&sparse_dir).unwrap();
            {
                use std::io::{Seek, SeekFrom, Write};
                let mut f = std::fs::File::create(sparse_dir.join("disk.raw")).unwrap();
                f.set_len(1 << 30).unwrap();
                f.seek(SeekFrom::Start(4 << 20)).unwrap();
                f.write_all(&std::fs::read(&kernel).unwrap()).unwrap();
            }
            let old_raw =
                hyperfine(w, &format!("{kind}-old-raw"), &format!("sh {o} raw old.raw {k}"), config.slow_runs);
            let old_tar =
                hyperfine(w, &format!("{kind}-old-tar"), &format!("sh {o} tar old.tar.gz {k}"), config.slow_runs);
            let ours_raw = hyperfine(
                w,
                &format!("{kind}-ours-raw"),
                &format!("{t} build -q --force {k} -o ours.raw"),
                config.runs,
            );
            let ours_gce = hyperfine(
                w,
                &format!("{kind}-ours-gce"),
                &format!("{t} build -q --force {k} -o ours.tar.gz"),
                config.runs,
            );
            let gzip = hyperfine(w, &format!("{kind}-gzip"), &format!("gzip -6 -c {k} > kernel.gz"), config.runs);
            let tar = hyperfine(
                w,
                &format!("{kind}-tar"),
                &format!("tar -C {} -Sczf sparse.tar.gz disk.raw", sh_quote(&sparse_dir)),
                config.runs,
            );
            let _ = writeln!(
                report,
                "| {kind} ({len} B) | {} | {} | {} | {} | {:.0}x | {} | {} | {:.2} | {:.2} |",
                ms(old_raw),
                ms(ours_raw),
                ms(old_tar),
                ms(ours_gce),
                old_tar / ours_gce,
                ms(gzip),
                ms(tar),
                ours_gce / tar,
                ours_gce / gzip
            );
            if kind == "small" {
                targets.push(Target {
                    what: "GCE build of the ~225 KB kernel at least 100x faster than the old pipeline".into(),
                    measured: format!("{:.0}x", old_tar / ours_gce),
                    met: old_tar / ours_gce >= 100.0,
                });
                targets.push(Target {
                    what: "GCE build of the ~225 KB kernel within 1.5x `tar -Sczf` of the sparse file".into(),
                    measured: format!("{:.2}x", ours_gce / tar),
                    met: ours_gce / tar <= 1.5,
                });
            }
            if kind == "large" {
                targets.push(Target {
                    what: "GCE build of the 64 MiB kernel within 1.2x `gzip -6` of the kernel alone".into(),
                    measured: format!("{:.2}x", ours_gce / gzip),
                    met: ours_gce / gzip <= 1.2,
                });
            }
            let size = |p: &str| std::fs::metadata(w.join(p)).map(|m| m.len()).unwrap_or(0);
            let (ours_size, old_size, gzip_size) = (size("ours.tar.gz"), size("old.tar.gz"), size("kernel.gz"));
            let _ = writeln!(
                sizes,
                "| {kind} | {ours_size} | {old_size} | {gzip_size} | {:+} |",
                ours_size as i64 - gzip_size as i64
            );
            targets.push(Target {
                what: format!("{kind} kernel: tarball within `gzip -6` of the kernel + 8 KiB"),
                measured: format!("{:+} bytes", ours_size as i64 - gzip_size as i64),
                met: ours_size <= gzip_size + 8192,
            });
            let rss_raw = peak_rss(w, &format!("{t} build -q --force {k} -o ours.raw"));
            let rss_gce = peak_rss(w, &format!("{t} build -q --force {k} -o ours.tar.gz"));
            let rss_old = peak_rss(w, &format!("sh {o} tar old.tar.gz {k}"));
            let limit_kib = (len as u64 + (16 << 20)) / 1024;
            let _ = writeln!(memory, "| {kind} | {} | {rss_raw} | {rss_gce} | {rss_old} | {limit_kib} |", len / 1024);
            targets.push(Target {
                what: format!("{kind} kernel: peak RSS within kernel size + 16 MiB"),
                measured: format!("{} KiB (limit {limit_kib} KiB)", rss_raw.max(rss_gce)),
                met: rss_raw.max(rss_gce) <= limit_kib,
            });
        }
        let _ = writeln!(report, "\n## Output size (GCE tarball, bytes)\n");
        let _ = writeln!(
            report,
            "| kernel | ours | old pipeline | `gzip -6` of the kernel | ours - gzip |\n|---|---|---|---|---|"
        );
        report.push_str(&sizes);
        let _ = writeln!(report, "\n## Peak memory (KiB, `/usr/bin/time -f %M`)\n");
        let _ = writeln!(
            report,
            "| kernel | kernel size | ours raw | ours GCE | old pipeline (GCE) | limit: kernel + 16 MiB |\n|---|---|---|---|---|---|"
        );
        report.push_str(&memory);
    }

    /// The targets table; writes the report.
    fn finish(&mut self) {
        let _ = writeln!(self.report, "\n## Targets\n\n| target | measured | met |\n|---|---|---|");
        for t in &self.targets {
            let _ = writeln!(self.report, "| {} | {} | {} |", t.what, t.measured, if t.met { "yes" } else { "**no**" });
        }
        std::fs::write(&self.config.output, &self.report).unwrap();
        print!("{}", self.report);
        eprintln!("mkimage-bench: wrote {}", self.config.output.display());
    }
}
