//! The drop-in `solo5-virtio-mkimage`: its usage text, its command line, and its manual page.
//!
//! Solo5's script parsed its options with GNU `getopt df: $*`, so the command line is read the
//! way GNU getopt reads it: options may stand anywhere (before, between or after IMAGE and
//! UNIKERNEL) until `--`, after which everything is an operand; `-f` takes the rest of its
//! cluster or the next argument as its value; an unknown option, a long option or a missing
//! value is a usage error. With `POSIXLY_CORRECT` set, as with getopt, options end at the first
//! operand. Unlike the script, arguments are kept as given (the script's unquoted `$*` split
//! them on spaces and dropped empty ones).

use std::ffi::OsString;
use std::path::PathBuf;

use crate::Format;

/// The program's name.
pub const PROGRAM: &str = "solo5-virtio-mkimage";

/// The usage text printed on a usage error.
pub const USAGE: &str = "\
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
pub struct Request {
    /// `-d` was given (accepted and ignored).
    pub docker: bool,
    /// `-f raw` or `-f tar`.
    pub format: Format,
    /// IMAGE.
    pub image: PathBuf,
    /// UNIKERNEL.
    pub kernel: PathBuf,
    /// ARGUMENTS.
    pub args: Vec<String>,
}

/// Parses the command line (without the program name) as `getopt df:` and the script's loop
/// do. `None` on a usage error. `posixly_correct` is whether `POSIXLY_CORRECT` is set.
pub fn parse(args: &[OsString], posixly_correct: bool) -> Option<Request> {
    let mut docker = false;
    let mut format = Format::Raw;
    let mut operands: Vec<&OsString> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let bytes = arg.as_encoded_bytes();
        if bytes == b"--" {
            operands.extend(&args[i..]);
            break;
        }
        if bytes.len() < 2 || bytes[0] != b'-' {
            operands.push(arg);
            if posixly_correct {
                operands.extend(&args[i..]);
                break;
            }
            continue;
        }
        // A cluster of short options: "-d", "-ftar", "-df", "-dftar"...
        let cluster = arg.to_str()?;
        for (at, c) in cluster.char_indices().skip(1) {
            match c {
                'd' => docker = true,
                'f' => {
                    let rest = &cluster[at + 1..];
                    let value = if rest.is_empty() {
                        i += 1;
                        args.get(i - 1)?.to_str()?
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
                // Any other letter, and "--long" options (none are defined).
                _ => return None,
            }
        }
    }
    let [image, kernel, rest @ ..] = &operands[..] else { return None };
    let args = rest.iter().map(|a| a.to_str().map(str::to_owned)).collect::<Option<Vec<_>>>()?;
    Some(Request { docker, format, image: PathBuf::from(image), kernel: PathBuf::from(kernel), args })
}

/// A description of the command line for its manual page (the parsing is [`parse`]'s).
pub fn manual_command() -> clap::Command {
    use clap::{Arg, ArgAction};
    clap::Command::new(PROGRAM)
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_flag(true)
        .disable_version_flag(true)
        .about("Write a bootable disk image of a Solo5 unikernel (drop-in for Solo5's script)")
        .long_about(
            "Writes a bootable, MBR-partitioned 1 GiB disk IMAGE holding UNIKERNEL (a Solo5 'virtio' unikernel \
             or any Multiboot kernel) as unikernel.bin, so the kernel sees the command line 'unikernel.bin \
             ARGUMENTS'. An existing IMAGE file is replaced; a device or FIFO is written into. Options may stand \
             anywhere before '--', as GNU getopt reads them. This is unikernel-mkimage's drop-in replacement for \
             solo5-virtio-mkimage: no sfdisk, mtools, SYSLINUX or Docker, and reproducible output \
             (SOURCE_DATE_EPOCH sets the timestamp).",
        )
        .after_help(
            "Exit status: 0 on success; 1 on a usage error (the usage is printed) or when the build fails (one \
             line, solo5-virtio-mkimage: error: ...).",
        )
        .arg(
            Arg::new("docker")
                .short('d')
                .action(ArgAction::SetTrue)
                .help("Accepted and ignored: no container is needed"),
        )
        .arg(
            Arg::new("format")
                .short('f')
                .value_name("FORMAT")
                .value_parser(["raw", "tar"])
                .help("raw: a raw disk image (default); tar: the .tar.gz Google Compute Engine imports"),
        )
        .arg(Arg::new("image").value_name("IMAGE").required(true).help("The image to write"))
        .arg(Arg::new("unikernel").value_name("UNIKERNEL").required(true).help("The unikernel to boot"))
        .arg(
            Arg::new("arguments")
                .value_name("ARGUMENTS")
                .num_args(0..)
                .trailing_var_arg(true)
                .help("Arguments passed to the unikernel when it boots"),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Option<Request> {
        parse(&args.iter().map(OsString::from).collect::<Vec<_>>(), false)
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
        assert_eq!(p(&["-f", "tar", "out", "k", "x=1"]), Some(req(Format::Gce, false, &["x=1"])));
        assert_eq!(p(&["out", "k"]), Some(req(Format::Raw, false, &[])));
        assert_eq!(p(&["-ftar", "out", "k"]), Some(req(Format::Gce, false, &[])));
        assert_eq!(p(&["-dftar", "out", "k"]), Some(req(Format::Gce, true, &[])));
        assert_eq!(p(&["--", "out", "k", "--", "x"]), Some(req(Format::Raw, false, &["--", "x"])));
    }

    #[test]
    fn options_stand_anywhere_before_the_double_dash() {
        assert_eq!(p(&["out", "k", "-f", "tar"]), Some(req(Format::Gce, false, &[])));
        assert_eq!(p(&["out", "-d", "k", "a", "-ftar", "b"]), Some(req(Format::Gce, true, &["a", "b"])));
        assert_eq!(p(&["out", "k", "a", "--", "-f", "tar"]), Some(req(Format::Raw, false, &["a", "-f", "tar"])));
        // -f takes the next argument whatever it looks like.
        assert_eq!(p(&["-f", "raw", "-f", "tar", "out", "k"]), Some(req(Format::Gce, false, &[])));
        // A lone "-" is an operand.
        assert_eq!(p(&["out", "k", "-"]), Some(req(Format::Raw, false, &["-"])));
        // With POSIXLY_CORRECT, options end at the first operand.
        let posix = parse(&["out", "k", "-f", "tar"].map(OsString::from), true);
        assert_eq!(posix, Some(req(Format::Raw, false, &["-f", "tar"])));
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
            &["out", "k", "-f"],
            &["out", "k", "--ipv4=10.0.0.2/24"],
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }
}
