//! `guardctl ticket keygen|issue|verify`.

use policy_core::ticket::{self, Claims};

use crate::cli::{IssueArgs, KeygenArgs, VerifyArgs};
use crate::commands::explain::format_unix;
use crate::failure::{Failure, Status};
use crate::output::print;

/// Writes a new key pair and prints the public key.
pub fn keygen(arguments: &KeygenArgs) -> Result<Status, Failure> {
    let private_path = &arguments.out;
    let public_path = ticket::public_key_path(private_path);

    // The error names the path and, for an existing file, the fix.
    ticket::write_keypair(private_path).map_err(|error| Failure::new(error.to_string()))?;
    let public_key = std::fs::read_to_string(&public_path)
        .map_err(|error| Failure::new(format!("cannot read `{}`: {error}", public_path.display())))?;

    print(&format!(
        "wrote private key {} (mode 0600) and public key {}\n\
         public key: {}\n",
        private_path.display(),
        public_path.display(),
        public_key.trim_end()
    ))?;
    Ok(Status::Success)
}

/// Signs a ticket valid from now for the given lifetime and prints it.
pub fn issue(arguments: &IssueArgs) -> Result<Status, Failure> {
    // The message names the key file and never contains its contents.
    let key = ticket::read_signing_key(&arguments.key).map_err(Failure::new)?;

    let issued_at = jiff::Timestamp::now().as_second();
    let expires_at = issued_at
        .checked_add(arguments.ttl)
        .ok_or_else(|| Failure::new(format!("lifetime of {} seconds is too large", arguments.ttl)))?;
    let claims = Claims {
        kid: arguments.kid.clone(),
        user: arguments.user.clone(),
        env: arguments.environment.clone(),
        iat: issued_at,
        exp: expires_at,
        job_name: arguments.job_name.clone(),
        justification: arguments.justification.clone(),
    };

    print(&format!("{}\n", ticket::issue(&key, &claims)))?;
    Ok(Status::Success)
}

/// Verifies a ticket against the policy and prints its claims.
pub fn verify(arguments: &VerifyArgs) -> Result<Status, Failure> {
    let policy = super::load_policy(&arguments.policy)?;
    let now = arguments.at.unwrap_or_else(jiff::Timestamp::now);

    let claims = ticket::verify(&arguments.ticket, policy.approval_keys(), policy.max_ttl_hours(), now.as_second())
        .map_err(|error| Failure::new(format!("invalid ticket: {error}")))?;

    if arguments.user.is_some() || arguments.environment.is_some() || arguments.job_name.is_some() {
        let user = arguments.user.as_deref().unwrap_or(&claims.user);
        let names = match arguments.environment.as_deref() {
            Some(name) => {
                let canonical = policy.resolve_environment(name).ok_or_else(|| {
                    let known = policy.environment_names().join(", ");
                    Failure::new(format!("unknown environment `{name}`: the policy defines {known}"))
                })?;
                let mut names = vec![canonical];
                names.extend(policy.environment_aliases(canonical));
                names
            }
            None => vec![claims.env.as_str()],
        };
        let job_name = arguments.job_name.as_deref().or(claims.job_name.as_deref());
        ticket::check_binding(&claims, user, &names, job_name)
            .map_err(|error| Failure::new(format!("invalid ticket: {error}")))?;
    }

    print(&format!("{}\n", describe(&claims)))?;
    Ok(Status::Success)
}

/// Returns `valid ticket: kid `k`, user `u`, environment `e`, issued ..., expires ...`
/// followed by the job name and justification when present.
fn describe(claims: &Claims) -> String {
    let mut text = format!(
        "valid ticket: kid `{}`, user `{}`, environment `{}`, issued {}, expires {}",
        claims.kid,
        claims.user,
        claims.env,
        format_unix(claims.iat),
        format_unix(claims.exp)
    );
    if let Some(job_name) = &claims.job_name {
        text.push_str(&format!(", job name `{job_name}`"));
    }
    if let Some(justification) = &claims.justification {
        text.push_str(&format!(", justification `{justification}`"));
    }
    text
}
