//! Generates Rust bindings for the SPANK API from the installed Slurm headers.
//!
//! The headers come from `$SLURM_INCLUDE_DIR/slurm/` when that variable is
//! set, otherwise from the compiler's system include path.

use std::env;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const HEADERS: [&str; 2] = ["slurm/spank.h", "slurm/slurm_version.h"];

/// Include directories the C compiler searches by default on the usual
/// Linux distributions. bindgen's clang searches them too. This list only
/// serves the existence check that produces a readable error.
const SYSTEM_INCLUDE_DIRS: [&str; 3] = ["/usr/include", "/usr/local/include", "/usr/include/x86_64-linux-gnu"];

fn main() -> ExitCode {
    println!("cargo:rerun-if-env-changed=SLURM_INCLUDE_DIR");
    println!("cargo:rerun-if-changed=wrapper.h");

    let include_dir = env::var_os("SLURM_INCLUDE_DIR").map(PathBuf::from);
    let search_dirs: Vec<PathBuf> = match &include_dir {
        Some(dir) => vec![dir.clone()],
        None => SYSTEM_INCLUDE_DIRS.iter().map(PathBuf::from).collect(),
    };

    for header in HEADERS {
        match search_dirs.iter().map(|dir| dir.join(header)).find(|path| path.is_file()) {
            Some(path) => println!("cargo:rerun-if-changed={}", path.display()),
            None => {
                report_missing_header(header, include_dir.as_deref(), &search_dirs);
                return ExitCode::FAILURE;
            }
        }
    }

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .allowlist_function("spank_.*")
        .allowlist_function("slurm_spank_log")
        .allowlist_function("slurm_(info|error|verbose|debug|debug2|debug3)")
        .allowlist_type("spank_.*")
        .allowlist_var("ESPANK_.*")
        .allowlist_var("S_.*")
        .allowlist_var("SPANK_OPTION_MAXLEN")
        .allowlist_var("SLURM_VERSION_NUMBER")
        .allowlist_var("HAVE_S_CTX_.*")
        // The plugin defines these callbacks itself, and bindings for the
        // header's `extern spank_f` declarations would only shadow them.
        .blocklist_item("slurm_spank_(init|job_prolog|init_post_opt|local_user_init|user_init|task_init_privileged|task_init|task_post_fork|task_exit|job_epilog|slurmd_exit|exit)")
        .blocklist_item("spank_options")
        .rustified_enum("spank_context")
        .constified_enum_module("spank_item")
        .constified_enum_module("slurm_err_t")
        .derive_debug(true)
        .layout_tests(false)
        .generate_comments(false);
    if let Some(dir) = &include_dir {
        builder = builder.clang_arg(format!("-I{}", dir.display()));
    }

    let bindings = match builder.generate() {
        Ok(bindings) => bindings,
        Err(error) => {
            eprintln!("error: bindgen failed to parse the Slurm headers: {error}");
            eprintln!("help: bindgen needs libclang (Debian: `apt-get install libclang-dev`; RHEL: `dnf install clang-devel`)");
            return ExitCode::FAILURE;
        }
    };

    let Some(out_dir) = env::var_os("OUT_DIR") else {
        eprintln!("error: OUT_DIR is not set; run this build script through cargo");
        return ExitCode::FAILURE;
    };
    let out_file = Path::new(&out_dir).join("bindings.rs");
    if let Err(error) = bindings.write_to_file(&out_file) {
        eprintln!("error: cannot write {}: {error}", out_file.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn report_missing_header(header: &str, include_dir: Option<&Path>, searched: &[PathBuf]) {
    let searched: Vec<String> = searched.iter().map(|dir| dir.display().to_string()).collect();
    eprintln!("error: Slurm header <{header}> not found (searched: {})", searched.join(", "));
    if let Some(dir) = include_dir {
        eprintln!("note: SLURM_INCLUDE_DIR is set to `{}`", dir.display());
    }
    eprintln!(
        "help: install the Slurm development headers (Debian/Ubuntu: `apt-get install libslurm-dev`, \
         RHEL/Rocky: `dnf install slurm-devel`), or set SLURM_INCLUDE_DIR to the directory that contains `slurm/spank.h`"
    );
}
