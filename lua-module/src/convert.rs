//! Conversion between Lua tables and policy-core requests and decisions.

use std::collections::BTreeMap;

use mlua::serde::de::Options as DeserializeOptions;
use mlua::serde::ser::Options as SerializeOptions;
use mlua::{Lua, LuaSerdeExt, Table, Value};
use policy_core::{Context, Decision, Request};

/// Field of the request table whose values may be any bytes.
const ENV_FIELD: &str = "env";

/// Builds a controller request from a Lua table with the fields of
/// [`Request`] (`user`, `uid`, `groups`, `options`, `env`, `job_name`,
/// `time_limit_minutes`, ...). Unknown fields are errors that name the field.
/// `context` may be omitted and must otherwise be `controller`.
///
/// Values of `env` come from the job's environment and may be any bytes, so
/// they are converted lossily instead of being rejected.
pub fn request(lua: &Lua, table: &Table) -> Result<Request, String> {
    let copy = lua.create_table().map_err(|error| error.to_string())?;
    let mut env = BTreeMap::new();
    for pair in table.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|error| format!("invalid request table: {error}"))?;
        let Value::String(name) = &key else {
            return Err(format!("invalid request table: key {} is not a string", describe(&key)));
        };
        if name.as_bytes().as_ref() == ENV_FIELD.as_bytes() {
            env = environment(&value)?;
        } else {
            copy.raw_set(key, value).map_err(|error| error.to_string())?;
        }
    }

    let options = DeserializeOptions::new().deny_unsupported_types(true);
    let mut request: Request = lua
        .from_value_with(Value::Table(copy), options)
        .map_err(|error| format!("invalid request table: {error}"))?;
    match request.context {
        Context::Submit if !table.contains_key("context").unwrap_or(false) => request.context = Context::Controller,
        Context::Controller => {}
        other => {
            return Err(format!(
                "invalid request table: `context` is `{}`, but this module only evaluates `controller` requests; \
                 remove the field",
                context_name(other)
            ))
        }
    }
    request.env = env;
    Ok(request)
}

fn environment(value: &Value) -> Result<BTreeMap<String, String>, String> {
    let Value::Table(table) = value else {
        return Err(format!("invalid request table: `env` is {}, expected a table of strings", describe(value)));
    };
    let mut env = BTreeMap::new();
    for pair in table.pairs::<Value, Value>() {
        let (name, value) = pair.map_err(|error| format!("invalid request table: `env`: {error}"))?;
        match (&name, &value) {
            (Value::String(name), Value::String(value)) => {
                env.insert(name.to_string_lossy(), value.to_string_lossy());
            }
            _ => {
                // The value may be a secret, so only its type is shown.
                return Err(format!(
                    "invalid request table: `env` entry {} has a value of type {}; names and values must be strings",
                    describe(&name),
                    value.type_name()
                ))
            }
        }
    }
    Ok(env)
}

/// Converts a decision into a Lua table. Absent optional fields are left out
/// (nil), and `permits` is added: true for `allow` and `would_deny`.
pub fn decision(lua: &Lua, decision: &Decision) -> Result<Value, String> {
    let options = SerializeOptions::new().serialize_none_to_null(false).serialize_unit_to_null(false);
    let value = lua.to_value_with(decision, options).map_err(|error| format!("cannot convert the decision: {error}"))?;
    if let Value::Table(table) = &value {
        table.raw_set("permits", decision.permits()).map_err(|error| error.to_string())?;
    }
    Ok(value)
}

fn context_name(context: Context) -> &'static str {
    match context {
        Context::Submit => "submit",
        Context::Step => "step",
        Context::Controller => "controller",
    }
}

/// Describes a Lua value for an error message. Strings are shown whole, so
/// callers pass only keys and field values, never environment values.
fn describe(value: &Value) -> String {
    match value {
        Value::String(text) => format!("`{}`", text.to_string_lossy()),
        Value::Integer(number) => number.to_string(),
        Value::Number(number) => number.to_string(),
        Value::Boolean(flag) => flag.to_string(),
        Value::Nil => "nil".to_owned(),
        other => format!("a {}", other.type_name()),
    }
}
