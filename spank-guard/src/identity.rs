//! User and group names of the job's user, resolved on the local host.

use std::ffi::CString;

use nix::unistd::{getgrouplist, Gid, Group, Uid, User};

/// The job user's names, as policy rules compare them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Numeric uid.
    pub uid: u32,
    /// User name.
    pub user: String,
    /// Names of the primary group and every supplementary group, sorted, without duplicates.
    pub groups: Vec<String>,
}

/// Resolves the user and group names of `uid` through the host's name
/// service (files, LDAP or SSSD, as nsswitch.conf configures).
///
/// `primary_gid` is the job's primary group. `extra_gids` are group ids
/// that Slurm sent with the job (`S_JOB_SUPPLEMENTARY_GIDS`); they are
/// added to the list the host's name service returns.
pub fn resolve(uid: u32, primary_gid: u32, extra_gids: &[u32]) -> Result<Identity, String> {
    let user = match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) => user,
        Ok(None) => return Err(format!("user id {uid} not found in the passwd database of this host")),
        Err(error) => return Err(format!("cannot look up user id {uid}: {error}")),
    };

    let mut gids: Vec<Gid> = vec![Gid::from_raw(primary_gid)];
    let c_name = CString::new(user.name.as_bytes()).map_err(|_| format!("user name of uid {uid} contains a NUL byte"))?;
    match getgrouplist(&c_name, Gid::from_raw(primary_gid)) {
        Ok(list) => gids.extend(list),
        Err(error) => tracing::info!("cannot list the groups of user `{}`: {error}; using the groups Slurm sent", user.name),
    }
    gids.extend(extra_gids.iter().map(|&gid| Gid::from_raw(gid)));

    let mut groups: Vec<String> = Vec::new();
    for gid in gids {
        match Group::from_gid(gid) {
            Ok(Some(group)) => groups.push(group.name),
            Ok(None) => tracing::debug!("group id {gid} of user `{}` has no name; ignoring it", user.name),
            Err(error) => tracing::debug!("cannot look up group id {gid}: {error}"),
        }
    }
    groups.sort();
    groups.dedup();

    Ok(Identity { uid, user: user.name, groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_resolves_with_root_group() {
        let identity = resolve(0, 0, &[]).unwrap();
        assert_eq!(identity.user, "root");
        assert!(identity.groups.contains(&"root".to_owned()), "groups: {:?}", identity.groups);
    }

    #[test]
    fn unknown_uid_is_an_error() {
        let error = resolve(4_000_000_000, 0, &[]).unwrap_err();
        assert_eq!(error, "user id 4000000000 not found in the passwd database of this host");
    }
}
