//! Plugstack arguments (`policy=PATH`, `on_policy_error=deny|allow`),
//! parsed once per process into a typed configuration.

use std::fmt;
use std::path::PathBuf;

/// Policy path used when the plugstack line has no `policy=` argument.
pub const DEFAULT_POLICY_PATH: &str = "/etc/slurm/spank-guard/policy.json";

/// Audit file for `policy_error` records when the policy, which names the
/// audit path, cannot be loaded: the policy format's default audit path.
pub const DEFAULT_FALLBACK_AUDIT_PATH: &str = policy_core::policy::DEFAULT_AUDIT_PATH;

/// Handling of jobs while the policy cannot be loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnPolicyError {
    /// Every task fails with `policy.invalid` (the default: fail closed).
    Deny,
    /// Jobs run; the error is logged and audited.
    Allow,
}

/// The plugin configuration from the plugstack line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `policy=PATH`.
    pub policy: PathBuf,
    /// `on_policy_error=deny|allow`.
    pub on_policy_error: OnPolicyError,
    /// `fallback_audit=PATH`: where `policy_error` records go.
    pub fallback_audit: PathBuf,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            policy: PathBuf::from(DEFAULT_POLICY_PATH),
            on_policy_error: OnPolicyError::Deny,
            fallback_audit: PathBuf::from(DEFAULT_FALLBACK_AUDIT_PATH),
        }
    }
}

/// An invalid plugstack argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid plugstack.conf argument: {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses the arguments that follow the plugin path on the plugstack line.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        for arg in args {
            let arg = arg.as_ref();
            let invalid = |why: &str| ConfigError { message: format!("`{arg}`: {why}") };
            let Some((key, value)) = arg.split_once('=') else {
                return Err(invalid("expected KEY=VALUE with KEY one of policy, on_policy_error, fallback_audit"));
            };
            match key {
                "policy" | "fallback_audit" => {
                    if !value.starts_with('/') {
                        return Err(invalid("the path must be absolute"));
                    }
                    if key == "policy" {
                        config.policy = PathBuf::from(value);
                    } else {
                        config.fallback_audit = PathBuf::from(value);
                    }
                }
                "on_policy_error" => {
                    config.on_policy_error = match value {
                        "deny" => OnPolicyError::Deny,
                        "allow" => OnPolicyError::Allow,
                        _ => return Err(invalid("expected `deny` or `allow`")),
                    };
                }
                _ => {
                    return Err(invalid(&format!(
                        "unknown argument `{key}`; known arguments are policy, on_policy_error, fallback_audit"
                    )))
                }
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_arguments() {
        let config = Config::parse::<&str>(&[]).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.on_policy_error, OnPolicyError::Deny);
        assert_eq!(config.policy, PathBuf::from("/etc/slurm/spank-guard/policy.json"));
    }

    #[test]
    fn parses_every_argument() {
        let config = Config::parse(&["policy=/tmp/p.json", "on_policy_error=allow", "fallback_audit=/tmp/a.jsonl"]).unwrap();
        assert_eq!(config.policy, PathBuf::from("/tmp/p.json"));
        assert_eq!(config.on_policy_error, OnPolicyError::Allow);
        assert_eq!(config.fallback_audit, PathBuf::from("/tmp/a.jsonl"));
    }

    #[test]
    fn unknown_argument_is_named() {
        let error = Config::parse(&["polcy=/tmp/p.json"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid plugstack.conf argument: `polcy=/tmp/p.json`: unknown argument `polcy`; \
             known arguments are policy, on_policy_error, fallback_audit"
        );
    }

    #[test]
    fn bad_on_policy_error_value() {
        let error = Config::parse(&["on_policy_error=maybe"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid plugstack.conf argument: `on_policy_error=maybe`: expected `deny` or `allow`"
        );
    }

    #[test]
    fn relative_policy_path() {
        let error = Config::parse(&["policy=policy.json"]).unwrap_err();
        assert_eq!(error.to_string(), "invalid plugstack.conf argument: `policy=policy.json`: the path must be absolute");
    }

    #[test]
    fn argument_without_equals() {
        let error = Config::parse(&["verbose"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid plugstack.conf argument: `verbose`: expected KEY=VALUE with KEY one of policy, on_policy_error, fallback_audit"
        );
    }
}
