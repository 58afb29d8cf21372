//! Starting a task inside the container the decision approved.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::ptr;

/// Builds the complete command line: the decision's argv prefix (runtime,
/// `exec`, forced args, binds, flags, image) followed by the task's argv.
pub fn wrapped_argv(prefix: &[String], task_argv: &[Vec<u8>]) -> Vec<Vec<u8>> {
    prefix.iter().map(|arg| arg.as_bytes().to_vec()).chain(task_argv.iter().cloned()).collect()
}

/// Replaces the current process with `argv[0]`, passing `argv` and `env`
/// unchanged. Returns only on failure, with a message naming the runtime
/// and the errno text.
pub fn exec(argv: &[Vec<u8>], env: &[Vec<u8>]) -> String {
    let Some(program) = argv.first() else {
        return "cannot start the container: the command line is empty".to_owned();
    };
    let runtime = OsStr::from_bytes(program).to_string_lossy().into_owned();
    let to_c = |bytes: &Vec<u8>| CString::new(bytes.as_slice());
    let Ok(c_argv) = argv.iter().map(to_c).collect::<Result<Vec<CString>, _>>() else {
        return format!("cannot start container runtime `{runtime}`: an argument contains a NUL byte");
    };
    let Ok(c_env) = env.iter().map(to_c).collect::<Result<Vec<CString>, _>>() else {
        return format!("cannot start container runtime `{runtime}`: an environment entry contains a NUL byte");
    };
    let mut argv_pointers: Vec<*const libc::c_char> = c_argv.iter().map(|arg| arg.as_ptr()).collect();
    argv_pointers.push(ptr::null());
    let mut env_pointers: Vec<*const libc::c_char> = c_env.iter().map(|entry| entry.as_ptr()).collect();
    env_pointers.push(ptr::null());

    // SAFETY: both arrays are NULL-terminated and point to C strings that
    // live until execve returns (it returns only on failure).
    unsafe { libc::execve(argv_pointers[0], argv_pointers.as_ptr(), env_pointers.as_ptr()) };
    let error = std::io::Error::last_os_error();
    format!("cannot start container runtime `{runtime}`: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_then_task_argv() {
        let argv = wrapped_argv(
            &["/usr/bin/apptainer".into(), "exec".into(), "/img.sif".into()],
            &[b"printenv".to_vec(), b"HOME".to_vec()],
        );
        assert_eq!(argv, [b"/usr/bin/apptainer".to_vec(), b"exec".to_vec(), b"/img.sif".to_vec(), b"printenv".to_vec(), b"HOME".to_vec()]);
    }

    #[test]
    fn missing_runtime_names_path_and_errno() {
        let message = exec(&[b"/nonexistent/apptainer".to_vec(), b"exec".to_vec()], &[]);
        assert_eq!(message, "cannot start container runtime `/nonexistent/apptainer`: No such file or directory (os error 2)");
    }
}
