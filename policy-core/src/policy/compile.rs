//! Turns the parsed policy file into a [`Policy`], checking every
//! cross-reference and value. All problems are collected as
//! (JSON path, message) pairs; the caller adds line and column.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::binds::parse_bind_list;
use crate::digest::DigestCache;
use crate::hostlist::NodePattern;
use crate::ticket::parse_public_key;
use crate::window::WindowSpec;

use super::model::{
    Allow, BindRoot, Binds, BreakGlass, DenyList, Environment, EnvironmentContainer, ImageEntry, ImageSet, NamedWindow, Template,
};
use super::schema::{BindsSpec, BreakGlassSpec, EnvironmentSpec, PolicyFile};
use super::{AuditSettings, ContainerSettings, Policy};

/// The only policy format version this library reads.
pub const FORMAT_VERSION: u32 = 1;

type Problems = Vec<(String, String)>;

pub fn compile(spec: PolicyFile, sha256: String) -> Result<Policy, Problems> {
    let mut problems: Problems = Vec::new();

    if spec.version != FORMAT_VERSION {
        problems.push((
            "version".to_owned(),
            format!("unsupported policy format version `{}`; this library reads version {FORMAT_VERSION}", spec.version),
        ));
    }

    let windows = compile_windows(&spec.windows, &mut problems);
    let image_sets = compile_image_sets(&spec.images, &mut problems);

    let container = &spec.container;
    check_absolute(&container.runtime, "container.runtime", &mut problems);
    let global_binds = compile_binds(&container.binds, "container.binds", &mut problems);
    check_user_flags(&container.user_flags, "container.user_flags", &mut problems);
    if let Some(directory) = &container.digest_cache {
        check_absolute(directory, "container.digest_cache", &mut problems);
    }

    let global_set = compile_set(&spec.env.set, "env.set", &mut problems);
    let deny = compile_deny(&spec.env.deny, &mut problems);

    let mut approval_keys = BTreeMap::new();
    for (kid, encoded) in &spec.approvals.keys {
        let path = format!("approvals.keys.{kid}");
        if kid.is_empty() {
            problems.push((path.clone(), "key id must not be empty".to_owned()));
        }
        match parse_public_key(encoded) {
            Ok(key) => {
                approval_keys.insert(kid.clone(), key);
            }
            Err(message) => problems.push((path, message)),
        }
    }
    if spec.approvals.max_ttl_hours == 0 {
        problems.push(("approvals.max_ttl_hours".to_owned(), "must be at least 1 hour".to_owned()));
    }

    check_absolute(&spec.audit.path, "audit.path", &mut problems);
    if let Some(textfile) = &spec.metrics.textfile {
        check_absolute(textfile, "metrics.textfile", &mut problems);
    }

    let context = Context {
        windows: &windows,
        window_names: spec.windows.keys().collect(),
        image_sets: &image_sets,
        global_binds: &global_binds,
        global_user_flags: &container.user_flags,
        global_set: &global_set,
        has_keys: !spec.approvals.keys.is_empty(),
    };
    let environments = compile_environments(&spec.environments, &context, &mut problems);
    let environment_lookup = build_lookup(&environments, &mut problems);

    let default_environment = match environment_lookup.get(&spec.default_environment.to_lowercase()) {
        Some(&position) => position,
        None => {
            problems.push((
                "default_environment".to_owned(),
                format!(
                    "default environment `{}` is not defined; expected one of {}",
                    spec.default_environment,
                    quoted_list(environments.iter().map(|environment| environment.name.as_str()))
                ),
            ));
            0
        }
    };

    if !problems.is_empty() {
        return Err(problems);
    }

    let digest_cache = container.digest_cache.as_ref().map(PathBuf::from);
    Ok(Policy {
        sha256,
        version: spec.version,
        mode: spec.mode,
        default_environment,
        environments,
        environment_lookup,
        windows,
        image_sets,
        container: ContainerSettings {
            runtime: PathBuf::from(&container.runtime),
            args: container.args.clone(),
            batch_step: container.batch_step,
            require_root_owned: container.require_root_owned,
            digest_cache: digest_cache.clone(),
        },
        deny,
        on_denied: spec.env.on_denied,
        approval_keys,
        max_ttl_hours: spec.approvals.max_ttl_hours,
        audit: AuditSettings {
            path: PathBuf::from(&spec.audit.path),
            on_error: spec.audit.on_error,
            argv: spec.audit.argv,
        },
        metrics_textfile: spec.metrics.textfile.as_ref().map(PathBuf::from),
        digests: DigestCache::new(digest_cache),
    })
}

/// Global sections that environments refer to or inherit.
struct Context<'a> {
    windows: &'a [NamedWindow],
    window_names: Vec<&'a String>,
    image_sets: &'a [ImageSet],
    global_binds: &'a Binds,
    global_user_flags: &'a [String],
    global_set: &'a BTreeMap<String, Template>,
    has_keys: bool,
}

fn compile_environments(
    specs: &BTreeMap<String, EnvironmentSpec>,
    context: &Context<'_>,
    problems: &mut Problems,
) -> Vec<Environment> {
    if specs.is_empty() {
        problems.push(("environments".to_owned(), "at least one environment is required".to_owned()));
    }
    specs.iter().map(|(name, spec)| compile_environment(name, spec, context, problems)).collect()
}

fn compile_environment(name: &str, spec: &EnvironmentSpec, context: &Context<'_>, problems: &mut Problems) -> Environment {
    let base = format!("environments.{name}");
    if name.trim().is_empty() {
        problems.push((base.clone(), "environment name must not be blank".to_owned()));
    }

    let mut windows = Vec::new();
    for (position, window_name) in spec.windows.iter().enumerate() {
        match context.windows.iter().position(|window| &window.name == window_name) {
            Some(found) => windows.push(found),
            // The window exists but did not compile; its own problems are reported.
            None if context.window_names.contains(&window_name) => {}
            None => problems.push((
                format!("{base}.windows[{position}]"),
                format!(
                    "unknown window `{window_name}`; expected one of {}",
                    quoted_list(context.window_names.iter().map(|name| name.as_str()))
                ),
            )),
        }
    }

    let nodes = spec.nodes.as_ref().map(|entries| {
        let mut patterns = Vec::new();
        for (position, entry) in entries.iter().enumerate() {
            match NodePattern::parse(entry) {
                Ok(pattern) => patterns.push((entry.clone(), pattern)),
                Err(message) => problems.push((format!("{base}.nodes[{position}]"), message)),
            }
        }
        patterns
    });

    if spec.approval.ticket && !context.has_keys {
        problems.push((
            format!("{base}.approval.ticket"),
            "a ticket is required but `approvals.keys` is empty; add the public key that signs tickets".to_owned(),
        ));
    }

    let container = spec.container.as_ref().map(|container| {
        let container_base = format!("{base}.container");
        let mut image_sets = Vec::new();
        for (position, set_name) in container.images.iter().enumerate() {
            match context.image_sets.iter().position(|set| &set.name == set_name) {
                Some(found) => image_sets.push(found),
                None => problems.push((
                    format!("{container_base}.images[{position}]"),
                    format!(
                        "unknown image set `{set_name}`; expected one of {}",
                        quoted_list(context.image_sets.iter().map(|set| set.name.as_str()))
                    ),
                )),
            }
        }
        if container.required && container.images.is_empty() {
            problems.push((
                format!("{container_base}.images"),
                "a container is required but no image set is named; list at least one image set".to_owned(),
            ));
        }
        let binds = match &container.binds {
            Some(binds) => compile_binds(binds, &format!("{container_base}.binds"), problems),
            None => context.global_binds.clone(),
        };
        let user_flags = match &container.user_flags {
            Some(flags) => {
                check_user_flags(flags, &format!("{container_base}.user_flags"), problems);
                flags.clone()
            }
            None => context.global_user_flags.to_vec(),
        };
        EnvironmentContainer { required: container.required, image_sets, binds, user_flags }
    });

    let break_glass = spec.break_glass.as_ref().map(|break_glass| compile_break_glass(break_glass, &base, problems));

    let own_set = compile_set(&spec.env.set, &format!("{base}.env.set"), problems);
    let mut merged = context.global_set.clone();
    merged.extend(own_set);

    Environment {
        name: name.to_owned(),
        risk: spec.risk,
        aliases: spec.aliases.clone(),
        mode: spec.mode,
        allow: spec.allow.as_ref().map(|allow| Allow {
            users: allow.users.iter().cloned().collect(),
            groups: allow.groups.iter().cloned().collect(),
        }),
        windows,
        nodes,
        justification_min_chars: spec.approval.justification_min_chars,
        ticket_required: spec.approval.ticket,
        container,
        set: merged.into_iter().collect(),
        break_glass,
    }
}

fn compile_break_glass(spec: &BreakGlassSpec, environment_base: &str, problems: &mut Problems) -> BreakGlass {
    let base = format!("{environment_base}.break_glass");
    if spec.users.is_empty() && spec.groups.is_empty() {
        problems.push((
            base.clone(),
            "no user or group may break glass; list them in `users` or `groups`, or remove `break_glass`".to_owned(),
        ));
    }
    if spec.max_minutes == 0 {
        problems.push((
            format!("{base}.max_minutes"),
            "must be at least 1 (the longest time limit of a break-glass job, in minutes)".to_owned(),
        ));
    }
    for (field, names) in [("users", &spec.users), ("groups", &spec.groups)] {
        for (position, name) in names.iter().enumerate() {
            if name.trim().is_empty() {
                problems.push((format!("{base}.{field}[{position}]"), "name must not be blank".to_owned()));
            }
        }
    }
    let max_reason = crate::eval::MAX_BREAK_GLASS_REASON_CHARS;
    if spec.reason_min_chars == 0 || spec.reason_min_chars as usize > max_reason {
        problems.push((
            format!("{base}.reason_min_chars"),
            format!(
                "must be from 1 to {max_reason}, so that every break-glass use has a reason to review and a reason can be long enough"
            ),
        ));
    }
    let expires = spec.expires.as_ref().and_then(|text| match text.parse::<jiff::Timestamp>() {
        Ok(timestamp) => Some(timestamp),
        Err(error) => {
            problems.push((
                format!("{base}.expires"),
                format!("invalid time `{text}`: {error}; write an RFC 3339 time such as `2026-12-31T18:00:00Z`"),
            ));
            None
        }
    });
    BreakGlass {
        users: spec.users.iter().cloned().collect(),
        groups: spec.groups.iter().cloned().collect(),
        max_minutes: spec.max_minutes,
        reason_min_chars: spec.reason_min_chars,
        expires,
    }
}

/// Maps lowercase names and aliases to environments, reporting names that
/// collide case-insensitively.
fn build_lookup(environments: &[Environment], problems: &mut Problems) -> BTreeMap<String, usize> {
    let mut lookup: BTreeMap<String, usize> = BTreeMap::new();
    for (position, environment) in environments.iter().enumerate() {
        let key = environment.name.to_lowercase();
        if let Some(&other) = lookup.get(&key) {
            let other_name = environments.get(other).map_or("", |other| other.name.as_str());
            problems.push((
                format!("environments.{}", environment.name),
                format!("environment name `{}` differs from `{other_name}` only by case; names are compared case-insensitively", environment.name),
            ));
        }
        lookup.insert(key, position);
    }
    for (position, environment) in environments.iter().enumerate() {
        for (alias_position, alias) in environment.aliases.iter().enumerate() {
            let path = format!("environments.{}.aliases[{alias_position}]", environment.name);
            let key = alias.to_lowercase();
            if alias.trim().is_empty() {
                problems.push((path, "alias must not be blank".to_owned()));
                continue;
            }
            match lookup.get(&key) {
                Some(&other) if other == position => {}
                Some(&other) => {
                    let other_environment = environments.get(other);
                    let other_name = other_environment.map_or("", |other| other.name.as_str());
                    let claim = if other_environment.is_some_and(|other| other.name.to_lowercase() == key) {
                        "is the name of environment"
                    } else {
                        "is already an alias of environment"
                    };
                    problems.push((
                        path,
                        format!("alias `{alias}` {claim} `{other_name}`; names and aliases must be unique, ignoring case"),
                    ));
                }
                None => {
                    lookup.insert(key, position);
                }
            }
        }
    }
    lookup
}

fn compile_windows(specs: &BTreeMap<String, WindowSpec>, problems: &mut Problems) -> Vec<NamedWindow> {
    let mut windows = Vec::new();
    for (name, spec) in specs {
        let base = format!("windows.{name}");
        match spec.compile() {
            Ok(window) => windows.push(NamedWindow {
                name: name.clone(),
                window,
                description: describe_window(spec),
            }),
            Err(errors) => {
                for (relative, message) in errors {
                    let path = if relative.is_empty() { base.clone() } else { format!("{base}.{relative}") };
                    problems.push((path, message));
                }
            }
        }
    }
    windows
}

/// Describes a window like `mon,tue 08:00-18:00; sat 10:00-12:00 (Europe/London)`.
fn describe_window(spec: &WindowSpec) -> String {
    let slots: Vec<String> =
        spec.weekly.iter().map(|slot| format!("{} {}-{}", slot.days.join(","), slot.start, slot.end)).collect();
    format!("{} ({})", slots.join("; "), spec.timezone)
}

fn compile_image_sets(
    specs: &BTreeMap<String, Vec<super::schema::ImageSpec>>,
    problems: &mut Problems,
) -> Vec<ImageSet> {
    let mut sets = Vec::new();
    for (name, entries) in specs {
        let mut compiled = Vec::with_capacity(entries.len());
        for (position, entry) in entries.iter().enumerate() {
            let base = format!("images.{name}[{position}]");
            let path_ok = check_absolute(&entry.path, &format!("{base}.path"), problems);
            let sha256 = match &entry.sha256 {
                Some(digest) if is_sha256(digest) => Some(digest.to_ascii_lowercase()),
                Some(digest) => {
                    problems.push((
                        format!("{base}.sha256"),
                        format!("malformed sha256 `{digest}`; expected 64 hexadecimal characters"),
                    ));
                    None
                }
                None => None,
            };
            if path_ok {
                compiled.push(ImageEntry {
                    configured: entry.path.clone(),
                    pattern: canonical_pattern(&entry.path),
                    sha256,
                });
            }
        }
        sets.push(ImageSet::new(name.clone(), compiled));
    }
    sets
}

/// Canonicalises the literal directory prefix of an image pattern (the
/// components before the first one with `*`, never the file name itself), so
/// that a pattern under a symlinked directory matches canonical image paths.
fn canonical_pattern(pattern: &str) -> String {
    let components: Vec<&str> = pattern.split('/').collect();
    let literal = components.iter().take_while(|component| !component.contains('*')).count();
    let directory_len = literal.min(components.len().saturating_sub(1));
    if directory_len <= 1 {
        return pattern.to_owned();
    }
    let directory = components.get(..directory_len).map(|parts| parts.join("/")).unwrap_or_default();
    let rest = components.get(directory_len..).map(|parts| parts.join("/")).unwrap_or_default();
    match std::fs::canonicalize(&directory) {
        Ok(canonical) => {
            let canonical = canonical.to_string_lossy();
            if canonical == "/" {
                format!("/{rest}")
            } else {
                format!("{canonical}/{rest}")
            }
        }
        Err(_) => pattern.to_owned(),
    }
}

fn compile_binds(spec: &BindsSpec, base: &str, problems: &mut Problems) -> Binds {
    let mut allow = Vec::new();
    for (position, root) in spec.allow.iter().enumerate() {
        if check_absolute(root, &format!("{base}.allow[{position}]"), problems) {
            let canonical = std::fs::canonicalize(root).unwrap_or_else(|_| trim_trailing_slashes(root));
            allow.push(BindRoot { configured: root.clone(), canonical });
        }
    }
    let mut default = Vec::new();
    for (position, entry) in spec.default.iter().enumerate() {
        let path = format!("{base}.default[{position}]");
        match parse_bind_list(entry) {
            Ok(specs) => {
                for bind in specs {
                    if !Path::new(&bind.source).is_absolute() || has_parent_component(&bind.source) {
                        problems.push((
                            path.clone(),
                            format!("bind source `{}` must be an absolute path without `..`", bind.source),
                        ));
                        continue;
                    }
                    if let Err(message) = bind.check_destination() {
                        problems.push((path.clone(), message));
                        continue;
                    }
                    default.push(bind);
                }
            }
            Err(message) => problems.push((path, message)),
        }
    }
    Binds { allow, default }
}

fn trim_trailing_slashes(path: &str) -> PathBuf {
    let trimmed = path.trim_end_matches('/');
    PathBuf::from(if trimmed.is_empty() { "/" } else { trimmed })
}

fn check_user_flags(flags: &[String], base: &str, problems: &mut Problems) {
    for (position, flag) in flags.iter().enumerate() {
        let valid = flag.len() > 2
            && flag.starts_with("--")
            && !flag.contains('=')
            && !flag.chars().any(char::is_whitespace);
        if !valid {
            problems.push((
                format!("{base}[{position}]"),
                format!("invalid user flag `{flag}`; expected a long option name like `--nv`, without `=` or a value"),
            ));
        }
    }
}

fn compile_set(set: &BTreeMap<String, String>, base: &str, problems: &mut Problems) -> BTreeMap<String, Template> {
    let mut compiled = BTreeMap::new();
    for (name, value) in set {
        let path = format!("{base}.{name}");
        if !is_variable_name(name) {
            problems.push((
                path.clone(),
                format!("invalid variable name `{name}`; expected letters, digits and `_`, not starting with a digit"),
            ));
        }
        match Template::parse(value) {
            Ok(template) => {
                compiled.insert(name.clone(), template);
            }
            Err(message) => problems.push((path, message)),
        }
    }
    compiled
}

fn compile_deny(patterns: &[String], problems: &mut Problems) -> DenyList {
    let mut deny = DenyList::default();
    let mut seen = HashSet::new();
    for (position, pattern) in patterns.iter().enumerate() {
        let valid = !pattern.is_empty() && pattern.chars().all(|character| character == '*' || character == '_' || character.is_ascii_alphanumeric());
        if !valid {
            problems.push((
                format!("env.deny[{position}]"),
                format!("invalid variable pattern `{pattern}`; expected a name of letters, digits and `_`, with `*` as wildcard"),
            ));
            continue;
        }
        if !seen.insert(pattern.clone()) {
            continue;
        }
        if pattern.contains('*') {
            deny.globs.push(pattern.clone());
        } else {
            deny.exact.insert(pattern.clone());
        }
    }
    deny
}

fn is_variable_name(name: &str) -> bool {
    let mut characters = name.chars();
    matches!(characters.next(), Some(first) if first == '_' || first.is_ascii_alphabetic())
        && characters.all(|character| character == '_' || character.is_ascii_alphanumeric())
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

fn has_parent_component(path: &str) -> bool {
    path.split('/').any(|component| component == "..")
}

/// Reports a path that is not absolute or contains `..`; returns true when it is fine.
fn check_absolute(path: &str, json_path: &str, problems: &mut Problems) -> bool {
    if !path.starts_with('/') {
        problems.push((json_path.to_owned(), format!("relative path `{path}`; expected an absolute path starting with `/`")));
        return false;
    }
    if has_parent_component(path) {
        problems.push((json_path.to_owned(), format!("path `{path}` contains `..`; expected a path without `..` components")));
        return false;
    }
    true
}

/// Formats names as `` `a`, `b` ``, or `(none)` when there are none.
pub fn quoted_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names.map(|name| format!("`{name}`")).collect();
    if quoted.is_empty() {
        "(none defined)".to_owned()
    } else {
        quoted.join(", ")
    }
}
