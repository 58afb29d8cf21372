//! Property tests of the evaluator: it never panics on arbitrary requests, and
//! no bind source or image outside the allowed roots reaches the container
//! command line, whatever mix of `..`, `.`, duplicate slashes and symlinks
//! the request uses.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test setup fails the test loudly")]

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use policy_core::{evaluate, GuardOptions, Outcome, Policy, Request};
use proptest::prelude::*;

mod support;

const EXAMPLE: &str = include_str!("../../examples/policy.json");

/// A temporary tree with allowed roots, an outside directory and symlinks
/// that point in and out, plus a policy whose roots are in the tree.
struct Tree {
    _directory: tempfile::TempDir,
    root: PathBuf,
    policy: Policy,
}

/// Returns the shared tree, created on first use.
fn tree() -> &'static Tree {
    static TREE: std::sync::OnceLock<Tree> = std::sync::OnceLock::new();
    TREE.get_or_init(build_tree)
}

fn build_tree() -> Tree {
    let directory = support::root_owned_tempdir("prop-");
    let root = directory.path().to_path_buf();
    for dir in ["data/a/b", "data/c", "data2/x", "outside/y", "images/sub"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("images/app.sif"), "image").unwrap();
    std::fs::write(root.join("images/sub/deep.sif"), "image").unwrap();
    std::fs::write(root.join("outside/evil.sif"), "image").unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::write(root.join("bin/apptainer"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(root.join("bin/apptainer"), std::fs::Permissions::from_mode(0o755)).unwrap();
    symlink(root.join("outside"), root.join("data/a/out")).unwrap();
    symlink("../../data2", root.join("data/c/up")).unwrap();
    symlink(root.join("data/a"), root.join("outside/in")).unwrap();
    symlink(root.join("outside/evil.sif"), root.join("images/evil.sif")).unwrap();
    symlink("..", root.join("data/c/parent")).unwrap();

    let text = r#"{
      "version": 1,
      "default_environment": "dev",
      "environments": { "dev": { "risk": 1, "container": { "images": ["set"] } } },
      "images": { "set": [ { "path": "{tmp}/images/*.sif" } ] },
      "container": {
        "runtime": "{tmp}/bin/apptainer",
        "binds": { "allow": ["{tmp}/data"], "default": [] },
        "user_flags": ["--nv"],
        "digest_cache": null
      }
    }"#
    .replace("{tmp}", &root.to_string_lossy());
    let policy = Policy::from_slice(text.as_bytes(), "prop.json").unwrap();
    Tree { _directory: directory, root, policy }
}

/// Returns true when `path` is `root` or below it, by whole components.
fn below(path: &Path, root: &Path) -> bool {
    let mut path_components = path.components();
    root.components().all(|component| path_components.next() == Some(component))
        && path.components().all(|component| matches!(component, Component::RootDir | Component::Normal(_)))
}

fn path_strategy() -> impl Strategy<Value = String> {
    let component = prop::sample::select(vec![
        ".", "..", "", "data", "data2", "a", "b", "c", "out", "up", "in", "parent", "outside", "images", "app.sif", "evil.sif",
        "sub", "deep.sif", "x", "y",
    ]);
    prop::collection::vec(component, 0..8).prop_map(|parts| parts.join("/"))
}

fn arbitrary_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9_./:,=-]{0,24}",
        Just(String::new()),
        Just("/".to_owned()),
        Just("--nv=false".to_owned()),
        Just("/a:/b:ro,/c".to_owned()),
    ]
}

fn request_strategy() -> impl Strategy<Value = Request> {
    let names = prop_oneof![
        Just("APPTAINER_BIND".to_owned()),
        Just("SINGULARITY_BINDPATH".to_owned()),
        Just("HOS_ENV".to_owned()),
        Just("HOS_CORRELATION_ID".to_owned()),
        Just("HOS_APPROVAL_TICKET".to_owned()),
        Just("APPTAINERENV_LD_PRELOAD".to_owned()),
        Just("LD_PRELOAD".to_owned()),
        any::<String>(),
    ];
    let env = prop::collection::btree_map(names, arbitrary_text(), 0..6);
    let options = (
        prop::option::of(prop_oneof![Just("prod".to_owned()), Just("PRODUCTION".to_owned()), arbitrary_text()]),
        prop::option::of(arbitrary_text()),
        prop::option::of(arbitrary_text()),
        prop::option::of(arbitrary_text()),
        prop::collection::vec(arbitrary_text(), 0..3),
        prop::collection::vec(arbitrary_text(), 0..3),
        prop::option::of(arbitrary_text()),
    )
        .prop_map(|(env, justification, ticket, image, binds, container_flags, break_glass)| GuardOptions {
            env,
            justification,
            ticket,
            image,
            binds,
            container_flags,
            break_glass,
        });
    (
        any::<bool>(),
        arbitrary_text(),
        any::<Option<u32>>(),
        any::<Option<u32>>(),
        prop::option::of(arbitrary_text()),
        any::<u32>(),
        arbitrary_text(),
        prop::collection::vec(arbitrary_text(), 0..3),
        options,
        env,
        prop::collection::vec(arbitrary_text(), 0..3),
        prop::option::of(arbitrary_text()),
    )
        .prop_map(|(step, cluster, job_id, step_id, node, uid, user, groups, options, env, argv, job_name)| Request {
            context: if step { policy_core::Context::Step } else { policy_core::Context::Submit },
            cluster,
            job_id,
            step_id,
            node,
            uid,
            user,
            groups,
            options,
            env: env.into_iter().collect::<BTreeMap<_, _>>(),
            argv,
            job_name,
            ..Request::default()
        })
}

fn bind_request(image: &str, binds: &[&str]) -> Request {
    let prefix = tree().root.to_string_lossy().into_owned();
    Request {
        user: "bob".to_owned(),
        options: GuardOptions {
            image: Some(format!("{prefix}/{image}")),
            binds: binds.iter().map(|bind| format!("{prefix}/{bind}")).collect(),
            ..GuardOptions::default()
        },
        ..Request::default()
    }
}

/// The tree gives both outcomes, so the property below is not vacuous.
#[test]
fn tree_allows_inside_and_denies_escapes() {
    let now = jiff::Timestamp::UNIX_EPOCH;
    let inside = evaluate(&tree().policy, &bind_request("images/app.sif", &["data/c/../a/./b"]), now);
    assert_eq!(inside.rule_ids(), Vec::<&str>::new());
    let through_symlink = evaluate(&tree().policy, &bind_request("images/app.sif", &["data/a/out/y"]), now);
    assert_eq!(through_symlink.rule_ids(), vec!["container.bind"]);
    let sibling = evaluate(&tree().policy, &bind_request("images/app.sif", &["data/c/up/x"]), now);
    assert_eq!(sibling.rule_ids(), vec!["container.bind"]);
    let image_escape = evaluate(&tree().policy, &bind_request("images/evil.sif", &[]), now);
    assert_eq!(image_escape.rule_ids(), vec!["container.image"]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn evaluate_never_panics(request in request_strategy(), seconds in -62_000_000_000i64..250_000_000_000i64) {
        let policy = Policy::from_slice(EXAMPLE.as_bytes(), "examples/policy.json").unwrap();
        let now = jiff::Timestamp::from_second(seconds).unwrap();
        let decision = evaluate(&policy, &request, now);
        prop_assert_eq!(decision.outcome == Outcome::Allow, decision.reasons.is_empty());
        if decision.outcome == Outcome::Deny {
            prop_assert_eq!(&decision.effects, &policy_core::Effects::default());
        }
        let record = policy_core::audit::AuditRecord::decision(&policy, &request, &decision, now).to_json_line();
        prop_assert_eq!(record.matches('\n').count(), 1);
        prop_assert!(record.ends_with('\n'));
    }

    /// Break glass never removes an access, node, container or variable
    /// rule: with or without it, those rules fail alike.
    #[test]
    fn break_glass_waives_only_window_and_approval(
        request in request_strategy(),
        reason in prop::option::of(arbitrary_text()),
        seconds in 1_700_000_000i64..1_900_000_000i64,
    ) {
        let policy = Policy::from_slice(EXAMPLE.as_bytes(), "examples/policy.json").unwrap();
        let now = jiff::Timestamp::from_second(seconds).unwrap();
        let mut breaking = request.clone();
        breaking.options.break_glass = Some(reason.unwrap_or_else(|| "incident INC-1 needs a rerun now".to_owned()));
        let plain = evaluate(&policy, &request, now);
        let broken = evaluate(&policy, &breaking, now);
        let never_waived = |decision: &policy_core::Decision| -> Vec<String> {
            decision
                .reasons
                .iter()
                .map(|reason| reason.rule.clone())
                .filter(|rule| {
                    !policy_core::rules::WAIVABLE_BY_BREAK_GLASS.contains(&rule.as_str())
                        && !policy_core::rules::BREAK_GLASS.contains(&rule.as_str())
                })
                .collect()
        };
        prop_assert_eq!(never_waived(&plain), never_waived(&broken));
        if broken.break_glass {
            prop_assert!(broken.permits());
        }
        for waived in &broken.waived {
            prop_assert!(policy_core::rules::WAIVABLE_BY_BREAK_GLASS.contains(&waived.rule.as_str()), "{}", waived.rule);
        }
    }

    #[test]
    fn binds_outside_the_roots_never_pass(
        sources in prop::collection::vec(path_strategy(), 1..4),
        destination in prop::option::of(path_strategy()),
        image in prop_oneof![3 => Just("images/app.sif".to_owned()), 1 => path_strategy()],
    ) {
        let tree = tree();
        let prefix = tree.root.to_string_lossy().into_owned();
        let binds: Vec<String> = sources
            .iter()
            .map(|source| match &destination {
                Some(destination) => format!("{prefix}/{source}:/{destination}"),
                None => format!("{prefix}/{source}"),
            })
            .collect();
        let request = Request {
            user: "bob".to_owned(),
            options: GuardOptions {
                image: Some(format!("{prefix}/{image}")),
                binds: binds.clone(),
                ..GuardOptions::default()
            },
            ..Request::default()
        };
        let decision = evaluate(&tree.policy, &request, jiff::Timestamp::UNIX_EPOCH);

        let allowed_root = std::fs::canonicalize(tree.root.join("data")).unwrap();
        let images = std::fs::canonicalize(tree.root.join("images")).unwrap();
        if let Some(launch) = &decision.effects.container {
            for bind in &launch.binds {
                let source = Path::new(bind.split(':').next().unwrap());
                prop_assert!(below(source, &allowed_root), "bind `{}` escapes `{}`", bind, allowed_root.display());
                prop_assert_eq!(std::fs::canonicalize(source).unwrap(), source.to_path_buf());
            }
            let image = Path::new(&launch.image);
            prop_assert_eq!(image.parent(), Some(images.as_path()), "image `{}` outside `{}`", launch.image, images.display());
        }

        // Independent oracle: the request passes only when every source
        // resolves (with the standard library) below the allowed root.
        let every_bind_inside = binds.iter().all(|bind| {
            let source = bind.split(':').next().unwrap();
            std::fs::canonicalize(source).is_ok_and(|canonical| below(&canonical, &allowed_root))
        });
        if decision.outcome == Outcome::Allow {
            prop_assert!(every_bind_inside, "allowed binds {:?}", binds);
        }
        if !every_bind_inside {
            prop_assert!(decision.rule_ids().contains(&"container.bind"), "binds {:?} gave {:?}", binds, decision.rule_ids());
        }
    }
}
