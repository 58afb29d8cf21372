//! `examples/ci/submit-with-evidence.sh` against the cluster: a ticket, a
//! prod batch job with steps on both nodes, and the evidence bundle.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cluster_tests::{Cluster, PROD_GROUP};
use serde_json::{json, Value};

use super::support::{base_policy, check, expect_code, guardctl_path, install, paths, prepare_files, Readable, KEY_ID, PROD_USER};

pub const SCENARIOS: [(&str, super::Scenario); 1] = [("evidence::ci_script_writes_bundle", ci_script_writes_bundle)];

const CORRELATION_ID: &str = "ci-test-evidence-1";
const BATCH_STEP: &str = "batch";

fn group_id(name: &str) -> Result<u32, String> {
    nix::unistd::Group::from_name(name)
        .map_err(|error| format!("cannot look up group {name}: {error}"))?
        .map(|group| group.gid.as_raw())
        .ok_or_else(|| format!("group {name} not found"))
}

fn set_owner_mode(path: &Path, uid: u32, gid: u32, mode: u32) -> Result<(), String> {
    chown(path, Some(uid), Some(gid)).map_err(|error| format!("cannot chown {}: {error}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|error| format!("cannot chmod {}: {error}", path.display()))
}

/// Lets the CI user's group read the journal, as a site does for the CI
/// account: the directory and both files exist before the first record.
fn share_journal_with_group(audit: &Path, gid: u32) -> Result<(), String> {
    let directory = audit.parent().ok_or("the audit path has no directory")?;
    fs::create_dir_all(directory).map_err(|error| format!("cannot create {}: {error}", directory.display()))?;
    set_owner_mode(directory, 0, gid, 0o750)?;
    for file in [audit.to_path_buf(), policy_core::journal::head_path(audit)] {
        fs::write(&file, "").map_err(|error| format!("cannot create {}: {error}", file.display()))?;
        set_owner_mode(&file, 0, gid, 0o640)?;
    }
    Ok(())
}

fn ci_script_writes_bundle(cluster: &mut Cluster) -> Result<(), String> {
    prepare_files(cluster)?;
    let mut policy = base_policy(cluster);
    policy["environments"]["prod"]["approval"] = json!({ "ticket": true, "justification_min_chars": 10 });
    policy["environments"]["prod"]["container"] = json!({ "images": ["approved"] });
    install(cluster, &policy, Readable::ByEveryone, "")?;
    let audit = paths(cluster).audit;
    let gid = group_id(PROD_GROUP)?;
    share_journal_with_group(&audit, gid)?;

    // The script, guardctl and the approver key as a CI agent has them.
    let work = cluster.work_dir(&PROD_USER);
    let user = nix::unistd::User::from_name(PROD_USER.name)
        .map_err(|error| error.to_string())?
        .ok_or("the CI test user does not exist")?;
    let key = work.join("approver.key");
    fs::write(&key, STANDARD.encode(super::support::KEY_SEED)).map_err(|error| error.to_string())?;
    set_owner_mode(&key, user.uid.as_raw(), user.gid.as_raw(), 0o600)?;
    let guardctl = cluster.path("bin/guardctl");
    fs::copy(guardctl_path()?, &guardctl).map_err(|error| format!("cannot copy guardctl: {error}"))?;
    set_owner_mode(&guardctl, 0, 0, 0o755)?;
    let script = cluster.path("bin/submit-with-evidence.sh");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ci/submit-with-evidence.sh");
    fs::copy(&source, &script).map_err(|error| format!("cannot copy {}: {error}", source.display()))?;
    set_owner_mode(&script, 0, 0, 0o755)?;
    let evidence_dir = work.join("evidence");

    let image = format!("--guard-image={}/images/app.sif", cluster.dir().display());
    let output_file = format!("--output={}/ci-job.out", work.display());
    let output = cluster.run_as(
        &PROD_USER,
        &[
            ("GUARD_KEY", key.to_str().unwrap_or_default()),
            ("GUARD_KID", KEY_ID),
            ("GUARD_AUDIT", audit.to_str().unwrap_or_default()),
            ("GUARDCTL", guardctl.to_str().unwrap_or_default()),
            ("EVIDENCE_DIR", evidence_dir.to_str().unwrap_or_default()),
            ("HOS_CORRELATION_ID", CORRELATION_ID),
            ("JOB_NAME", "nightly-train"),
            ("BUILD_NUMBER", "17"),
        ],
        &[script.to_str().unwrap_or_default(), "-N2", "-n2", &image, &output_file, "--wrap=srun -N2 true; srun -N2 -n2 true"],
    );
    expect_code(&output, 0)?;
    let last_line = output.stdout.lines().last().unwrap_or_default().to_owned();
    let prefix = format!("wrote {}/evidence.json, evidence.md and evidence.html: ", evidence_dir.display());
    check(last_line.starts_with(&prefix), "the script must end with guardctl evidence's summary", &output)?;
    check(last_line.ends_with(&format!("records of `{CORRELATION_ID}`, chain intact")), "the chain must be intact", &output)?;

    let text = fs::read_to_string(evidence_dir.join("evidence.json")).map_err(|error| format!("evidence.json: {error}"))?;
    let bundle: Value = serde_json::from_str(&text).map_err(|error| format!("evidence.json: {error}"))?;
    let installed = policy_core::digest::sha256_file(&paths(cluster).policy).map_err(|error| error.to_string())?;
    for (field, expected) in [
        ("correlation_id", json!(CORRELATION_ID)),
        ("chain_intact", json!(true)),
        ("environments", json!(["prod"])),
        ("outcomes", json!(["allow"])),
        ("users", json!([PROD_USER.name])),
        ("policy_sha256s", json!([installed])),
        ("break_glass", json!(false)),
    ] {
        if bundle[field] != expected {
            return Err(format!("evidence.json `{field}`: expected {expected}, got {}\n{text}", bundle[field]));
        }
    }

    // Every step on every node, with its decision and its end.
    // NOTE: the node name is not compared. Steps that a batch script starts
    // inherit its SLURMD_NODENAME and SLURM_TOPOLOGY_ADDR, so the plugin
    // records the batch host (c1) for the steps on c2 as well.
    let mut seen: Vec<String> = bundle["timeline"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|entry| {
                    format!(
                        "{} {} {}",
                        entry["event"].as_str().unwrap_or("?"),
                        entry["step"].as_str().unwrap_or("?"),
                        entry["exit_codes"]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    seen.sort();
    let mut expected = vec![
        format!("decision {BATCH_STEP} null"),
        "decision 0 null".to_owned(),
        "decision 0 null".to_owned(),
        "decision 1 null".to_owned(),
        "decision 1 null".to_owned(),
        format!("step_end {BATCH_STEP} [0]"),
        "step_end 0 [0]".to_owned(),
        "step_end 0 [0]".to_owned(),
        "step_end 1 [0]".to_owned(),
        "step_end 1 [0]".to_owned(),
    ];
    expected.sort();
    if seen != expected {
        return Err(format!("timeline: expected {expected:#?}\ngot {seen:#?}"));
    }
    let containers: Vec<&str> = bundle["timeline"]
        .as_array()
        .map(|entries| entries.iter().filter_map(|entry| entry["container"].as_str()).collect())
        .unwrap_or_default();
    let image = format!("{}/images/app.sif", cluster.dir().display());
    // The batch step runs on the host (container.batch_step is `host`).
    if containers.len() != 4 || containers.iter().any(|container| *container != image) {
        return Err(format!("expected the image {image} in the 4 step decisions, got {containers:?}"));
    }
    let ticket_kids: Vec<&str> = bundle["records"]
        .as_array()
        .map(|records| records.iter().filter_map(|record| record["ticket"]["kid"].as_str()).collect())
        .unwrap_or_default();
    if ticket_kids.len() != 5 || ticket_kids.iter().any(|kid| *kid != KEY_ID) {
        return Err(format!("expected the ticket key id {KEY_ID} in the 5 decisions, got {ticket_kids:?}"));
    }

    let html = fs::read_to_string(evidence_dir.join("evidence.html")).map_err(|error| format!("evidence.html: {error}"))?;
    if !html.contains(&format!("<h1>Evidence for <code>{CORRELATION_ID}</code></h1>")) {
        return Err("evidence.html has no heading with the correlation id".to_owned());
    }
    render_in_chromium(cluster, &evidence_dir.join("evidence.html"))?;
    let markdown = fs::read_to_string(evidence_dir.join("evidence.md")).map_err(|error| format!("evidence.md: {error}"))?;
    if !markdown.starts_with(&format!("# Evidence for `{CORRELATION_ID}`\n")) || !markdown.contains("| Audit chain | intact |") {
        return Err(format!("evidence.md lacks the heading or the chain result:\n{markdown}"));
    }
    Ok(())
}

/// Environment variable naming where to copy the screenshot of
/// evidence.html, to refresh the one under docs/.
const SCREENSHOT_ENV: &str = "SPANK_GUARD_EVIDENCE_SCREENSHOT";

/// Renders evidence.html in headless Chromium: the DOM must contain the
/// timeline table, and the screenshot must be a PNG.
fn render_in_chromium(cluster: &Cluster, html: &Path) -> Result<(), String> {
    let url = format!("file://{}", html.display());
    let common = ["--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", "--hide-scrollbars"];
    let run = |extra: &[&str]| {
        std::process::Command::new("chromium")
            .args(common)
            .args(extra)
            .output()
            .map_err(|error| format!("cannot run chromium (install it with scripts/install-deps.sh): {error}"))
    };
    let dom = run(&["--dump-dom", &url])?;
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    if !dom.status.success() || !dom_text.contains("<h2>Timeline</h2>") || !dom_text.contains("<th>Exit codes</th>") {
        return Err(format!("chromium did not render the timeline: {}\n{dom_text}", String::from_utf8_lossy(&dom.stderr)));
    }
    let screenshot = cluster.path("evidence.png");
    let screenshot_option = format!("--screenshot={}", screenshot.display());
    let shot = run(&[&screenshot_option, "--window-size=1500,1000", &url])?;
    let bytes = fs::read(&screenshot).map_err(|error| {
        format!("chromium wrote no screenshot ({error}): {}", String::from_utf8_lossy(&shot.stderr))
    })?;
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err(format!("{} is not a PNG", screenshot.display()));
    }
    if let Some(target) = std::env::var_os(SCREENSHOT_ENV) {
        fs::copy(&screenshot, &target).map_err(|error| format!("cannot copy the screenshot: {error}"))?;
    }
    Ok(())
}
