//! Audit records: one JSON object per line, appended to the policy's audit
//! file by the enforcement point.
//!
//! Three events share one schema (see `docs/policy.md`): `decision` (one per
//! evaluated step or submission), `step_end` (task count and exit codes) and
//! `policy_error` (the policy could not be loaded). Of the job environment a
//! record contains only the justification, the break-glass reason, the CI
//! evidence variables, the requested bind lists and the correlation id.
//! `env.set` variables appear by name only. Tickets never appear, only their
//! key id and expiry.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::decision::{Decision, Mode, Outcome, Reason, TicketSummary};
use crate::eval::{correlation_id, requested_environment, EnvironmentSource, TICKET_VARIABLE};
use crate::policy::{ArgvMode, Policy};
use crate::request::{Context, GuardOptions, Request};
use crate::rules;

/// Kind of audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A policy decision for a submission or a step.
    Decision,
    /// A step finished.
    StepEnd,
    /// The policy could not be loaded.
    PolicyError,
}

/// One audit record. Fields that do not apply to an event are omitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Position in the journal: 1 for the first record ever written, then
    /// one more per record, across rotated files. Set by
    /// [`crate::journal::append_record`]; absent in records written before
    /// the journal was chained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Lowercase hex sha256 of the previous record's line without its
    /// newline, or [`crate::journal::GENESIS_SHA256`] for the first record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_sha256: Option<String>,
    /// Time of the record, RFC 3339 UTC with milliseconds.
    pub ts: String,
    pub event: Event,
    pub correlation_id: String,
    pub cluster: String,
    pub job_id: Option<u32>,
    pub step_id: Option<u32>,
    pub node: Option<String>,
    pub uid: u32,
    pub user: String,
    /// Canonical environment name; `null` when unknown.
    pub environment: Option<String>,
    pub risk: Option<u32>,
    /// Effective mode; `null` when no policy was loaded.
    pub mode: Option<Mode>,
    /// `allow`, `deny` or `would_deny`; for `step_end` the step's decision.
    pub outcome: Option<Outcome>,
    pub reasons: Vec<Reason>,
    /// The user broke glass: the step ran although window or approval rules
    /// failed. Omitted when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
    /// The reason given with `--guard-break-glass`, as typed, whether or
    /// not break glass was permitted (decision records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass_reason: Option<String>,
    /// Window and approval rules that failed and were waived by break glass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waived: Vec<Reason>,
    /// Time the enforcement point took to load the policy and evaluate the
    /// request, in microseconds (decision records of the plugin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// Changes the enforcement point applied (decision records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effects: Option<AuditEffects>,
    /// Program of the step, when `audit.argv` is `argv0` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv0: Option<String>,
    /// Whole command line, when `audit.argv` is `full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// CI variables found in the job environment, recorded as evidence only.
    #[serde(default, skip_serializing_if = "CiEvidence::is_empty")]
    pub ci: CiEvidence,
    /// Key id and expiry of the verified approval ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<TicketSummary>,
    /// The justification given, as typed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// sha256 of the policy file; `null` when it could not be loaded.
    pub policy_sha256: Option<String>,
    /// Version of policy-core that wrote the record.
    pub version: String,
    /// The request as evaluated, without the ticket and environment values,
    /// so that a later policy can replay it (decision records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RecordedRequest>,
    /// Number of tasks of the step (`step_end`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u32>,
    /// Exit status of each task as Slurm reports it (`step_end`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_codes: Option<Vec<i32>>,
    /// Load error text (`policy_error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Effects of a decision, with variable names but not their values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEffects {
    /// Names of removed variables.
    pub unset: Vec<String>,
    /// Names of variables the policy set.
    pub set: Vec<String>,
    /// The container the step runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<AuditContainer>,
}

/// The container of a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditContainer {
    /// Canonical image path.
    pub image: String,
    /// Verified sha256, when the policy pins the image.
    pub sha256: Option<String>,
    /// Approved binds as passed to the runtime.
    pub binds: Vec<String>,
}

/// CI metadata from the job environment. Never used for decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiEvidence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
}

impl CiEvidence {
    /// Reads `BUILD_URL`, `JOB_NAME`, `BUILD_NUMBER` and `GIT_COMMIT`.
    pub fn from_request(request: &Request) -> CiEvidence {
        let get = |name: &str| request.env.get(name).cloned();
        CiEvidence {
            build_url: get("BUILD_URL"),
            job_name: get("JOB_NAME"),
            build_number: get("BUILD_NUMBER"),
            git_commit: get("GIT_COMMIT"),
        }
    }

    /// Returns true when no CI variable was found.
    pub fn is_empty(&self) -> bool {
        self.build_url.is_none() && self.job_name.is_none() && self.build_number.is_none() && self.git_commit.is_none()
    }
}

/// A bind list as requested, with where it came from (`--guard-bind` or the
/// name of the variable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedBinds {
    pub origin: String,
    pub value: String,
}

/// The parts of a request that decide the outcome, for replay. The ticket is
/// not stored, only whether one was given. Of the job environment only the
/// variable names are stored, plus the values that the evaluator reads:
/// `HOS_ENV` and the bind lists. The justification is in the record itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedRequest {
    pub context: Context,
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Environment name as requested; `null` when the default was used.
    pub environment: Option<String>,
    /// `option` (`--guard-env`), `variable` (`HOS_ENV`) or `default`.
    pub environment_source: String,
    /// Whether a ticket was given (option or `HOS_APPROVAL_TICKET`).
    pub ticket_given: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<RecordedBinds>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_flags: Vec<String>,
    /// Names of every job environment variable, sorted.
    pub env_names: Vec<String>,
}

impl RecordedRequest {
    fn from_request(request: &Request) -> RecordedRequest {
        let requested = requested_environment(request);
        let source = match requested.source {
            EnvironmentSource::Option => "option",
            EnvironmentSource::Variable => "variable",
            EnvironmentSource::Default => "default",
        };
        let mut binds: Vec<RecordedBinds> = request
            .options
            .binds
            .iter()
            .map(|value| RecordedBinds { origin: "--guard-bind".to_owned(), value: value.clone() })
            .collect();
        for name in crate::eval::BIND_VARIABLES {
            if let Some(value) = request.env.get(name) {
                binds.push(RecordedBinds { origin: name.to_owned(), value: value.clone() });
            }
        }
        let ticket_given = request.options.ticket.as_deref().is_some_and(|ticket| !ticket.is_empty())
            || request.env.get(TICKET_VARIABLE).is_some_and(|ticket| !ticket.is_empty());
        RecordedRequest {
            context: request.context,
            groups: request.groups.clone(),
            job_name: request.job_name.clone(),
            environment: requested.name.map(str::to_owned),
            environment_source: source.to_owned(),
            ticket_given,
            image: request.options.image.clone(),
            binds,
            container_flags: request.options.container_flags.clone(),
            env_names: request.env.keys().cloned().collect(),
        }
    }
}

impl AuditRecord {
    /// Builds the `decision` record of `decision`, which `policy` made for `request`.
    pub fn decision(policy: &Policy, request: &Request, decision: &Decision, now: Timestamp) -> AuditRecord {
        let effects = &decision.effects;
        let mut record = AuditRecord::common(request, Event::Decision, decision.correlation_id.clone(), now);
        record.environment = decision.environment.clone();
        record.risk = decision.risk;
        record.mode = Some(decision.mode);
        record.outcome = Some(decision.outcome);
        record.reasons = decision.reasons.clone();
        record.break_glass = decision.break_glass;
        record.break_glass_reason = crate::eval::break_glass_reason(request).map(str::to_owned);
        record.waived = decision.waived.clone();
        record.effects = Some(AuditEffects {
            unset: effects.unset.clone(),
            set: effects.set.keys().cloned().collect(),
            container: effects.container.as_ref().map(|launch| AuditContainer {
                image: launch.image.clone(),
                sha256: launch.image_sha256.clone(),
                binds: launch.binds.clone(),
            }),
        });
        if policy.audit().argv == ArgvMode::Full {
            record.argv0 = None;
            record.argv = Some(request.argv.clone());
        }
        record.ticket = decision.ticket.clone();
        record.justification = crate::eval::justification(request).map(str::to_owned);
        record.policy_sha256 = Some(decision.policy_sha256.clone());
        record.request = Some(RecordedRequest::from_request(request));
        record
    }

    /// Builds the `step_end` record of a step with `tasks` tasks and their
    /// exit statuses; `decision` is the step's decision when the policy loaded.
    pub fn step_end(
        request: &Request,
        decision: Option<&Decision>,
        tasks: u32,
        exit_codes: &[i32],
        now: Timestamp,
    ) -> AuditRecord {
        let id = decision.map_or_else(|| correlation_id(request, now), |decision| decision.correlation_id.clone());
        let mut record = AuditRecord::common(request, Event::StepEnd, id, now);
        if let Some(decision) = decision {
            record.environment = decision.environment.clone();
            record.risk = decision.risk;
            record.mode = Some(decision.mode);
            record.outcome = Some(decision.outcome);
            record.policy_sha256 = Some(decision.policy_sha256.clone());
        }
        record.tasks = Some(tasks);
        record.exit_codes = Some(exit_codes.to_vec());
        record
    }

    /// Builds the `policy_error` record for a policy that could not be
    /// loaded. `outcome` is the enforcement point's action (`deny` or
    /// `allow`), taken from its `on_policy_error` setting.
    pub fn policy_error(request: &Request, error: &str, outcome: Outcome, now: Timestamp) -> AuditRecord {
        let mut record = AuditRecord::common(request, Event::PolicyError, correlation_id(request, now), now);
        record.outcome = Some(outcome);
        record.reasons = vec![Reason { rule: rules::POLICY_INVALID.to_owned(), message: error.to_owned() }];
        record.error = Some(error.to_owned());
        record
    }

    fn common(request: &Request, event: Event, correlation_id: String, now: Timestamp) -> AuditRecord {
        AuditRecord {
            seq: None,
            prev_sha256: None,
            ts: format_timestamp(now),
            event,
            correlation_id,
            cluster: request.cluster.clone(),
            job_id: request.job_id,
            step_id: request.step_id,
            node: request.node.clone(),
            uid: request.uid,
            user: request.user.clone(),
            environment: None,
            risk: None,
            mode: None,
            outcome: None,
            reasons: Vec::new(),
            break_glass: false,
            break_glass_reason: None,
            waived: Vec::new(),
            duration_us: None,
            effects: None,
            argv0: Some(request.argv.first().cloned().unwrap_or_default()),
            argv: None,
            ci: CiEvidence::from_request(request),
            ticket: None,
            justification: None,
            policy_sha256: None,
            version: crate::VERSION.to_owned(),
            request: None,
            tasks: None,
            exit_codes: None,
            error: None,
        }
    }

    /// Serialises the record as one JSON line ending in `\n`. serde_json
    /// escapes newlines and control characters inside strings, so the only
    /// raw newline is the last byte.
    pub fn to_json_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|error| {
            // Only maps with non-string keys fail to serialise, and the record
            // has none; keep a parseable line anyway.
            serde_json::json!({ "event": self.event, "ts": self.ts, "error": format!("cannot serialise audit record: {error}") })
                .to_string()
        });
        line.push('\n');
        line
    }

    /// Rebuilds a request from a decision record for replay against another
    /// policy. Environment values other than `HOS_ENV`, the justification and
    /// the bind lists were not recorded, so they come back empty. The ticket
    /// is missing too, so ticket rules fail unless the caller supplies one.
    pub fn replay_request(&self) -> Option<Request> {
        let recorded = self.request.as_ref()?;
        let mut env: std::collections::BTreeMap<String, String> =
            recorded.env_names.iter().map(|name| (name.clone(), String::new())).collect();
        let mut options = GuardOptions {
            justification: self.justification.clone(),
            image: recorded.image.clone(),
            container_flags: recorded.container_flags.clone(),
            break_glass: self.break_glass_reason.clone(),
            ..GuardOptions::default()
        };
        match recorded.environment_source.as_str() {
            "option" => options.env = recorded.environment.clone(),
            "variable" => {
                env.insert(crate::eval::ENVIRONMENT_VARIABLE.to_owned(), recorded.environment.clone().unwrap_or_default());
            }
            _ => {}
        }
        for binds in &recorded.binds {
            if binds.origin == "--guard-bind" {
                options.binds.push(binds.value.clone());
            } else {
                env.insert(binds.origin.clone(), binds.value.clone());
            }
        }
        env.insert(crate::eval::CORRELATION_ID_VARIABLE.to_owned(), self.correlation_id.clone());
        Some(Request {
            context: recorded.context,
            cluster: self.cluster.clone(),
            job_id: self.job_id,
            step_id: self.step_id,
            node: self.node.clone(),
            uid: self.uid,
            user: self.user.clone(),
            groups: recorded.groups.clone(),
            options,
            env,
            argv: self.argv.clone().or_else(|| self.argv0.clone().map(|argv0| vec![argv0])).unwrap_or_default(),
            job_name: recorded.job_name.clone(),
            ..Request::default()
        })
    }
}

/// Formats a timestamp as RFC 3339 UTC with milliseconds, like `2026-12-04T20:15:03.042Z`.
pub fn format_timestamp(now: Timestamp) -> String {
    let millis = Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now);
    millis.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Appends one record line to `path` with a single `write` on an `O_APPEND`
/// descriptor, so that records of concurrent steps never interleave on a
/// local file system. Creates the parent directory (mode 0750) and the file
/// (mode 0640) when missing. The line must end in its only newline. A short
/// write is an error.
///
/// NOTE: on NFS, `O_APPEND` is not atomic across clients; keep the audit file
/// on a node-local file system.
pub fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    let body_ok = line.strip_suffix('\n').is_some_and(|body| !body.contains('\n'));
    if !body_ok {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "audit line must end with its only newline",
        ));
    }
    create_parent_directory(path)?;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    let bytes = line.as_bytes();
    let written = loop {
        match file.write(bytes) {
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    if written != bytes.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short write to audit file: {written} of {} bytes", bytes.len()),
        ));
    }
    Ok(())
}

/// Creates the parent directory of `path` with mode 0750 when missing.
pub(crate) fn create_parent_directory(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        if !parent.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o750).create(parent)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_has_milliseconds_and_z() {
        let now: Timestamp = "2026-12-04T20:15:03.042917Z".parse().unwrap();
        assert_eq!(format_timestamp(now), "2026-12-04T20:15:03.042Z");
        let whole: Timestamp = "2026-12-04T20:15:03Z".parse().unwrap();
        assert_eq!(format_timestamp(whole), "2026-12-04T20:15:03.000Z");
    }

    #[test]
    fn append_rejects_embedded_newline() {
        let directory = tempfile::tempdir().unwrap();
        let error = append_line(&directory.path().join("a.jsonl"), "{}\n{}\n").unwrap_err();
        assert_eq!(error.to_string(), "audit line must end with its only newline");
    }

    #[test]
    fn append_creates_directory_and_file_modes() {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("log/spank-guard/audit.jsonl");
        append_line(&path, "{\"a\":1}\n").unwrap();
        append_line(&path, "{\"a\":2}\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"a\":2}\n");
        let file_mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let directory_mode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
        // The process umask can only remove bits.
        assert_eq!(file_mode & !0o640, 0);
        assert_eq!(directory_mode & !0o750, 0);
    }
}
