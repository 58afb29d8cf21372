//! Container flags that users may add with `--guard-container-flags`.
//!
//! A flag passes only in its long form, `--name` or `--name=value`, and only
//! when `--name` is in the policy's `user_flags`. Short flags are rejected
//! because one letter can stand for several long flags and bundles such as
//! `-ce` hide what they switch on. Boolean values are rejected because
//! `--containall=false` would cancel a forced argument. Only Apptainer's
//! switches may be given without a value: a value-taking flag such as
//! `--pwd` given alone would take the next argument, the image path, as its
//! value, and Apptainer would run the task's first word as the image.

/// Values that a command-line parser reads as a boolean, compared
/// case-insensitively.
const BOOLEAN_VALUES: &[&str] = &["true", "false", "t", "f", "1", "0", "yes", "no", "on", "off"];

/// Long flags of `apptainer exec` (Apptainer 1.x) that take no value. Any
/// other flag must be written `--name=VALUE`.
const SWITCHES: &[&str] = &[
    "allow-setuid",
    "cleanenv",
    "compat",
    "contain",
    "containall",
    "disable-cache",
    "fakeroot",
    "ipc",
    "keep-privs",
    "net",
    "no-eval",
    "no-home",
    "no-https",
    "no-init",
    "no-privs",
    "no-setgroups",
    "no-umask",
    "nohttps",
    "nv",
    "nvccli",
    "pid",
    "rocm",
    "sharens",
    "unsquash",
    "userns",
    "uts",
    "writable",
    "writable-tmpfs",
];

/// Checks one flag against the `allowed` long flag names (such as `--nv`).
///
/// # Errors
///
/// Returns a message naming the flag and why it is rejected. The message
/// does not list the allowed flags; the caller adds them.
pub fn check_flag(flag: &str, allowed: &[String]) -> Result<(), String> {
    if flag.is_empty() {
        return Err("empty container flag; write flags as `--name` or `--name=value`".to_string());
    }
    if flag == "--" {
        return Err("`--` is not a container flag; write flags as `--name` or `--name=value`".to_string());
    }
    let Some(body) = flag.strip_prefix("--") else {
        return Err(short_or_bare(flag));
    };

    let (name, value) = match body.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (body, None),
    };
    let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        return Err(format!(
            "container flag `{flag}` is not a valid long flag; write `--name` or `--name=value`, with the value joined by `=`"
        ));
    }

    let long_name = format!("--{name}");
    if !allowed.iter().any(|entry| entry == &long_name) {
        return Err(format!("container flag `{long_name}` is not allowed by the policy's user_flags"));
    }
    match value {
        Some("") => Err(format!("container flag `{flag}` has an empty value; write `{long_name}=VALUE` or `{long_name}`")),
        Some(value) if BOOLEAN_VALUES.iter().any(|boolean| boolean.eq_ignore_ascii_case(value)) => Err(format!(
            "container flag `{flag}` sets a boolean value, which could cancel a forced argument; \
             write `{long_name}` alone to switch it on"
        )),
        None if !SWITCHES.contains(&name) => Err(format!(
            "container flag `{flag}` needs a value: given alone, Apptainer would read the next argument \
             (the image path) as its value; write `{long_name}=VALUE`"
        )),
        _ => Ok(()),
    }
}

fn short_or_bare(flag: &str) -> String {
    match flag.strip_prefix('-') {
        Some(letters) if letters.chars().count() == 1 => format!(
            "container flag `{flag}` is a short flag; use its long `--name` form (for example `--nv`)"
        ),
        Some(_) => format!(
            "container flag `{flag}` is a bundle of short flags or a single-dash long flag; \
             write each flag in its long `--name` form"
        ),
        None => format!("container flag `{flag}` must start with `--`; write `--name` or `--name=value`"),
    }
}

/// Splits a comma-separated flag list, trimming whitespace and dropping
/// empty items. An item that does not start with `-` and follows a
/// `--name=value` item continues that value after a comma, so
/// `--env=A=1,B=2,--nv` gives `--env=A=1,B=2` and `--nv`.
pub fn split_flag_list(s: &str) -> Vec<String> {
    let mut flags: Vec<String> = Vec::new();
    // Empty items seen since the last non-empty one; inside a value they
    // are kept as the commas they stood for.
    let mut skipped_empty = 0;
    for item in s.split(',').map(str::trim) {
        if item.is_empty() {
            skipped_empty += 1;
            continue;
        }
        let continues_value = !item.starts_with('-')
            && flags.last().is_some_and(|previous| previous.starts_with("--") && previous.contains('='));
        match flags.last_mut() {
            Some(previous) if continues_value => {
                previous.push_str(&",".repeat(skipped_empty + 1));
                previous.push_str(item);
            }
            _ => flags.push(item.to_string()),
        }
        skipped_empty = 0;
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::{check_flag, split_flag_list};

    fn allowed() -> Vec<String> {
        vec!["--nv".to_string(), "--pwd".to_string(), "--env".to_string()]
    }

    fn rejected(flag: &str) -> String {
        match check_flag(flag, &allowed()) {
            Ok(()) => panic!("`{flag}` should be rejected"),
            Err(message) => message,
        }
    }

    #[test]
    fn long_flags_in_list_pass() {
        assert_eq!(check_flag("--nv", &allowed()), Ok(()));
        assert_eq!(check_flag("--pwd=/work", &allowed()), Ok(()));
        assert_eq!(check_flag("--env=A=1", &allowed()), Ok(()));
        assert_eq!(check_flag("--pwd=/work,b", &allowed()), Ok(()));
    }

    #[test]
    fn value_flag_alone_is_rejected() {
        assert_eq!(
            rejected("--pwd"),
            "container flag `--pwd` needs a value: given alone, Apptainer would read the next argument \
             (the image path) as its value; write `--pwd=VALUE`"
        );
        assert_eq!(
            rejected("--env"),
            "container flag `--env` needs a value: given alone, Apptainer would read the next argument \
             (the image path) as its value; write `--env=VALUE`"
        );
    }

    #[test]
    fn unlisted_flag_is_rejected() {
        assert_eq!(rejected("--writable"), "container flag `--writable` is not allowed by the policy's user_flags");
        assert_eq!(rejected("--writable=yes"), "container flag `--writable` is not allowed by the policy's user_flags");
        assert_eq!(rejected("--NV"), "container flag `--NV` is not allowed by the policy's user_flags");
        assert_eq!(
            check_flag("--nv", &[]),
            Err("container flag `--nv` is not allowed by the policy's user_flags".to_string())
        );
    }

    #[test]
    fn boolean_values_are_rejected() {
        for value in ["false", "true", "0", "1", "yes", "no", "on", "off", "FALSE", "True", "t", "F"] {
            let flag = format!("--nv={value}");
            assert_eq!(
                rejected(&flag),
                format!(
                    "container flag `{flag}` sets a boolean value, which could cancel a forced argument; \
                     write `--nv` alone to switch it on"
                )
            );
        }
        // Values that only start like a boolean pass.
        assert_eq!(check_flag("--pwd=/on", &allowed()), Ok(()));
        assert_eq!(check_flag("--pwd=10", &allowed()), Ok(()));
    }

    #[test]
    fn short_and_bundled_flags_are_rejected() {
        assert_eq!(
            rejected("-n"),
            "container flag `-n` is a short flag; use its long `--name` form (for example `--nv`)"
        );
        assert_eq!(
            rejected("-ce"),
            "container flag `-ce` is a bundle of short flags or a single-dash long flag; write each flag in its long `--name` form"
        );
        assert_eq!(
            rejected("-nv"),
            "container flag `-nv` is a bundle of short flags or a single-dash long flag; write each flag in its long `--name` form"
        );
        assert_eq!(
            rejected("-"),
            "container flag `-` is a bundle of short flags or a single-dash long flag; write each flag in its long `--name` form"
        );
    }

    #[test]
    fn malformed_flags_are_rejected() {
        assert_eq!(rejected(""), "empty container flag; write flags as `--name` or `--name=value`");
        assert_eq!(rejected("--"), "`--` is not a container flag; write flags as `--name` or `--name=value`");
        assert_eq!(rejected("nv"), "container flag `nv` must start with `--`; write `--name` or `--name=value`");
        assert_eq!(
            rejected("--pwd /work"),
            "container flag `--pwd /work` is not a valid long flag; write `--name` or `--name=value`, with the value joined by `=`"
        );
        assert_eq!(
            rejected("---nv"),
            "container flag `---nv` is not a valid long flag; write `--name` or `--name=value`, with the value joined by `=`"
        );
        assert_eq!(
            rejected("--=x"),
            "container flag `--=x` is not a valid long flag; write `--name` or `--name=value`, with the value joined by `=`"
        );
        assert_eq!(rejected("--pwd="), "container flag `--pwd=` has an empty value; write `--pwd=VALUE` or `--pwd`");
    }

    #[test]
    fn split_plain_lists() {
        assert_eq!(split_flag_list("--nv"), vec!["--nv"]);
        assert_eq!(split_flag_list("--nv,--pwd=/work"), vec!["--nv", "--pwd=/work"]);
        assert_eq!(split_flag_list(" --nv , , --pwd=/w ,"), vec!["--nv", "--pwd=/w"]);
        assert_eq!(split_flag_list(""), Vec::<String>::new());
        assert_eq!(split_flag_list(",,"), Vec::<String>::new());
    }

    #[test]
    fn split_keeps_commas_in_values() {
        assert_eq!(split_flag_list("--env=A=1,B=2,--nv"), vec!["--env=A=1,B=2", "--nv"]);
        assert_eq!(split_flag_list("--pwd=/a,b"), vec!["--pwd=/a,b"]);
        // An empty item inside a value is kept, a trailing one is not.
        assert_eq!(split_flag_list("--pwd=/a,,b"), vec!["--pwd=/a,,b"]);
        assert_eq!(split_flag_list("--pwd=/a,b,,"), vec!["--pwd=/a,b"]);
        // A flag after a value starts a new item, so it is checked on its own.
        assert_eq!(split_flag_list("--pwd=/a,--writable"), vec!["--pwd=/a", "--writable"]);
        assert_eq!(split_flag_list("--pwd=/a,-w"), vec!["--pwd=/a", "-w"]);
        // Without a preceding value, a bare word is its own (rejected) item.
        assert_eq!(split_flag_list("--nv,writable"), vec!["--nv", "writable"]);
        assert_eq!(split_flag_list("writable,x"), vec!["writable", "x"]);
    }
}
