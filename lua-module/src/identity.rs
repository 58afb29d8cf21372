//! User and group names of the submitting uid, resolved on the controller.

use std::ffi::CString;

use nix::unistd::{getgrouplist, Gid, Group, Uid, User};

/// User name and sorted group names (primary and supplementary) of `uid`,
/// through the controller's name service (files, LDAP or SSSD, as
/// nsswitch.conf configures). Nothing is cached, so a group change applies
/// to the next submission.
pub fn resolve(uid: u32) -> Result<(String, Vec<String>), String> {
    let user = match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) => user,
        Ok(None) => return Err(format!("user id {uid} not found in the passwd database of the controller")),
        Err(error) => return Err(format!("cannot look up user id {uid}: {error}")),
    };
    let name = CString::new(user.name.as_bytes()).map_err(|_| format!("user name of uid {uid} contains a NUL byte"))?;
    let gids = getgrouplist(&name, user.gid).map_err(|error| format!("cannot list the groups of user `{}`: {error}", user.name))?;

    let mut groups = Vec::with_capacity(gids.len());
    for gid in gids.into_iter().chain([user.gid]) {
        // A gid without a name cannot match a group name in the policy.
        if let Ok(Some(group)) = Group::from_gid(Gid::from_raw(gid.as_raw())) {
            groups.push(group.name);
        }
    }
    groups.sort();
    groups.dedup();
    Ok((user.name, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_root_group() {
        let (user, groups) = resolve(0).unwrap();
        assert_eq!(user, "root");
        assert!(groups.contains(&"root".to_owned()), "{groups:?}");
    }

    #[test]
    fn unknown_uid_named() {
        assert_eq!(resolve(4_000_000_123).unwrap_err(), "user id 4000000123 not found in the passwd database of the controller");
    }
}
