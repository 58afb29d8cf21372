//! `spank_guard`, a Lua 5.1 module that evaluates spank-guard policies in
//! slurmctld's `job_submit/lua` plugin, so the controller rejects a job at
//! submit time with the same rules and messages as the compute node.
//!
//! ```lua
//! local guard = require("spank_guard")
//! local decision, err = guard.evaluate("/etc/slurm/spank-guard/policy.json", request)
//! ```
//!
//! Every function returns its result, or `nil` and an error message. None
//! raises a Lua error, because an error in `slurm_job_submit` makes
//! slurmctld reject the job with a generic message; panics are caught too.
//! See `docs/controller.md` for the request fields and the example hook.

#![deny(unsafe_code)]

mod cache;
mod convert;
mod identity;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use mlua::{Lua, Table, Value};

/// Creates the module table: `version`, `load(path)`,
/// `evaluate(path, request [, now])` and `identity(uid)`.
#[mlua::lua_module(name = "spank_guard")]
fn spank_guard(lua: &Lua) -> mlua::Result<Table> {
    let exports = lua.create_table()?;
    exports.set("version", policy_core::VERSION)?;
    exports.set("load", lua.create_function(|lua, path: Value| Ok(guarded(|| load(lua, &path))))?)?;
    exports.set(
        "evaluate",
        lua.create_function(|lua, (path, request, now): (Value, Value, Value)| {
            Ok(guarded(|| evaluate(lua, &path, &request, &now)))
        })?,
    )?;
    exports.set("identity", lua.create_function(|lua, uid: Value| Ok(guarded(|| identity(lua, &uid))))?)?;
    Ok(exports)
}

/// Runs `body` and turns its error or panic into `nil, message`.
fn guarded(body: impl FnOnce() -> Result<Value, String>) -> (Value, Option<String>) {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => (value, None),
        Ok(Err(message)) => (Value::Nil, Some(message)),
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            (Value::Nil, Some(format!("internal error in spank_guard: {detail}; please report this bug")))
        }
    }
}

/// `load(path)`: loads (or finds in the cache) the policy and returns a
/// summary table: `path`, `sha256`, `version`, `mode`, `default_environment`
/// and `environments` (canonical names, sorted).
fn load(lua: &Lua, path: &Value) -> Result<Value, String> {
    let path = policy_path(path)?;
    let policy = cache::policy(Path::new(&path))?;

    let summary = lua.create_table().map_err(|error| error.to_string())?;
    let environments = lua.create_sequence_from(policy.environment_names()).map_err(|error| error.to_string())?;
    let mode = match policy.mode() {
        policy_core::Mode::Enforce => "enforce",
        policy_core::Mode::Audit => "audit",
    };
    for (key, value) in [
        ("path", Value::String(lua.create_string(&path).map_err(|error| error.to_string())?)),
        ("sha256", Value::String(lua.create_string(policy.sha256()).map_err(|error| error.to_string())?)),
        ("version", Value::Integer(policy.version().into())),
        ("mode", Value::String(lua.create_string(mode).map_err(|error| error.to_string())?)),
        (
            "default_environment",
            Value::String(lua.create_string(policy.default_environment()).map_err(|error| error.to_string())?),
        ),
        ("environments", Value::Table(environments)),
    ] {
        summary.raw_set(key, value).map_err(|error| error.to_string())?;
    }
    Ok(Value::Table(summary))
}

/// `evaluate(path, request [, now])`: evaluates a request table in the
/// controller context and returns the decision table. `now` is Unix seconds
/// and defaults to the current time; tests pass it to pin windows.
fn evaluate(lua: &Lua, path: &Value, request: &Value, now: &Value) -> Result<Value, String> {
    let path = policy_path(path)?;
    let Value::Table(table) = request else {
        return Err(format!("invalid request: expected a table, got {}", request.type_name()));
    };
    let now = match now {
        Value::Nil => jiff::Timestamp::now(),
        Value::Integer(seconds) => timestamp(*seconds)?,
        Value::Number(seconds) if seconds.fract() == 0.0 && seconds.is_finite() => {
            // Lua 5.1 numbers are doubles; whole values up to 2^53 convert to i64 exactly.
            #[allow(clippy::cast_possible_truncation, reason = "checked to be a whole finite number")]
            timestamp(*seconds as i64)?
        }
        other => return Err(format!("invalid time: expected whole Unix seconds, got {}", other.type_name())),
    };

    let policy = cache::policy(Path::new(&path))?;
    let request = convert::request(lua, table)?;
    let decision = policy_core::evaluate(&policy, &request, now);
    convert::decision(lua, &decision)
}

/// `identity(uid)`: returns `{ user = NAME, groups = { NAME, ... } }` for
/// the submitting uid, as the request's `user` and `groups` expect.
fn identity(lua: &Lua, uid: &Value) -> Result<Value, String> {
    let uid = match uid {
        Value::Integer(uid) => u32::try_from(*uid).ok(),
        // Lua 5.1 numbers are doubles: accept whole values in the u32 range.
        Value::Number(uid) if uid.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(uid) => {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "checked to be a whole u32 value")]
            Some(*uid as u32)
        }
        _ => None,
    }
    .ok_or_else(|| format!("invalid uid: expected a whole number from 0 to {}", u32::MAX))?;

    let (user, groups) = identity::resolve(uid)?;
    let table = lua.create_table().map_err(|error| error.to_string())?;
    table.raw_set("user", user).map_err(|error| error.to_string())?;
    table
        .raw_set("groups", lua.create_sequence_from(groups).map_err(|error| error.to_string())?)
        .map_err(|error| error.to_string())?;
    Ok(Value::Table(table))
}

fn policy_path(value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => {
            let path = text.to_str().map_err(|_| "invalid policy path: not UTF-8".to_owned())?.to_owned();
            if path.is_empty() {
                return Err("invalid policy path: empty string".to_owned());
            }
            Ok(path)
        }
        other => Err(format!("invalid policy path: expected a string, got {}", other.type_name())),
    }
}

fn timestamp(seconds: i64) -> Result<jiff::Timestamp, String> {
    jiff::Timestamp::from_second(seconds).map_err(|error| format!("invalid time `{seconds}`: {error}"))
}
