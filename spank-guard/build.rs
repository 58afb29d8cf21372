//! Link the SPANK plugin with a version script that exports only the
//! symbols Slurm looks up, and with full RELRO.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=exports.map");
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let map = manifest_dir.join("exports.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={}", map.display());
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,relro");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,now");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,noexecstack");
    // rustc exports every `#[no_mangle]` function of every linked crate,
    // including policy-core's C ABI, and merges its own version script with
    // the one above. Symbols from static archives (the dependency rlibs) are
    // kept local here, so only this crate's Slurm symbols are exported.
    println!("cargo:rustc-cdylib-link-arg=-Wl,--exclude-libs,ALL");
}
