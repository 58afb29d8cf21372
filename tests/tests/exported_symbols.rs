//! The plugin exports exactly the symbols Slurm's loader looks up.
//!
//! Any other exported symbol could bind to a global of srun or slurmstepd
//! (a plugin global named `opt` replaces srun's own `opt`), and exported
//! `init`/`fini` would be called by Slurm on load and unload.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test helpers fail the test on unexpected input")]

use std::path::PathBuf;
use std::process::Command;

fn plugin_path() -> PathBuf {
    cluster_tests::default_plugin_path()
}

#[test]
fn plugin_exports_only_slurm_symbols() {
    let plugin = plugin_path();
    assert!(plugin.is_file(), "{} not found; build it with `cargo build -p spank-guard`", plugin.display());

    let output = Command::new("nm").args(["-D", "--defined-only", "--format=posix"]).arg(&plugin).output().unwrap();
    assert!(output.status.success(), "nm failed: {}", String::from_utf8_lossy(&output.stderr));
    let mut symbols: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .collect();
    symbols.sort();

    assert_eq!(
        symbols,
        [
            "plugin_name",
            "plugin_type",
            "plugin_version",
            "slurm_spank_exit",
            "slurm_spank_init",
            "slurm_spank_init_post_opt",
            "slurm_spank_task_exit",
            "slurm_spank_task_init",
            "slurm_spank_task_init_privileged",
        ]
    );
}

#[test]
fn plugin_version_matches_build_headers() {
    let header = std::fs::read_to_string("/usr/include/slurm/slurm_version.h").unwrap();
    let expected = header
        .lines()
        .find_map(|line| line.strip_prefix("#define SLURM_VERSION_NUMBER "))
        .map(|value| u32::from_str_radix(value.trim().trim_start_matches("0x"), 16).unwrap())
        .unwrap();

    let plugin = plugin_path();
    // Read the 4-byte value of `plugin_version` through the dynamic symbol table.
    let nm = Command::new("nm").args(["-D", "--defined-only", "--format=posix"]).arg(&plugin).output().unwrap();
    let listing = String::from_utf8_lossy(&nm.stdout);
    let address = listing
        .lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next()? == "plugin_version").then(|| fields.nth(1).map(str::to_owned)).flatten()
        })
        .unwrap();
    let address = u64::from_str_radix(&address, 16).unwrap();
    let bytes = read_at_virtual_address(&plugin, address, 4);
    assert_eq!(u32::from_le_bytes(bytes.try_into().unwrap()), expected);
}

/// Reads `len` bytes at a virtual address of an ELF file through its
/// program headers (the plugin's read-only data is in a PT_LOAD segment).
fn read_at_virtual_address(path: &std::path::Path, address: u64, len: usize) -> Vec<u8> {
    let data = std::fs::read(path).unwrap();
    let u64_at = |offset: usize| u64::from_le_bytes(data[offset..offset + 8].try_into().unwrap());
    let u16_at = |offset: usize| u16::from_le_bytes(data[offset..offset + 2].try_into().unwrap());
    let program_headers = u64_at(0x20) as usize;
    let entry_size = u16_at(0x36) as usize;
    let count = u16_at(0x38) as usize;
    for index in 0..count {
        let header = program_headers + index * entry_size;
        let kind = u32::from_le_bytes(data[header..header + 4].try_into().unwrap());
        let file_offset = u64_at(header + 8);
        let virtual_address = u64_at(header + 16);
        let file_size = u64_at(header + 32);
        if kind == 1 && address >= virtual_address && address + len as u64 <= virtual_address + file_size {
            let start = (file_offset + address - virtual_address) as usize;
            return data[start..start + len].to_vec();
        }
    }
    panic!("address {address:#x} is not in a loaded segment of {}", path.display());
}
