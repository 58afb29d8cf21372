//! Approval tickets: short-lived grants signed with Ed25519.
//!
//! A ticket is `v1.<claims>.<signature>`, where `<claims>` is the claims JSON
//! in base64url without padding and `<signature>` is the base64url (no
//! padding) Ed25519 signature over the bytes before the last dot, that is
//! over `v1.<claims>`. The policy lists the public keys under
//! `approvals.keys`, and the claim `kid` names the key that signed.
//!
//! Key files hold standard base64 with padding and a final newline: the
//! private key file the 32-byte Ed25519 seed, the public key file the 32-byte
//! public key, which is also the form `approvals.keys` expects.
//!
//! Error messages never contain the ticket, its signature or a private key.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Version prefix of the only token format this library issues and accepts.
pub const TOKEN_VERSION: &str = "v1";
/// How far `iat` may lie in the future, to allow for clock differences
/// between the issuing host and the node, in seconds.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 300;
/// Maximum token length in bytes. Real tickets are a few hundred bytes.
pub const MAX_TOKEN_BYTES: usize = 8192;

const RENEW_HINT: &str = "ask for a new ticket with `guardctl ticket issue`";

/// Claims of an approval ticket, signed by the approver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Name of the signing key in the policy's `approvals.keys`.
    pub kid: String,
    /// User name the ticket is for.
    pub user: String,
    /// Environment the ticket is for: its canonical name or an alias.
    pub env: String,
    /// Issue time, Unix seconds.
    pub iat: i64,
    /// Expiry time, Unix seconds, exclusive: the ticket is invalid from `exp` on.
    pub exp: i64,
    /// When set, the ticket is only valid for jobs with this exact name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// The approver's reason, recorded in the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
}

/// Why a ticket was rejected. The `Display` text is meant for the user who
/// submitted the job: it states what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// The token does not have the `v1.<claims>.<signature>` shape, or its
    /// parts do not decode.
    #[error("approval ticket is malformed: {problem}; {RENEW_HINT}")]
    Malformed {
        /// Description of the problem, without the token itself.
        problem: String,
    },
    /// The token has another version prefix.
    #[error("approval ticket has version `{version}`, but only `v1` tickets are accepted; {RENEW_HINT}")]
    UnsupportedVersion {
        /// The prefix before the first dot.
        version: String,
    },
    /// The `kid` claim names no key in the policy.
    #[error(
        "approval ticket is signed with key `{kid}`, which is not in the policy's approvals.keys \
         (known keys: {}); {RENEW_HINT} signed with a listed key",
        known_list(.known)
    )]
    UnknownKey {
        /// The `kid` claim.
        kid: String,
        /// Names of the keys in the policy.
        known: Vec<String>,
    },
    /// The signature does not verify with the named key.
    #[error(
        "approval ticket signature is not valid for key `{kid}`: the ticket was altered or signed with \
         another key; {RENEW_HINT}"
    )]
    BadSignature {
        /// The `kid` claim.
        kid: String,
    },
    /// `exp` is at or before the current time.
    #[error("approval ticket expired at {} ({} s ago); {RENEW_HINT}", format_unix(*.exp), .now.saturating_sub(*.exp))]
    Expired {
        /// The `exp` claim.
        exp: i64,
        /// The time of the check.
        now: i64,
    },
    /// `iat` is more than [`MAX_CLOCK_SKEW_SECONDS`] in the future.
    #[error(
        "approval ticket is issued at {}, {} s in the future, more than the {MAX_CLOCK_SKEW_SECONDS} s \
         allowed for clock differences; check the clocks of the issuing host and this node, or {RENEW_HINT}",
        format_unix(*.iat), .iat.saturating_sub(*.now)
    )]
    IssuedInFuture {
        /// The `iat` claim.
        iat: i64,
        /// The time of the check.
        now: i64,
    },
    /// `exp - iat` is longer than the policy's `max_ttl_hours`.
    #[error(
        "approval ticket is valid for {lifetime_seconds} s (exp - iat), more than the policy's \
         max_ttl_hours of {max_ttl_hours} h ({} s); ask for a new ticket with a shorter \
         `guardctl ticket issue --ttl`",
        u64::from(*.max_ttl_hours) * 3600
    )]
    LifetimeTooLong {
        /// `exp - iat`, saturated on overflow.
        lifetime_seconds: i64,
        /// The policy's limit.
        max_ttl_hours: u32,
    },
    /// The ticket is for another user.
    #[error("approval ticket is for user `{ticket_user}`, not `{user}`; ask for a new ticket with \
         `guardctl ticket issue --user {user}`")]
    WrongUser {
        /// The `user` claim.
        ticket_user: String,
        /// The user of the job.
        user: String,
    },
    /// The ticket is for another environment.
    #[error("approval ticket is for environment `{ticket_env}`, not `{env}`; ask for a new ticket with \
         `guardctl ticket issue --env {env}`")]
    WrongEnvironment {
        /// The `env` claim.
        ticket_env: String,
        /// The canonical name of the requested environment.
        env: String,
    },
    /// The ticket is bound to a job name the job does not have.
    #[error(
        "approval ticket is for job name `{ticket_job_name}`, but this job {}; set the job name with \
         `--job-name {ticket_job_name}` or {RENEW_HINT}",
        match .job_name { Some(name) => format!("is named `{name}`"), None => "has no name".to_string() }
    )]
    WrongJobName {
        /// The `job_name` claim.
        ticket_job_name: String,
        /// The job's name, if any.
        job_name: Option<String>,
    },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    }
}

fn format_unix(seconds: i64) -> String {
    match jiff::Timestamp::from_second(seconds) {
        Ok(ts) => ts.to_string(),
        Err(_) => format!("Unix time {seconds}"),
    }
}

fn malformed(problem: impl Into<String>) -> TicketError {
    TicketError::Malformed { problem: problem.into() }
}

/// Signs `claims` with `key` and returns the token. Ed25519 signatures are
/// deterministic, so the same key and claims always give the same token.
pub fn issue(key: &SigningKey, claims: &Claims) -> String {
    // INVARIANT: `Claims` has only string and integer fields, so serializing
    // it cannot fail. An empty result would give a token that never verifies.
    let claims_json = serde_json::to_vec(claims).unwrap_or_default();
    let signed = format!("{TOKEN_VERSION}.{}", URL_SAFE_NO_PAD.encode(claims_json));
    let signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// Checks the format, key, signature and times of `token` and returns its
/// claims. `now_unix` is the current time in Unix seconds.
///
/// The checks run in this order: format, known `kid`, signature, expiry
/// (`exp <= now`), issue time (`iat > now + 300`), then lifetime
/// (`exp - iat` above `max_ttl_hours`). The binding to a user, environment
/// and job name is checked separately by [`check_binding`].
///
/// # Errors
///
/// Returns the first failed check as a [`TicketError`].
pub fn verify(
    token: &str,
    keys: &BTreeMap<String, VerifyingKey>,
    max_ttl_hours: u32,
    now_unix: i64,
) -> Result<Claims, TicketError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed(format!("it is longer than {MAX_TOKEN_BYTES} bytes")));
    }
    let token = token.trim();
    let Some((version, rest)) = token.split_once('.') else {
        return Err(malformed("expected three parts `v1.<claims>.<signature>` separated by dots"));
    };
    if version != TOKEN_VERSION {
        return Err(unsupported_version(version));
    }
    let Some((claims_part, signature_part)) = rest.split_once('.') else {
        return Err(malformed("expected three parts `v1.<claims>.<signature>` separated by dots"));
    };
    if signature_part.contains('.') {
        return Err(malformed("it has more than three dot-separated parts"));
    }

    let claims_json = URL_SAFE_NO_PAD
        .decode(claims_part)
        .map_err(|_| malformed("the claims part is not base64url without padding"))?;
    let signature_bytes = URL_SAFE_NO_PAD
        .decode(signature_part)
        .map_err(|_| malformed("the signature part is not base64url without padding"))?;
    let signature_bytes: [u8; 64] = signature_bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| malformed(format!("the signature is {} bytes, expected 64", bytes.len())))?;
    let claims: Claims = serde_json::from_slice(&claims_json)
        .map_err(|error| malformed(format!("the claims are not valid ticket claims: {error}")))?;

    let Some(key) = keys.get(&claims.kid) else {
        return Err(TicketError::UnknownKey { kid: claims.kid, known: keys.keys().cloned().collect() });
    };
    // The signed bytes are everything before the last dot: `v1.<claims>`.
    let signed_len = token.len() - signature_part.len() - 1;
    let signed = token.as_bytes().get(..signed_len).unwrap_or_default();
    if key.verify_strict(signed, &Signature::from_bytes(&signature_bytes)).is_err() {
        return Err(TicketError::BadSignature { kid: claims.kid });
    }

    check_times(&claims, max_ttl_hours, now_unix)?;
    Ok(claims)
}

fn unsupported_version(version: &str) -> TicketError {
    let looks_like_version = version.len() <= 4
        && version.strip_prefix('v').is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    if looks_like_version {
        TicketError::UnsupportedVersion { version: version.to_string() }
    } else {
        malformed("it does not start with `v1.`")
    }
}

fn check_times(claims: &Claims, max_ttl_hours: u32, now: i64) -> Result<(), TicketError> {
    if claims.exp <= now {
        return Err(TicketError::Expired { exp: claims.exp, now });
    }
    if claims.iat > now.saturating_add(MAX_CLOCK_SKEW_SECONDS) {
        return Err(TicketError::IssuedInFuture { iat: claims.iat, now });
    }
    if claims.exp <= claims.iat {
        return Err(malformed("its expiry time exp is not after its issue time iat"));
    }
    let lifetime_seconds = claims.exp.saturating_sub(claims.iat);
    if lifetime_seconds > i64::from(max_ttl_hours) * 3600 {
        return Err(TicketError::LifetimeTooLong { lifetime_seconds, max_ttl_hours });
    }
    Ok(())
}

/// Checks that verified `claims` are for `user`, for the environment known by
/// `env_names` (canonical name first, then aliases; compared
/// case-insensitively), and, when the ticket names a job, for a job of that
/// exact name. A ticket without `job_name` is valid for any job name.
///
/// # Errors
///
/// Returns [`TicketError::WrongUser`], [`TicketError::WrongEnvironment`] or
/// [`TicketError::WrongJobName`] for the first binding that does not hold.
pub fn check_binding(
    claims: &Claims,
    user: &str,
    env_names: &[&str],
    job_name: Option<&str>,
) -> Result<(), TicketError> {
    if claims.user != user {
        return Err(TicketError::WrongUser { ticket_user: claims.user.clone(), user: user.to_string() });
    }
    if !env_names.iter().any(|name| name.eq_ignore_ascii_case(&claims.env)) {
        return Err(TicketError::WrongEnvironment {
            ticket_env: claims.env.clone(),
            env: env_names.first().copied().unwrap_or_default().to_string(),
        });
    }
    if let Some(ticket_job_name) = &claims.job_name {
        if job_name != Some(ticket_job_name.as_str()) {
            return Err(TicketError::WrongJobName {
                ticket_job_name: ticket_job_name.clone(),
                job_name: job_name.map(str::to_string),
            });
        }
    }
    Ok(())
}

/// Parses a public key written as standard base64 of its 32 bytes, as in the
/// policy's `approvals.keys` and in `.pub` files.
///
/// # Errors
///
/// Returns a message when the text is not base64, not 32 bytes, not a curve
/// point, or a weak (small-order) key, which would accept forged signatures.
pub fn parse_public_key(b64: &str) -> Result<VerifyingKey, String> {
    let bytes = STANDARD
        .decode(b64.trim())
        .map_err(|_| "invalid Ed25519 public key: not standard base64 (A-Z a-z 0-9 + / with = padding)".to_string())?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|bytes: Vec<u8>| {
        format!("invalid Ed25519 public key: decodes to {} bytes, expected 32", bytes.len())
    })?;
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| "invalid Ed25519 public key: the bytes are not a point on the curve".to_string())?;
    if key.is_weak() {
        return Err("invalid Ed25519 public key: it is a weak (small-order) key that would accept forged signatures"
            .to_string());
    }
    Ok(key)
}

/// Generates a new key pair and writes the seed to `out` (mode 0600) and the
/// public key to `out` + `.pub` (mode 0644), each as base64 and a newline.
///
/// The seed comes from the kernel's `getrandom(2)`, which blocks until the
/// entropy pool is initialised.
///
/// # Errors
///
/// Fails with `AlreadyExists` when either file exists (nothing is
/// overwritten), and with the I/O error naming the path when a write fails.
/// When the public key cannot be written, the new private key file is
/// removed again.
pub fn write_keypair(out: &Path) -> io::Result<()> {
    let public_path = public_key_path(out);
    for path in [out, public_path.as_path()] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("`{}` already exists; remove it or choose another output path", path.display()),
            ));
        }
    }

    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|error| io::Error::other(format!("failed to read random bytes for a new key: {error}")))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);

    write_new_file(out, 0o600, &format!("{}\n", STANDARD.encode(key.to_bytes())))?;
    let public_line = format!("{}\n", STANDARD.encode(key.verifying_key().to_bytes()));
    if let Err(error) = write_new_file(&public_path, 0o644, &public_line) {
        // NOTE: best effort; the error that matters is the one returned.
        let _ = fs::remove_file(out);
        return Err(error);
    }
    Ok(())
}

/// Returns `out` with `.pub` appended to its file name.
pub fn public_key_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_os_string();
    name.push(".pub");
    PathBuf::from(name)
}

fn write_new_file(path: &Path, mode: u32, contents: &str) -> io::Result<()> {
    let with_path = |error: io::Error| {
        let message = if error.kind() == io::ErrorKind::AlreadyExists {
            format!("`{}` already exists; remove it or choose another output path", path.display())
        } else {
            format!("failed to write `{}`: {error}", path.display())
        };
        io::Error::new(error.kind(), message)
    };
    let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(with_path)?;
    file.write_all(contents.as_bytes()).map_err(with_path)?;
    file.sync_all().map_err(with_path)
}

/// Reads a private key file written by [`write_keypair`].
///
/// # Errors
///
/// Returns a message naming the path when the file cannot be read, is
/// readable or writable by group or others (like ssh, because anyone who can
/// read it can issue tickets), or does not hold base64 of a 32-byte seed.
/// The message never contains the file's contents.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, String> {
    let display = path.display();
    let metadata = fs::metadata(path).map_err(|error| format!("cannot read key file `{display}`: {error}"))?;
    let mode = metadata.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "key file `{display}` is accessible by group or others (mode {mode:04o}); run `chmod 600 {display}`"
        ));
    }
    let text = fs::read_to_string(path).map_err(|error| format!("cannot read key file `{display}`: {error}"))?;
    let bytes = STANDARD.decode(text.trim()).map_err(|_| {
        format!("key file `{display}` is not a private key: expected one line of base64 (from `guardctl ticket keygen`)")
    })?;
    let seed: [u8; 32] = bytes.try_into().map_err(|bytes: Vec<u8>| {
        format!("key file `{display}` is not a private key: it decodes to {} bytes, expected 32", bytes.len())
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

#[cfg(test)]
mod tests;
