//! Builds the policy request from the facts a SPANK context provides.

use std::collections::BTreeMap;

use policy_core::{Context, GuardOptions, Request};

use crate::identity::Identity;

/// Splits raw `NAME=value` entries into a map. Names and values that are not
/// UTF-8 are converted lossily. An entry without `=` is skipped, and a later
/// duplicate replaces an earlier one.
pub fn env_map(entries: &[Vec<u8>]) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for entry in entries {
        let Some(position) = entry.iter().position(|&byte| byte == b'=') else {
            continue;
        };
        let (name, value) = entry.split_at(position);
        env.insert(
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value.get(1..).unwrap_or_default()).into_owned(),
        );
    }
    env
}

/// Facts about one job or step, gathered by the submit or the step side.
pub struct Facts {
    /// Submit or step.
    pub context: Context,
    /// The job user.
    pub identity: Identity,
    /// `--guard-*` values.
    pub options: GuardOptions,
    /// Job environment.
    pub env: BTreeMap<String, String>,
    /// Step command line.
    pub argv: Vec<Vec<u8>>,
    /// Job id (none at submission).
    pub job_id: Option<u32>,
    /// Step id (none at submission).
    pub step_id: Option<u32>,
    /// Node that runs the step.
    pub node: Option<String>,
}

/// Builds the request `policy_core::evaluate` takes.
pub fn request(facts: Facts) -> Request {
    let cluster = facts.env.get("SLURM_CLUSTER_NAME").cloned().unwrap_or_default();
    let job_name = facts.env.get("SLURM_JOB_NAME").cloned();
    Request {
        context: facts.context,
        cluster,
        job_id: facts.job_id,
        step_id: facts.step_id,
        node: facts.node,
        uid: facts.identity.uid,
        user: facts.identity.user,
        groups: facts.identity.groups,
        options: facts.options,
        argv: facts.argv.iter().map(|arg| String::from_utf8_lossy(arg).into_owned()).collect(),
        env: facts.env,
        job_name,
        ..Request::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_map_keeps_odd_values() {
        let entries = vec![
            b"PLAIN=1".to_vec(),
            b"MULTILINE=a\nb".to_vec(),
            b"EQUALS=x=y".to_vec(),
            b"BINARY=\xff\xfe".to_vec(),
            b"NO_EQUALS".to_vec(),
            b"EMPTY=".to_vec(),
        ];
        let env = env_map(&entries);
        assert_eq!(env.get("PLAIN").map(String::as_str), Some("1"));
        assert_eq!(env.get("MULTILINE").map(String::as_str), Some("a\nb"));
        assert_eq!(env.get("EQUALS").map(String::as_str), Some("x=y"));
        assert_eq!(env.get("BINARY").map(String::as_str), Some("\u{FFFD}\u{FFFD}"));
        assert_eq!(env.get("EMPTY").map(String::as_str), Some(""));
        assert!(!env.contains_key("NO_EQUALS"));
    }

    #[test]
    fn long_values_are_kept_whole() {
        let mut entry = b"LONG=".to_vec();
        entry.extend(std::iter::repeat_n(b'x', 1 << 20));
        let env = env_map(&[entry]);
        assert_eq!(env.get("LONG").map(String::len), Some(1 << 20));
    }
}
