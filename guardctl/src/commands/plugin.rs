//! `guardctl plugin check --slurm-version VERSION PLUGIN`.
//!
//! Checks a built `spank_guard.so` before any Slurm process loads it, on a
//! node where Slurm may not even run: the ELF file must export exactly the
//! symbols Slurm's plugin loader looks up, and its `plugin_version` must
//! have the major and minor version of the Slurm that will load it. A
//! `required` plugin that Slurm refuses to load fails every job step, so the
//! Ansible role runs this check before the plugstack drop-in references the
//! file.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use object::{Object, ObjectSection, ObjectSymbol};

use crate::failure::{Failure, Status};
use crate::output::print;

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Check a SPANK plugin file without loading it or running Slurm.
    ///
    /// The plugin must be an ELF shared object that exports exactly
    /// plugin_name, plugin_type (equal to "spank"), plugin_version and
    /// slurm_spank_* callbacks, and nothing else: an exported init or fini
    /// is called by Slurm on load and unload, and an exported global such as
    /// opt binds to srun's own. plugin_version must have the major and minor
    /// version of --slurm-version, as Slurm's loader requires. Exits 0 and
    /// prints a one-line summary, or exits 1 and prints every problem.
    Check(PluginCheckArgs),
}

#[derive(Debug, Args)]
pub struct PluginCheckArgs {
    /// Version of the Slurm that will load the plugin, for example 22.05.8.
    /// The output of `srun --version` (slurm 22.05.8) is accepted as it is.
    #[arg(long = "slurm-version", value_name = "VERSION", value_parser = parse_slurm_version)]
    pub slurm_version: SlurmVersion,

    /// Plugin file, for example target/release/libspank_guard.so.
    #[arg(value_name = "PLUGIN")]
    pub plugin: PathBuf,
}

/// A Slurm release as `major.minor.micro`, the three bytes of
/// `SLURM_VERSION_NUMBER` (`0x160508` is 22.05.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlurmVersion {
    pub major: u32,
    pub minor: u32,
    pub micro: u32,
}

impl SlurmVersion {
    /// Splits a `SLURM_VERSION_NUMBER` value into its parts.
    pub fn from_number(number: u32) -> SlurmVersion {
        SlurmVersion { major: (number >> 16) & 0xff, minor: (number >> 8) & 0xff, micro: number & 0xff }
    }
}

impl std::fmt::Display for SlurmVersion {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}.{:02}.{}", self.major, self.minor, self.micro)
    }
}

/// Parses `22.05.8`, `22.05`, or the output of `srun --version`
/// (`slurm 22.05.8` upstream, `slurm-wlm 22.05.8` on Debian). Micro versions
/// with a suffix such as `8-1` keep only the number.
pub fn parse_slurm_version(text: &str) -> Result<SlurmVersion, String> {
    let trimmed = text.trim();
    let bare = ["slurm ", "slurm-wlm "]
        .iter()
        .find_map(|prefix| trimmed.strip_prefix(prefix))
        .unwrap_or(trimmed)
        .trim();
    let invalid = || format!("invalid Slurm version `{text}`: expected MAJOR.MINOR[.MICRO], for example 22.05.8");

    let mut parts = bare.split('.');
    let major = parts.next().and_then(|part| part.parse::<u32>().ok()).ok_or_else(invalid)?;
    let minor = parts.next().and_then(|part| part.parse::<u32>().ok()).ok_or_else(invalid)?;
    let micro = match parts.next() {
        None => 0,
        Some(part) => {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().map_err(|_| invalid())?
        }
    };
    if parts.next().is_some() || major > 0xff || minor > 0xff || micro > 0xff {
        return Err(invalid());
    }
    Ok(SlurmVersion { major, minor, micro })
}

/// Runs `guardctl plugin ...`.
pub fn run(command: &PluginCommand) -> Result<Status, Failure> {
    match command {
        PluginCommand::Check(arguments) => check(arguments),
    }
}

fn check(arguments: &PluginCheckArgs) -> Result<Status, Failure> {
    let path = &arguments.plugin;
    let data = std::fs::read(path)
        .map_err(|error| Failure::new(format!("{}: cannot read plugin: {error}", path.display())))?;

    let report = inspect(&data, arguments.slurm_version)
        .map_err(|problem| Failure::new(format!("{}: {problem}", path.display())))?;

    if report.problems.is_empty() {
        print(&format!("{}: {}\n", path.display(), report.summary(arguments.slurm_version)))?;
        return Ok(Status::Success);
    }

    let mut message = format!("{}: Slurm {} cannot load this plugin:", path.display(), arguments.slurm_version);
    for problem in &report.problems {
        let _ = write!(message, "\n  {problem}");
    }
    Err(Failure::new(message))
}

/// What the ELF file exports, and every reason Slurm would refuse it.
#[derive(Debug, Default)]
pub struct Inspection {
    pub plugin_name: Option<String>,
    pub plugin_version: Option<SlurmVersion>,
    pub callbacks: Vec<String>,
    pub problems: Vec<String>,
}

impl Inspection {
    fn summary(&self, slurm: SlurmVersion) -> String {
        let name = self.plugin_name.as_deref().unwrap_or_default();
        let built_for = self.plugin_version.map(|version| version.to_string()).unwrap_or_default();
        format!(
            "loadable by Slurm {slurm}: plugin {name}, built for Slurm {built_for}, exports plugin_name, \
             plugin_type, plugin_version and {} callbacks ({})",
            self.callbacks.len(),
            self.callbacks.join(", ")
        )
    }
}

/// Names Slurm calls on load and unload, or globals of srun and slurmstepd
/// that an exported plugin symbol would replace.
const FORBIDDEN_SYMBOLS: [&str; 3] = ["init", "fini", "opt"];

/// Reads the dynamic symbol table of `data` and checks it against what
/// Slurm's plugin loader expects. Returns an error only when `data` is not
/// an ELF shared object at all.
pub fn inspect(data: &[u8], slurm: SlurmVersion) -> Result<Inspection, String> {
    let file = object::File::parse(data).map_err(|error| format!("not an ELF shared object: {error}"))?;
    if file.format() != object::BinaryFormat::Elf || file.kind() != object::ObjectKind::Dynamic {
        return Err(format!(
            "not an ELF shared object: the file is a {:?} {:?} file; build the plugin as a cdylib",
            file.format(),
            file.kind()
        ));
    }

    let mut inspection = Inspection::default();
    let mut exported: Vec<String> = Vec::new();
    for symbol in file.dynamic_symbols() {
        if symbol.is_undefined() || !symbol.is_global() {
            continue;
        }
        let Ok(name) = symbol.name() else { continue };
        // Version-definition symbols (ABS, no section) are not exports.
        if name.is_empty() || symbol.section_index().is_none() {
            continue;
        }
        exported.push(name.to_owned());

        match name {
            "plugin_name" => inspection.plugin_name = read_c_string(&file, &symbol),
            "plugin_type" => match read_c_string(&file, &symbol) {
                Some(kind) if kind == "spank" => {}
                Some(kind) => inspection.problems.push(format!(
                    "plugin_type is `{kind}`, expected `spank`: plugstack.conf loads only SPANK plugins"
                )),
                None => inspection.problems.push("plugin_type cannot be read as a NUL-terminated string".to_owned()),
            },
            "plugin_version" => match read_u32(&file, &symbol) {
                Some(number) => inspection.plugin_version = Some(SlurmVersion::from_number(number)),
                None => inspection.problems.push("plugin_version cannot be read as a 4-byte number".to_owned()),
            },
            callback if callback.starts_with("slurm_spank_") => inspection.callbacks.push(callback.to_owned()),
            forbidden if FORBIDDEN_SYMBOLS.contains(&forbidden) => inspection.problems.push(format!(
                "exports `{forbidden}`: Slurm calls init and fini of every plugin it loads, and a global \
                 named opt replaces srun's own; keep it out of the exported symbols"
            )),
            other => inspection.problems.push(format!(
                "exports `{other}`: only plugin_name, plugin_type, plugin_version and slurm_spank_* may be \
                 exported, because any other global can bind to a symbol of srun or slurmstepd"
            )),
        }
    }
    inspection.callbacks.sort();

    for required in ["plugin_name", "plugin_type", "plugin_version"] {
        if !exported.iter().any(|name| name == required) {
            inspection.problems.push(format!("does not export `{required}`, which Slurm's plugin loader requires"));
        }
    }
    if inspection.callbacks.is_empty() {
        inspection.problems.push("exports no slurm_spank_* callback".to_owned());
    }
    if let Some(built) = inspection.plugin_version {
        if (built.major, built.minor) != (slurm.major, slurm.minor) {
            inspection.problems.push(format!(
                "plugin_version is {built} but Slurm {slurm} loads only plugins built for {}.{:02}: \
                 rebuild the plugin against the slurm/spank.h of Slurm {slurm}",
                slurm.major, slurm.minor
            ));
        }
    }
    Ok(inspection)
}

/// Returns the bytes a defined data symbol points at, or `None` when its
/// section has no file data (for example `.bss`).
fn symbol_bytes<'data>(file: &object::File<'data>, symbol: &object::Symbol<'data, '_>, size: u64) -> Option<&'data [u8]> {
    let section = file.section_by_index(symbol.section_index()?).ok()?;
    section.data_range(symbol.address(), size).ok().flatten()
}

fn read_u32(file: &object::File<'_>, symbol: &object::Symbol<'_, '_>) -> Option<u32> {
    let bytes: [u8; 4] = symbol_bytes(file, symbol, 4)?.try_into().ok()?;
    Some(if file.is_little_endian() { u32::from_le_bytes(bytes) } else { u32::from_be_bytes(bytes) })
}

fn read_c_string(file: &object::File<'_>, symbol: &object::Symbol<'_, '_>) -> Option<String> {
    let bytes = symbol_bytes(file, symbol, symbol.size())?;
    let end = bytes.iter().position(|&byte| byte == 0)?;
    String::from_utf8(bytes.get(..end)?.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parses_srun_output() {
        assert_eq!(parse_slurm_version("slurm 22.05.8"), Ok(SlurmVersion { major: 22, minor: 5, micro: 8 }));
        assert_eq!(parse_slurm_version("slurm-wlm 22.05.8\n"), Ok(SlurmVersion { major: 22, minor: 5, micro: 8 }));
        assert_eq!(parse_slurm_version("23.11"), Ok(SlurmVersion { major: 23, minor: 11, micro: 0 }));
        assert_eq!(parse_slurm_version("22.05.8-1"), Ok(SlurmVersion { major: 22, minor: 5, micro: 8 }));
    }

    #[test]
    fn version_rejects_malformed_text() {
        assert_eq!(
            parse_slurm_version("22"),
            Err("invalid Slurm version `22`: expected MAJOR.MINOR[.MICRO], for example 22.05.8".to_owned())
        );
        assert!(parse_slurm_version("22.x.1").is_err());
        assert!(parse_slurm_version("22.05.8.1").is_err());
        assert!(parse_slurm_version("300.05.1").is_err());
    }

    #[test]
    fn version_number_splits_into_bytes() {
        assert_eq!(SlurmVersion::from_number(0x16_05_08).to_string(), "22.05.8");
        assert_eq!(SlurmVersion::from_number(0x17_0b_01).to_string(), "23.11.1");
    }

    #[test]
    fn inspect_rejects_non_elf_data() {
        let version = SlurmVersion { major: 22, minor: 5, micro: 8 };
        let error = inspect(b"#!/bin/sh\n", version).unwrap_err();
        assert!(error.starts_with("not an ELF shared object: "), "{error}");
    }
}
