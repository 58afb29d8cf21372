//! Rules `container.required`, `container.image`, `container.bind`,
//! `container.flag` and `container.runtime`, and the container launch effect.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::binds::{format_bind_argument, parse_bind_list, BindMode, BindSpec};
use crate::decision::{ContainerLaunch, Effects, Reason};
use crate::flags::{check_flag, split_flag_list};
use crate::paths::{canonicalize_abs, is_within};
use crate::policy::model::{BindRoot, Environment, EnvironmentContainer, ImageEntry};
use crate::policy::{BatchStep, Policy};
use crate::request::{Context, Request};
use crate::rules;

use super::{quoted_names, reason};

/// Step id Slurm gives the batch script (`SLURM_BATCH_SCRIPT`, 0xfffffffb).
pub const BATCH_STEP_ID: u32 = 0xffff_fffb;

/// Job environment variables from which Apptainer reads extra binds, in the
/// order they are checked.
pub const BIND_VARIABLES: [&str; 4] = ["APPTAINER_BIND", "APPTAINER_BINDPATH", "SINGULARITY_BIND", "SINGULARITY_BINDPATH"];

/// Entries listed in a message before "and N more".
const LIST_LIMIT: usize = 5;

pub(super) fn check(
    policy: &Policy,
    environment: &Environment,
    request: &Request,
    reasons: &mut Vec<Reason>,
    effects: &mut Effects,
    deferred: &mut Vec<String>,
) {
    let image = request.options.image.as_deref().filter(|image| !image.is_empty());
    let container = environment.container.as_ref().filter(|container| !container.image_sets.is_empty());

    let (Some(image), Some(container)) = (image, container) else {
        check_without_container(policy, environment, container, image, request, reasons);
        return;
    };

    if request.context == Context::Controller {
        check_at_controller(container, request, reasons, deferred);
        return;
    }

    let before = reasons.len();
    let checked_image = match check_image(policy, container, image) {
        Ok(checked) => Some(checked),
        Err(message) => {
            reasons.push(reason(rules::CONTAINER_IMAGE, message));
            None
        }
    };
    let binds = check_binds(container, request, reasons);
    let flags = check_flags(container, request, reasons);
    if let Err(message) = check_runtime(&policy.container.runtime) {
        reasons.push(reason(rules::CONTAINER_RUNTIME, message));
    }
    let Some((image_path, image_sha256)) = checked_image else {
        return;
    };
    if reasons.len() != before {
        return;
    }

    // With `batch_step: host` the batch script runs on the host after the
    // same checks; the srun steps it starts are wrapped.
    if request.step_id == Some(BATCH_STEP_ID) && policy.container.batch_step == BatchStep::Host {
        return;
    }

    let image_text = image_path.to_string_lossy().into_owned();
    let mut argv_prefix = Vec::with_capacity(3 + policy.container.args.len() + binds.len() * 2 + flags.len());
    argv_prefix.push(policy.container.runtime.to_string_lossy().into_owned());
    argv_prefix.push("exec".to_owned());
    argv_prefix.extend(policy.container.args.iter().cloned());
    for bind in &binds {
        argv_prefix.push("--bind".to_owned());
        argv_prefix.push(bind.clone());
    }
    argv_prefix.extend(flags);
    argv_prefix.push(image_text.clone());

    // Apptainer reads these variables itself; they could add binds or switch
    // on writable, fakeroot and similar modes behind the policy's back.
    for name in request.env.keys() {
        if name.starts_with("APPTAINER_") || name.starts_with("SINGULARITY_") {
            effects.unset.push(name.clone());
        }
    }
    effects.container = Some(ContainerLaunch { argv_prefix, image: image_text, image_sha256, binds });
}

/// Reports the container rules when no container will be used: a required
/// container that is missing, or an image, binds or flags given where the
/// environment allows no container.
fn check_without_container(
    policy: &Policy,
    environment: &Environment,
    container: Option<&EnvironmentContainer>,
    image: Option<&str>,
    request: &Request,
    reasons: &mut Vec<Reason>,
) {
    if let Some(image) = image {
        reasons.push(reason(
            rules::CONTAINER_IMAGE,
            format!(
                "environment `{}` allows no container images, so image `{image}` cannot be used; \
                 remove `--guard-image` or choose an environment with image sets",
                environment.name
            ),
        ));
    } else if let Some(container) = container.filter(|container| container.required) {
        reasons.push(reason(
            rules::CONTAINER_REQUIRED,
            format!(
                "environment `{}` requires a container; pass `--guard-image=PATH` with an image from {} (allowed paths: {})",
                environment.name,
                image_set_names(policy, container),
                allowed_image_paths(policy, container)
            ),
        ));
    }
    if image.is_none() && request.options.binds.iter().any(|entry| !entry.is_empty()) {
        reasons.push(reason(
            rules::CONTAINER_BIND,
            "`--guard-bind` only applies to a container; add `--guard-image=PATH` or remove `--guard-bind`".to_owned(),
        ));
    }
    if image.is_none() && request.options.container_flags.iter().any(|entry| !entry.is_empty()) {
        reasons.push(reason(
            rules::CONTAINER_FLAG,
            "`--guard-container-flags` only applies to a container; add `--guard-image=PATH` or remove `--guard-container-flags`"
                .to_owned(),
        ));
    }
}

/// Checks what slurmctld can check without the compute node's file system:
/// the syntax and destinations of the requested binds and the container
/// flags. The image (path, ownership, digest), the bind sources (which are
/// canonicalised on the node) and the runtime are deferred to the node.
/// No launch effect is produced because the controller starts no task.
fn check_at_controller(
    container: &EnvironmentContainer,
    request: &Request,
    reasons: &mut Vec<Reason>,
    deferred: &mut Vec<String>,
) {
    for (origin, spec) in requested_binds(request, reasons) {
        if let Err(message) = spec.check_destination() {
            reasons.push(reason(rules::CONTAINER_BIND, format!("bind `{}` in {origin}: {message}", bind_text(&spec))));
        }
    }
    check_flags(container, request, reasons);
    deferred.extend([rules::CONTAINER_IMAGE, rules::CONTAINER_BIND, rules::CONTAINER_RUNTIME].map(str::to_owned));
}

/// Parses every requested bind list and returns each bind with where it came
/// from. A list that does not parse adds a `container.bind` reason instead.
fn requested_binds(request: &Request, reasons: &mut Vec<Reason>) -> Vec<(&'static str, BindSpec)> {
    let mut binds = Vec::new();
    for (origin, entry) in requested_bind_lists(request) {
        match parse_bind_list(entry) {
            Ok(specs) => binds.extend(specs.into_iter().map(|spec| (origin, spec))),
            Err(message) => {
                reasons.push(reason(rules::CONTAINER_BIND, format!("invalid bind list `{entry}` in {origin}: {message}")))
            }
        }
    }
    binds
}

/// Returns the non-empty bind lists of a request with where each came from:
/// every `--guard-bind` value, then the Apptainer bind variables.
fn requested_bind_lists(request: &Request) -> impl Iterator<Item = (&'static str, &str)> {
    let from_options = request.options.binds.iter().map(|entry| ("`--guard-bind`", entry.as_str()));
    let from_variables = BIND_VARIABLES
        .iter()
        .filter_map(|&name| request.env.get(name).map(|value| (variable_origin(name), value.as_str())));
    from_options.chain(from_variables).filter(|(_, entry)| !entry.is_empty())
}

/// Checks the requested image; returns its canonical path and, when a
/// matching entry pins a digest, the verified sha256.
fn check_image(policy: &Policy, container: &EnvironmentContainer, image: &str) -> Result<(PathBuf, Option<String>), String> {
    // Every message about an unusable path ends with the images the user may pick.
    let allowed = || {
        format!("allowed image sets: {}; allowed paths: {}", image_set_names(policy, container), allowed_image_paths(policy, container))
    };
    let canonical = canonicalize_abs(image).map_err(|message| format!("cannot use image: {message}; {}", allowed()))?;
    let shown = shown_path(image, &canonical);
    let metadata = std::fs::metadata(&canonical).map_err(|error| format!("image {shown}: {error}; {}", allowed()))?;
    if !metadata.is_file() {
        return Err(format!("image {shown} is not a regular file; pass the path of an image file ({})", allowed()));
    }
    let text = canonical.to_string_lossy();

    let mut matched = false;
    let mut pins: Vec<(&str, &ImageEntry)> = Vec::new();
    for set in container.image_sets.iter().filter_map(|&position| policy.image_sets.get(position)) {
        set.for_each_match(&text, |entry| {
            matched = true;
            if entry.sha256.is_some() {
                pins.push((set.name.as_str(), entry));
            }
        });
    }
    if !matched {
        return Err(format!(
            "image {shown} is not in an allowed image set ({}); allowed paths: {}",
            image_set_names(policy, container),
            allowed_image_paths(policy, container)
        ));
    }

    if policy.container.require_root_owned {
        check_root_owned(&canonical).map_err(|message| {
            format!("image {shown} could be replaced by a non-root user: {message}; keep images in directories that only root can write")
        })?;
    }

    // Pins are stricter than globs: when any matching entry pins a digest,
    // the file must have one of the pinned digests.
    if pins.is_empty() {
        return Ok((canonical, None));
    }
    let actual = policy.digests.sha256(&canonical).map_err(|error| format!("image {shown}: cannot compute sha256: {error}"))?;
    if pins.iter().any(|(_, entry)| entry.sha256.as_deref() == Some(actual.as_str())) {
        return Ok((canonical, Some(actual)));
    }
    let expected: Vec<String> = pins
        .iter()
        .map(|(set, entry)| format!("`{}` (set `{set}`)", entry.sha256.as_deref().unwrap_or("")))
        .collect();
    Err(format!(
        "image {shown} has sha256 `{actual}` but the policy pins {}; use the approved image file",
        expected.join(", ")
    ))
}

/// Names the requested path and, when it differs, its canonical form.
fn shown_path(given: &str, canonical: &Path) -> String {
    let canonical = canonical.to_string_lossy();
    if canonical == given {
        format!("`{given}`")
    } else {
        format!("`{given}` (resolves to `{canonical}`)")
    }
}

fn image_set_names(policy: &Policy, container: &EnvironmentContainer) -> String {
    quoted_names(
        container.image_sets.iter().filter_map(|&position| policy.image_sets.get(position)).map(|set| set.name.as_str()),
        LIST_LIMIT,
    )
}

fn allowed_image_paths(policy: &Policy, container: &EnvironmentContainer) -> String {
    quoted_names(
        container
            .image_sets
            .iter()
            .filter_map(|&position| policy.image_sets.get(position))
            .flat_map(|set| set.entries.iter().map(|entry| entry.configured.as_str())),
        LIST_LIMIT,
    )
}

/// Checks that `path` and every directory above it are owned by root and not
/// writable by group or others. The path must be canonical (no symlinks), so
/// the file checked is the file the runtime opens. A sticky world-writable
/// directory such as `/tmp` fails: another user could have created the file
/// or a directory below it. POSIX ACLs are not inspected.
pub(crate) fn check_root_owned(path: &Path) -> Result<(), String> {
    for ancestor in path.ancestors() {
        let metadata = std::fs::symlink_metadata(ancestor)
            .map_err(|error| format!("cannot inspect `{}`: {error}", ancestor.display()))?;
        if metadata.uid() != 0 {
            return Err(format!("`{}` is owned by uid {}, not root", ancestor.display(), metadata.uid()));
        }
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(format!("`{}` is writable by group or others (mode {mode:04o})", ancestor.display()));
        }
    }
    Ok(())
}

/// Checks every requested bind and the environment's default binds; returns
/// the approved binds as `SRC:DST[:ro]` with canonical sources, defaults first.
fn check_binds(container: &EnvironmentContainer, request: &Request, reasons: &mut Vec<Reason>) -> Vec<String> {
    let mut approved: Vec<String> = Vec::new();
    let mut add = |bind: String| {
        if !approved.contains(&bind) {
            approved.push(bind);
        }
    };

    for spec in &container.binds.default {
        match check_bind(spec, None) {
            Ok(bind) => add(bind),
            Err(message) => reasons.push(reason(
                rules::CONTAINER_BIND,
                format!("default bind `{}` of the policy: {message}; ask the administrators to fix the policy", bind_text(spec)),
            )),
        }
    }

    for (origin, spec) in requested_binds(request, reasons) {
        match check_bind(&spec, Some(&container.binds.allow)) {
            Ok(bind) => add(bind),
            Err(message) => {
                reasons.push(reason(rules::CONTAINER_BIND, format!("bind `{}` in {origin}: {message}", bind_text(&spec))))
            }
        }
    }
    approved
}

fn variable_origin(name: &str) -> &'static str {
    match name {
        "APPTAINER_BIND" => "`APPTAINER_BIND`",
        "APPTAINER_BINDPATH" => "`APPTAINER_BINDPATH`",
        "SINGULARITY_BIND" => "`SINGULARITY_BIND`",
        _ => "`SINGULARITY_BINDPATH`",
    }
}

/// Checks one bind; `roots` is `None` for the policy's own default binds.
/// Returns `SRC:DST` or `SRC:DST:ro` with the canonical source. Without a
/// destination, the source as written is the destination when it is absolute
/// without `..`, so the job finds its data at the path it requested.
/// Otherwise the canonical source is the destination.
fn check_bind(spec: &BindSpec, roots: Option<&[BindRoot]>) -> Result<String, String> {
    spec.check_destination()?;
    let allowed_roots = |roots: &[BindRoot]| quoted_names(roots.iter().map(|root| root.configured.as_str()), LIST_LIMIT);
    let canonical = canonicalize_abs(&spec.source).map_err(|message| match roots {
        Some(roots) => format!("{message}; allowed roots: {}", allowed_roots(roots)),
        None => message,
    })?;
    let source = canonical.to_string_lossy();
    if let Some(roots) = roots {
        if !roots.iter().any(|root| is_within(&canonical, &root.canonical)) {
            let resolved = if source == spec.source { String::new() } else { format!(" (resolves to `{source}`)") };
            return Err(format!(
                "source is outside the allowed bind roots{resolved}; allowed roots: {}",
                allowed_roots(roots)
            ));
        }
    }
    let destination = match &spec.destination {
        Some(destination) => destination.clone(),
        None if spec.source.starts_with('/') && !spec.source.split('/').any(|component| component == "..") => {
            spec.source.clone()
        }
        None => source.clone().into_owned(),
    };
    format_bind_argument(&source, &destination, spec.mode)
}

/// Formats a bind specification as the user wrote it.
fn bind_text(spec: &BindSpec) -> String {
    let mut text = spec.source.clone();
    if let Some(destination) = &spec.destination {
        text.push(':');
        text.push_str(destination);
    }
    match spec.mode {
        Some(BindMode::Ro) => text.push_str(":ro"),
        Some(BindMode::Rw) => text.push_str(":rw"),
        None => {}
    }
    text
}

/// Checks `--guard-container-flags`; returns the approved flags in order.
fn check_flags(container: &EnvironmentContainer, request: &Request, reasons: &mut Vec<Reason>) -> Vec<String> {
    let mut approved = Vec::new();
    for entry in &request.options.container_flags {
        for flag in split_flag_list(entry) {
            match check_flag(&flag, &container.user_flags) {
                Ok(()) => approved.push(flag),
                Err(message) => reasons.push(reason(
                    rules::CONTAINER_FLAG,
                    format!("{message}; allowed flags: {}", quoted_names(container.user_flags.iter().map(String::as_str), 16)),
                )),
            }
        }
    }
    approved
}

/// Checks that the runtime is a regular file with an execute bit.
fn check_runtime(runtime: &Path) -> Result<(), String> {
    let problem = match std::fs::metadata(runtime) {
        Err(error) => error.to_string(),
        Ok(metadata) if !metadata.is_file() => "not a regular file".to_owned(),
        Ok(metadata) if metadata.permissions().mode() & 0o111 == 0 => "not executable".to_owned(),
        Ok(_) => return Ok(()),
    };
    Err(format!(
        "container runtime `{}` cannot be run: {problem}; install Apptainer there or fix `container.runtime` in the policy",
        runtime.display()
    ))
}
