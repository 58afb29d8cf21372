//! Evaluation time of `policy_core::evaluate`, excluding policy loading.
//!
//! Run with `cargo bench -p policy-core --bench evaluate`; results and the
//! machine they were measured on are recorded in `docs/benchmarks.md`.
//!
//! - `example/*`: the shipped `examples/policy.json` with requests that use
//!   no container image, so no file is canonicalised or hashed.
//! - `images_10000/*`: a generated policy with one image set of 10,000
//!   entries and a request for the image of the last entry. No entry pins a
//!   sha256, so the image is canonicalised and checked but never hashed. The
//!   shapes exercise the ways the loader indexes entries: exact paths, globs
//!   in the file name under a literal directory, globs in a directory with a
//!   literal file name, globs in both with a distinct literal part of the
//!   file name, and globs in both whose file names share one suffix.

#![allow(clippy::unwrap_used, clippy::panic, reason = "a benchmark fails loudly on setup errors")]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use policy_core::{evaluate, GuardOptions, Outcome, Policy, Request};

/// Number of image entries in the generated policies.
const IMAGE_ENTRIES: usize = 10_000;

/// 2026-06-03T10:00:00Z, a Wednesday inside the example's business hours.
const NOW_UNIX: i64 = 1_780_480_800;

fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(NOW_UNIX).unwrap()
}

fn request(user: &str, groups: &[&str], environment: &str, image: Option<&str>) -> Request {
    Request {
        cluster: "bench".to_owned(),
        job_id: Some(4242),
        step_id: Some(0),
        node: Some("c1".to_owned()),
        uid: 1000,
        user: user.to_owned(),
        groups: groups.iter().map(|group| (*group).to_owned()).collect(),
        options: GuardOptions {
            env: Some(environment.to_owned()),
            image: image.map(str::to_owned),
            ..GuardOptions::default()
        },
        env: BTreeMap::from([
            ("HOME".to_owned(), format!("/home/{user}")),
            ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
            ("SLURM_JOB_ID".to_owned(), "4242".to_owned()),
            ("LD_PRELOAD".to_owned(), "/tmp/hook.so".to_owned()),
        ]),
        argv: vec!["python".to_owned(), "train.py".to_owned()],
        job_name: Some("train".to_owned()),
        ..Request::default()
    }
}

fn load(bytes: &[u8], origin: &str) -> Policy {
    match Policy::from_slice(bytes, origin) {
        Ok(policy) => policy,
        Err(error) => panic!("{error}"),
    }
}

fn bench_example(criterion: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policy.json");
    let policy = load(&std::fs::read(&path).unwrap(), "examples/policy.json");

    let dev = request("alice", &["users"], "dev", None);
    let prod = request("alice", &["users"], "prod", None);
    // An on-call member breaks glass: window and approval rules are waived,
    // and the missing container still denies.
    let mut break_glass = request("carol", &["hpc-prod", "hpc-oncall"], "prod", None);
    break_glass.options.break_glass = Some("INC-4711 scheduler outage, rerun lost jobs".to_owned());
    assert_eq!(evaluate(&policy, &dev, now()).outcome, Outcome::Allow);
    assert_eq!(evaluate(&policy, &prod, now()).outcome, Outcome::Deny);
    assert_eq!(evaluate(&policy, &break_glass, now()).waived.len(), 3);

    let now = now();
    let mut group = criterion.benchmark_group("example");
    group.bench_function("dev_allow", |bencher| bencher.iter(|| evaluate(black_box(&policy), black_box(&dev), now)));
    group.bench_function("prod_deny", |bencher| bencher.iter(|| evaluate(black_box(&policy), black_box(&prod), now)));
    group.bench_function("prod_break_glass", |bencher| {
        bencher.iter(|| evaluate(black_box(&policy), black_box(&break_glass), now))
    });
    group.finish();
}

/// Builds the path pattern of image entry `index`.
type EntryPattern<'a> = &'a dyn Fn(usize) -> String;

/// Returns a policy whose only image set has `IMAGE_ENTRIES` entries built by
/// `pattern(index)`. The runtime is `/bin/sh` so that the request is allowed.
fn generated_policy(pattern: EntryPattern<'_>) -> Vec<u8> {
    let entries: Vec<serde_json::Value> =
        (0..IMAGE_ENTRIES).map(|index| serde_json::json!({ "path": pattern(index) })).collect();
    let document = serde_json::json!({
        "version": 1,
        "mode": "enforce",
        "default_environment": "dev",
        "environments": {
            "dev": { "risk": 1, "container": { "images": ["generated"] } }
        },
        "images": { "generated": entries },
        "container": {
            "runtime": "/bin/sh",
            "args": ["--containall"],
            "binds": { "allow": [], "default": [] },
            "user_flags": [],
            "require_root_owned": false
        }
    });
    serde_json::to_vec_pretty(&document).unwrap()
}

fn bench_images(criterion: &mut Criterion) {
    let directory = tempfile::tempdir().unwrap();
    let root = directory.path().to_str().unwrap().to_owned();
    let last = IMAGE_ENTRIES - 1;

    // The lookup shapes: name, pattern of entry `index`, and the image
    // path the request uses, which matches the last entry and is created on disk.
    let exact_path = |index: usize| format!("{root}/images/image-{index:05}.sif");
    let glob_in_directory = |index: usize| format!("{root}/team-{index:05}/*.sif");
    let glob_in_path = |index: usize| format!("{root}/*/model-{index:05}.sif");
    let glob_in_both = |index: usize| format!("{root}/*/build-{index:05}-*.sif");
    let glob_shared_suffix = |index: usize| format!("{root}/team-{index:05}/*/*.sif");
    let shapes: [(&str, EntryPattern<'_>, String); 5] = [
        ("exact_path", &exact_path, exact_path(last)),
        ("glob_in_directory", &glob_in_directory, format!("{root}/team-{last:05}/model.sif")),
        ("glob_in_path", &glob_in_path, format!("{root}/shared/model-{last:05}.sif")),
        ("glob_in_both", &glob_in_both, format!("{root}/shared/build-{last:05}-x86.sif")),
        ("glob_shared_suffix", &glob_shared_suffix, format!("{root}/team-{last:05}/project/model.sif")),
    ];

    let now = now();
    let mut group = criterion.benchmark_group("images_10000");
    for (name, pattern, image) in &shapes {
        std::fs::create_dir_all(Path::new(image).parent().unwrap()).unwrap();
        std::fs::write(image, b"not a real image").unwrap();
        let policy = load(&generated_policy(*pattern), name);
        let request = request("alice", &["users"], "dev", Some(image));
        let decision = evaluate(&policy, &request, now);
        assert_eq!(decision.outcome, Outcome::Allow, "{name}: {:?}", decision.reasons);
        assert_eq!(decision.effects.container.map(|launch| launch.image), Some(image.clone()));

        group.bench_function(*name, |bencher| {
            bencher.iter(|| evaluate(black_box(&policy), black_box(&request), now));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_example, bench_images);
criterion_main!(benches);
