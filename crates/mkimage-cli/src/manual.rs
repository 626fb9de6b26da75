//! Manual pages: the tool's own (`unikernel-mkimage.1`), one per subcommand
//! (`unikernel-mkimage-build.1`...), and the drop-in's (`solo5-virtio-mkimage.1`), rendered by
//! `clap_mangen` from the same definitions that parse the command line.

use std::path::Path;

use unikernel_mkimage::{Failure, dropin};

/// Every page: its file name (without `.1`) and the command it documents.
pub(crate) fn pages(tool: &clap::Command) -> Vec<(String, clap::Command)> {
    let name = tool.get_name().to_string();
    let version = tool.get_version().map(str::to_owned).unwrap_or_default();
    let mut pages = vec![(name.clone(), tool.clone())];
    for sub in tool.get_subcommands().filter(|s| s.get_name() != "help") {
        let page = format!("{name}-{}", sub.get_name());
        let cmd =
            sub.clone().name(page.clone()).bin_name(format!("{name} {}", sub.get_name())).version(version.clone());
        pages.push((page, cmd));
        // Nested subcommands (`push gce`) have pages of their own too.
        for nested in sub.get_subcommands().filter(|s| s.get_name() != "help") {
            let page = format!("{name}-{}-{}", sub.get_name(), nested.get_name());
            let bin = format!("{name} {} {}", sub.get_name(), nested.get_name());
            pages.push((page.clone(), nested.clone().name(page).bin_name(bin).version(version.clone())));
        }
    }
    pages.push((dropin::PROGRAM.to_string(), dropin::manual_command()));
    pages
}

/// Prints the page of `subcommand` (or the tool's), or writes every page into `dir`.
pub(crate) fn manpage(tool: &clap::Command, subcommand: &Option<String>, dir: Option<&Path>) -> Result<(), Failure> {
    let pages = pages(tool);
    let Some(dir) = dir else {
        let wanted =
            subcommand.as_ref().map_or_else(|| tool.get_name().to_string(), |s| format!("{}-{s}", tool.get_name()));
        let (_, cmd) = pages
            .into_iter()
            .find(|(name, _)| *name == wanted)
            .ok_or_else(|| Failure(format!("no manual page {wanted}")))?;
        return clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .map_err(|e| Failure(format!("cannot write the manual page: {e}")));
    };
    for (name, cmd) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut out).map_err(|e| Failure(format!("cannot render {name}.1: {e}")))?;
        std::fs::write(&path, out).map_err(|e| Failure(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option and argument of every page's command appears in that page.
    #[test]
    fn every_option_is_documented() {
        let tool = crate::command();
        let pages = pages(&tool);
        assert!(pages.iter().any(|(n, _)| n == "unikernel-mkimage-build"));
        for (name, cmd) in pages {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd.clone()).render(&mut out).unwrap();
            let page = String::from_utf8(out).unwrap();
            assert!(page.contains(&format!(".TH {name}")), "{name}: no title");
            for arg in cmd.get_arguments().filter(|a| a.get_id() != "help" && a.get_id() != "version") {
                let shown = match (arg.get_long(), arg.get_short()) {
                    (Some(long), _) => format!("\\-\\-{}", long.replace('-', "\\-")),
                    (None, Some(short)) => format!("\\-{short}"),
                    (None, None) => arg.get_value_names().map(|v| v[0].to_string()).unwrap_or_default(),
                };
                assert!(page.contains(&shown), "{name}: {shown} is not in the page");
            }
        }
    }
}
