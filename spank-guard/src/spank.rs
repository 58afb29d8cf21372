//! Safe wrappers over every raw SPANK and Slurm logging call the plugin makes.
//!
//! This is the only module that calls into `slurm-headers`. Each method
//! returns a `Result` whose error names the failed call and Slurm's own
//! error text, and every `unsafe` block states why the call is sound.

use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt;
use std::os::raw::c_uint;
use std::ptr;

use slurm_headers as sys;

/// The Slurm process a callback runs in (`spank_context()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// srun, before and after the step runs.
    Local,
    /// slurmstepd on a compute node.
    Remote,
    /// sbatch, salloc or scrontab.
    Allocator,
    /// slurmd itself.
    Slurmd,
    /// The prolog/epilog helper of slurmd.
    JobScript,
    /// Slurm could not tell.
    Unknown,
}

/// A failed SPANK call: the function, what was requested, and Slurm's error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpankError {
    call: &'static str,
    what: String,
    code: c_uint,
    text: String,
}

impl SpankError {
    fn new(call: &'static str, what: impl Into<String>, code: c_uint) -> SpankError {
        SpankError { call, what: what.into(), code, text: strerror(code) }
    }
}

impl fmt::Display for SpankError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({}) failed: {}", self.call, self.what, self.text)
    }
}

impl std::error::Error for SpankError {}

fn strerror(code: c_uint) -> String {
    // SAFETY: spank_strerror accepts any code and returns a pointer to a
    // static string owned by Slurm, or NULL.
    let text = unsafe { sys::spank_strerror(code) };
    if text.is_null() {
        return format!("error {code}");
    }
    // SAFETY: non-NULL results of spank_strerror are NUL-terminated static strings.
    unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned()
}

fn check(call: &'static str, what: impl Into<String>, code: c_uint) -> Result<(), SpankError> {
    if code == sys::ESPANK_SUCCESS {
        Ok(())
    } else {
        Err(SpankError::new(call, what, code))
    }
}

/// Converts bytes to a C string for Slurm, rejecting interior NUL bytes.
fn c_string(call: &'static str, value: &[u8]) -> Result<CString, SpankError> {
    CString::new(value).map_err(|_| SpankError {
        call,
        what: String::from_utf8_lossy(value).replace('\0', "\\0"),
        code: sys::slurm_err_t::ESPANK_BAD_ARG,
        text: "value contains a NUL byte".to_owned(),
    })
}

/// Returns the context of the calling process.
pub fn context() -> Context {
    // SAFETY: spank_context takes no arguments and only reads Slurm's globals.
    match unsafe { sys::spank_context() } {
        sys::spank_context::S_CTX_LOCAL => Context::Local,
        sys::spank_context::S_CTX_REMOTE => Context::Remote,
        sys::spank_context::S_CTX_ALLOCATOR => Context::Allocator,
        sys::spank_context::S_CTX_SLURMD => Context::Slurmd,
        sys::spank_context::S_CTX_JOB_SCRIPT => Context::JobScript,
        sys::spank_context::S_CTX_ERROR => Context::Unknown,
    }
}

/// A SPANK option table entry with a lifetime of the whole process.
///
/// Slurm keeps the pointer it receives from `spank_option_register` and
/// reads it again when it parses the command line and prints `--help`.
pub struct OptionSpec {
    raw: std::cell::UnsafeCell<sys::spank_option>,
}

// SAFETY: the table is written only by its const constructor; Slurm and the
// plugin read it from the thread that runs the SPANK callbacks.
unsafe impl Sync for OptionSpec {}

/// Signature of the option callback Slurm calls for each parsed option.
pub type OptionCallback = unsafe extern "C" fn(val: c_int, optarg: *const c_char, remote: c_int) -> c_int;

impl OptionSpec {
    /// Describes an option that takes a required argument (`--name=VALUE`
    /// or `--name VALUE`).
    pub const fn with_argument(
        name: &'static CStr,
        arginfo: &'static CStr,
        usage: &'static CStr,
        val: c_int,
        callback: OptionCallback,
    ) -> OptionSpec {
        OptionSpec::new(name, arginfo, usage, 1, val, callback)
    }

    /// Describes an option whose argument may be left out. The argument
    /// must then follow an `=` (`--name=VALUE`): getopt does not take the
    /// next word as an optional argument. Without one the callback gets a
    /// NULL `optarg`.
    pub const fn with_optional_argument(
        name: &'static CStr,
        arginfo: &'static CStr,
        usage: &'static CStr,
        val: c_int,
        callback: OptionCallback,
    ) -> OptionSpec {
        OptionSpec::new(name, arginfo, usage, 2, val, callback)
    }

    const fn new(
        name: &'static CStr,
        arginfo: &'static CStr,
        usage: &'static CStr,
        has_arg: c_int,
        val: c_int,
        callback: OptionCallback,
    ) -> OptionSpec {
        OptionSpec {
            raw: std::cell::UnsafeCell::new(sys::spank_option {
                name: name.as_ptr().cast_mut(),
                arginfo: arginfo.as_ptr().cast_mut(),
                usage: usage.as_ptr().cast_mut(),
                has_arg,
                val,
                cb: Some(callback),
            }),
        }
    }

    /// Returns the option name without the leading `--`.
    pub fn name(&self) -> String {
        // SAFETY: `name` points to a 'static C string set by the constructor.
        unsafe { CStr::from_ptr((*self.raw.get()).name) }.to_string_lossy().into_owned()
    }
}

/// Captured SPANK arguments of one callback. Valid only during the callback.
pub struct Spank {
    handle: sys::spank_t,
}

impl Spank {
    /// Wraps the handle Slurm passed to a callback.
    ///
    /// # Safety
    ///
    /// `handle` must be the `spank_t` of the callback that is running, and
    /// the `Spank` must not outlive that callback.
    pub unsafe fn from_raw(handle: sys::spank_t) -> Spank {
        Spank { handle }
    }

    /// Registers a command-line option (`spank_option_register`).
    pub fn register_option(&self, option: &'static OptionSpec) -> Result<(), SpankError> {
        // SAFETY: the handle is valid for this callback, and the option
        // table is 'static, so the pointer Slurm keeps stays valid.
        let code = unsafe { sys::spank_option_register(self.handle, option.raw.get()) };
        check("spank_option_register", format!("--{}", option.name()), code)
    }

    fn item_u32(&self, item: sys::spank_item_t, name: &'static str) -> Result<u32, SpankError> {
        let mut value: u32 = 0;
        // SAFETY: every item read through this helper takes one `uint32_t *`
        // (uid_t and gid_t are u32 on Linux), and `value` outlives the call.
        let code = unsafe { sys::spank_get_item(self.handle, item, &mut value as *mut u32) };
        check("spank_get_item", name, code)?;
        Ok(value)
    }

    /// Returns the job's uid (`S_JOB_UID`).
    pub fn job_uid(&self) -> Result<u32, SpankError> {
        self.item_u32(sys::spank_item::S_JOB_UID, "S_JOB_UID")
    }

    /// Returns the job's primary gid (`S_JOB_GID`).
    pub fn job_gid(&self) -> Result<u32, SpankError> {
        self.item_u32(sys::spank_item::S_JOB_GID, "S_JOB_GID")
    }

    /// Returns the job id (`S_JOB_ID`).
    pub fn job_id(&self) -> Result<u32, SpankError> {
        self.item_u32(sys::spank_item::S_JOB_ID, "S_JOB_ID")
    }

    /// Returns the step id (`S_JOB_STEPID`).
    pub fn step_id(&self) -> Result<u32, SpankError> {
        self.item_u32(sys::spank_item::S_JOB_STEPID, "S_JOB_STEPID")
    }

    /// Returns the number of tasks of the step on this node (`S_JOB_LOCAL_TASK_COUNT`).
    pub fn local_task_count(&self) -> Result<u32, SpankError> {
        self.item_u32(sys::spank_item::S_JOB_LOCAL_TASK_COUNT, "S_JOB_LOCAL_TASK_COUNT")
    }

    /// Returns the global task id of the current task (`S_TASK_GLOBAL_ID`).
    pub fn task_global_id(&self) -> Result<u32, SpankError> {
        self.item_u32(sys::spank_item::S_TASK_GLOBAL_ID, "S_TASK_GLOBAL_ID")
    }

    /// Returns the wait status of the task that exited (`S_TASK_EXIT_STATUS`).
    pub fn task_exit_status(&self) -> Result<i32, SpankError> {
        let mut value: c_int = 0;
        // SAFETY: S_TASK_EXIT_STATUS takes one `int *`, which outlives the call.
        let code = unsafe { sys::spank_get_item(self.handle, sys::spank_item::S_TASK_EXIT_STATUS, &mut value as *mut c_int) };
        check("spank_get_item", "S_TASK_EXIT_STATUS", code)?;
        Ok(value)
    }

    /// Returns the supplementary gids of the job (`S_JOB_SUPPLEMENTARY_GIDS`).
    pub fn supplementary_gids(&self) -> Result<Vec<u32>, SpankError> {
        let mut gids: *mut libc::gid_t = ptr::null_mut();
        let mut count: c_int = 0;
        // SAFETY: S_JOB_SUPPLEMENTARY_GIDS takes `gid_t **` and `int *`;
        // both out-params outlive the call.
        let code = unsafe {
            sys::spank_get_item(
                self.handle,
                sys::spank_item::S_JOB_SUPPLEMENTARY_GIDS,
                &mut gids as *mut *mut libc::gid_t,
                &mut count as *mut c_int,
            )
        };
        check("spank_get_item", "S_JOB_SUPPLEMENTARY_GIDS", code)?;
        let count = usize::try_from(count).unwrap_or(0);
        if gids.is_null() || count == 0 {
            return Ok(Vec::new());
        }
        // SAFETY: Slurm returned `count` gids at `gids`, owned by the job
        // record, which lives for the whole callback.
        Ok(unsafe { std::slice::from_raw_parts(gids, count) }.to_vec())
    }

    /// Returns the step's command (`S_JOB_ARGV`), each argument as raw bytes.
    pub fn argv(&self) -> Result<Vec<Vec<u8>>, SpankError> {
        let mut argc: c_int = 0;
        let mut argv: *mut *mut c_char = ptr::null_mut();
        // SAFETY: S_JOB_ARGV takes `int *` and `char ***`; both outlive the call.
        let code = unsafe {
            sys::spank_get_item(
                self.handle,
                sys::spank_item::S_JOB_ARGV,
                &mut argc as *mut c_int,
                &mut argv as *mut *mut *mut c_char,
            )
        };
        check("spank_get_item", "S_JOB_ARGV", code)?;
        let argc = usize::try_from(argc).unwrap_or(0);
        if argv.is_null() {
            return Ok(Vec::new());
        }
        // SAFETY: Slurm returned an array of `argc` C strings owned by the
        // job record; they are copied before the callback returns.
        let entries = unsafe { std::slice::from_raw_parts(argv, argc) };
        Ok(entries.iter().filter(|arg| !arg.is_null()).map(|&arg| {
            // SAFETY: non-NULL entries of argv are NUL-terminated strings.
            unsafe { CStr::from_ptr(arg) }.to_bytes().to_vec()
        }).collect())
    }

    /// Returns the step's environment (`S_JOB_ENV`) as raw `NAME=value`
    /// entries, without any length limit.
    pub fn env(&self) -> Result<Vec<Vec<u8>>, SpankError> {
        let mut env: *mut *mut c_char = ptr::null_mut();
        // SAFETY: S_JOB_ENV takes one `char ***`, which outlives the call.
        let code = unsafe { sys::spank_get_item(self.handle, sys::spank_item::S_JOB_ENV, &mut env as *mut *mut *mut c_char) };
        check("spank_get_item", "S_JOB_ENV", code)?;
        let mut entries = Vec::new();
        if env.is_null() {
            return Ok(entries);
        }
        let mut index = 0;
        loop {
            // SAFETY: the environment array is NULL-terminated, and `index`
            // stops at the terminator.
            let entry = unsafe { *env.add(index) };
            if entry.is_null() {
                break;
            }
            // SAFETY: each entry is a NUL-terminated string owned by the job.
            entries.push(unsafe { CStr::from_ptr(entry) }.to_bytes().to_vec());
            index += 1;
        }
        Ok(entries)
    }

    /// Sets a variable in the job environment (`spank_setenv`, remote only).
    pub fn setenv(&self, name: &str, value: &[u8]) -> Result<(), SpankError> {
        let c_name = c_string("spank_setenv", name.as_bytes())?;
        let c_value = c_string("spank_setenv", value)?;
        // SAFETY: valid handle and NUL-terminated strings that outlive the
        // call; Slurm copies both.
        let code = unsafe { sys::spank_setenv(self.handle, c_name.as_ptr(), c_value.as_ptr(), 1) };
        check("spank_setenv", name, code)
    }

    /// Sets a variable in the job control environment
    /// (`spank_job_control_setenv`, local and allocator contexts). Slurm
    /// sends it with the job request: slurmctld's job_submit/lua reads it from
    /// `job_desc.spank_job_env`, and the prolog and epilog as `SPANK_<name>`.
    pub fn job_control_setenv(&self, name: &str, value: &[u8]) -> Result<(), SpankError> {
        let c_name = c_string("spank_job_control_setenv", name.as_bytes())?;
        let c_value = c_string("spank_job_control_setenv", value)?;
        // SAFETY: valid handle and NUL-terminated strings that outlive the
        // call; Slurm copies both.
        let code = unsafe { sys::spank_job_control_setenv(self.handle, c_name.as_ptr(), c_value.as_ptr(), 1) };
        check("spank_job_control_setenv", name, code)
    }

    /// Removes a variable from the job environment (`spank_unsetenv`, remote only).
    pub fn unsetenv(&self, name: &str) -> Result<(), SpankError> {
        let c_name = c_string("spank_unsetenv", name.as_bytes())?;
        // SAFETY: valid handle and a NUL-terminated name that outlives the call.
        let code = unsafe { sys::spank_unsetenv(self.handle, c_name.as_ptr()) };
        check("spank_unsetenv", name, code)
    }

    /// Prepends arguments to the task's argv with `spank_prepend_task_argv`
    /// when the running Slurm provides it (23.11 and later).
    ///
    /// Returns `None` when the symbol is missing: Slurm 22.05 and 23.02 do
    /// not have it, and calling an unresolved function would kill slurmstepd,
    /// so the symbol is looked up at run time instead of linked.
    pub fn prepend_task_argv(&self, args: &[Vec<u8>]) -> Option<Result<(), SpankError>> {
        type PrependFn = unsafe extern "C" fn(sys::spank_t, c_int, *mut *const c_char) -> c_uint;

        // SAFETY: dlsym with RTLD_DEFAULT only searches the loaded objects.
        let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"spank_prepend_task_argv".as_ptr()) };
        if symbol.is_null() {
            return None;
        }
        // SAFETY: Slurm 23.11 declares `spank_err_t spank_prepend_task_argv(spank_t, int, const char **)`.
        let prepend: PrependFn = unsafe { std::mem::transmute::<*mut libc::c_void, PrependFn>(symbol) };

        let c_args: Result<Vec<CString>, SpankError> = args.iter().map(|arg| c_string("spank_prepend_task_argv", arg)).collect();
        let c_args = match c_args {
            Ok(c_args) => c_args,
            Err(error) => return Some(Err(error)),
        };
        let mut pointers: Vec<*const c_char> = c_args.iter().map(|arg| arg.as_ptr()).collect();
        pointers.push(ptr::null());
        let Ok(count) = c_int::try_from(c_args.len()) else {
            return Some(Err(SpankError::new("spank_prepend_task_argv", "argv", sys::slurm_err_t::ESPANK_BAD_ARG)));
        };
        // SAFETY: valid handle, `count` pointers to NUL-terminated strings
        // followed by NULL; Slurm copies them before returning.
        let code = unsafe { prepend(self.handle, count, pointers.as_mut_ptr()) };
        Some(check("spank_prepend_task_argv", "argv", code))
    }
}

/// Slurm log levels the plugin writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// `slurm_error`: denials and failures.
    Error,
    /// `slurm_info`: one summary line per decision, degradations.
    Info,
    /// `slurm_verbose`: decision traces.
    Verbose,
    /// `slurm_debug`: internals.
    Debug,
}

/// Writes one line to Slurm's log at `level` through a constant `"%s"`
/// format, so the text is never interpreted as a format string.
pub fn log(level: LogLevel, line: &str) {
    let line = c_line(line);
    // SAFETY: constant "%s" format with one NUL-terminated string argument.
    unsafe {
        match level {
            LogLevel::Error => sys::slurm_error(c"%s".as_ptr(), line.as_ptr()),
            LogLevel::Info => sys::slurm_info(c"%s".as_ptr(), line.as_ptr()),
            LogLevel::Verbose => sys::slurm_verbose(c"%s".as_ptr(), line.as_ptr()),
            LogLevel::Debug => sys::slurm_debug(c"%s".as_ptr(), line.as_ptr()),
        }
    }
}

/// Shows one line to the user who ran the job (`slurm_spank_log`): srun
/// prints it on its terminal and batch jobs get it in their output file.
pub fn user_log(line: &str) {
    let line = c_line(line);
    // SAFETY: constant "%s" format with one NUL-terminated string argument.
    unsafe { sys::slurm_spank_log(c"%s".as_ptr(), line.as_ptr()) };
}

/// Converts a log line to a C string. Line breaks become spaces and other
/// control characters U+FFFD, so a value can neither truncate the line, nor
/// start a forged one, nor send terminal escape sequences to the user or to
/// an admin reading the log.
fn c_line(line: &str) -> CString {
    let cleaned: String = line
        .chars()
        .map(|c| match c {
            '\n' | '\r' => ' ',
            other if other.is_control() && other != '\t' => '\u{FFFD}',
            other => other,
        })
        .collect();
    CString::new(cleaned).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_line_replaces_control_characters() {
        let line = c_line("reason\nforged\r\0line \u{1b}[31mred\tend");
        assert_eq!(line.to_str().unwrap(), "reason forged \u{FFFD}line \u{FFFD}[31mred\tend");
    }
}
