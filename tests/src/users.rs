//! Unprivileged test users and groups, created when missing.

use std::process::Command;

/// Group that the policy of the tests allows into `prod`.
pub const PROD_GROUP: &str = "hpc-prod";

/// An unprivileged account that submits jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestUser {
    /// Login name.
    pub name: &'static str,
    /// Extra groups the account is a member of.
    pub groups: &'static [&'static str],
}

/// The accounts the tests submit jobs as: `guardtest` is in no special
/// group, `guardprod` is a member of [`PROD_GROUP`].
pub const TEST_USERS: [TestUser; 2] = [
    TestUser { name: "guardtest", groups: &[] },
    TestUser { name: "guardprod", groups: &[PROD_GROUP] },
];

/// Creates the test group and accounts that do not exist yet.
pub fn ensure_users() -> Result<(), String> {
    if nix::unistd::Group::from_name(PROD_GROUP).map_err(|error| error.to_string())?.is_none() {
        run("groupadd", &["--system", PROD_GROUP])?;
    }
    for user in TEST_USERS {
        if nix::unistd::User::from_name(user.name).map_err(|error| error.to_string())?.is_none() {
            let mut args = vec!["--system", "--user-group", "--no-create-home", "--shell", "/bin/sh"];
            let groups = user.groups.join(",");
            if !groups.is_empty() {
                args.extend(["--groups", groups.as_str()]);
            }
            args.push(user.name);
            run("useradd", &args)?;
        }
    }
    Ok(())
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program).args(args).output().map_err(|error| format!("cannot run {program}: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
    }
}
