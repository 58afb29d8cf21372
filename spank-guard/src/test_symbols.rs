//! Definitions of the Slurm functions for the unit-test executable.
//!
//! In production these symbols resolve from srun or slurmstepd when Slurm
//! loads the plugin. The unit tests only exercise plain-data code, so any
//! call to these functions is a bug in a test: they abort.

#![allow(unsafe_code, reason = "the symbols must have the C names Slurm uses")]

macro_rules! abort_if_called {
    ($($name:ident),* $(,)?) => {
        $(
            #[no_mangle]
            extern "C" fn $name() {
                eprintln!(concat!(stringify!($name), " called in a unit test"));
                std::process::abort();
            }
        )*
    };
}

abort_if_called!(
    spank_strerror,
    spank_context,
    spank_option_register,
    spank_get_item,
    spank_setenv,
    spank_unsetenv,
    slurm_error,
    slurm_info,
    slurm_verbose,
    slurm_debug,
    slurm_spank_log,
);
