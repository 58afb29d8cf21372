//! The hash-chained audit journal: concurrent writers, rotation, and the
//! breaks that `verify` must find.

#![allow(clippy::unwrap_used, reason = "helpers outside #[test] functions fail the test by unwrapping")]

use std::fs;
use std::path::{Path, PathBuf};

use policy_core::audit::AuditRecord;
use policy_core::journal::{append_record, head_path, line_sha256, verify, HeadCheck, Link, GENESIS_SHA256};
use policy_core::{Outcome, Request};

fn record(user: &str) -> AuditRecord {
    let request = Request { user: user.to_owned(), cluster: "test".to_owned(), ..Request::default() };
    let now = "2026-12-04T20:00:00Z".parse().unwrap();
    AuditRecord::policy_error(&request, "cannot read policy", Outcome::Deny, now)
}

fn write_records(path: &Path, count: usize) {
    for index in 0..count {
        append_record(path, &record(&format!("user{index}"))).unwrap();
    }
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

fn break_text(files: &[PathBuf]) -> String {
    verify(files).unwrap().broken.map(|broken| broken.to_string()).unwrap_or_default()
}

#[test]
fn first_record_links_to_genesis() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("audit.jsonl");
    let link = append_record(&path, &record("alice")).unwrap();
    let written = lines(&path);
    assert_eq!(written.len(), 1);
    let value: serde_json::Value = serde_json::from_str(&written[0]).unwrap();
    assert_eq!(value["seq"], 1);
    assert_eq!(value["prev_sha256"], GENESIS_SHA256);
    assert_eq!(link, Link { seq: 1, sha256: line_sha256(written[0].as_bytes()) });
    assert_eq!(fs::read_to_string(head_path(&path)).unwrap(), format!("00000000000000000001 {}\n", link.sha256));
}

#[test]
fn each_record_links_to_previous_line() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("audit.jsonl");
    write_records(&path, 3);
    let written = lines(&path);
    for index in 1..3 {
        let value: serde_json::Value = serde_json::from_str(&written[index]).unwrap();
        assert_eq!(value["seq"], index as u64 + 1);
        assert_eq!(value["prev_sha256"], line_sha256(written[index - 1].as_bytes()));
    }
    let verification = verify(std::slice::from_ref(&path)).unwrap();
    assert_eq!(verification.broken, None);
    assert_eq!(verification.records, 3);
    assert_eq!(verification.first, Some(Link { seq: 1, sha256: GENESIS_SHA256.to_owned() }));
    assert_eq!(verification.head, HeadCheck::Matched(head_path(&path)));
}

#[test]
fn concurrent_writers_keep_one_chain() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("audit.jsonl");
    std::thread::scope(|scope| {
        for writer in 0..8 {
            let path = &path;
            scope.spawn(move || {
                for index in 0..50 {
                    append_record(path, &record(&format!("w{writer}-{index}"))).unwrap();
                }
            });
        }
    });
    let verification = verify(std::slice::from_ref(&path)).unwrap();
    assert_eq!(verification.broken, None);
    assert_eq!(verification.records, 400);
    assert_eq!(verification.last.map(|link| link.seq), Some(400));
}

#[test]
fn rotation_links_new_file_to_old() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("audit.jsonl");
    let rotated = directory.path().join("audit.jsonl.1");
    write_records(&path, 3);
    // What logrotate's `create` does: rename, then an empty file.
    fs::rename(&path, &rotated).unwrap();
    fs::write(&path, "").unwrap();
    write_records(&path, 2);

    let first_new: serde_json::Value = serde_json::from_str(&lines(&path)[0]).unwrap();
    assert_eq!(first_new["seq"], 4);
    assert_eq!(first_new["prev_sha256"], line_sha256(lines(&rotated)[2].as_bytes()));

    let both = verify(&[rotated.clone(), path.clone()]).unwrap();
    assert_eq!(both.broken, None);
    assert_eq!(both.records, 5);

    let live_only = verify(std::slice::from_ref(&path)).unwrap();
    assert_eq!(live_only.broken, None);
    assert_eq!(live_only.first.map(|link| link.seq), Some(4));
}

#[test]
fn files_in_wrong_order_are_reported() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("audit.jsonl");
    let rotated = directory.path().join("audit.jsonl.1");
    write_records(&path, 2);
    fs::rename(&path, &rotated).unwrap();
    write_records(&path, 2);
    assert_eq!(
        break_text(&[path.clone(), rotated.clone()]),
        format!(
            "{}:1: seq 1 follows seq 4 at {}:2: records are missing, duplicated or out of order (are the files given oldest first?)",
            rotated.display(),
            path.display()
        )
    );
}

#[test]
fn edited_line_fails_at_that_line() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("audit.jsonl");
    write_records(&path, 4);
    let mut written = lines(&path);
    let original_sha = line_sha256(written[2].as_bytes());
    written[2] = written[2].replace("\"outcome\":\"deny\"", "\"outcome\":\"allow\"");
    let edited_sha = line_sha256(written[2].as_bytes());
    fs::write(&path, written.join("\n") + "\n").unwrap();

    assert_eq!(
        break_text(std::slice::from_ref(&path)),
        format!(
            "{}:3: the line hashes to {edited_sha} but the next record ({}:4, seq 4) recorded prev_sha256 {original_sha}: one of the two lines was changed after it was written",
            path.display(),
            path.display()
        )
    );
    assert_eq!(verify(&[path]).unwrap().records, 2);
}

#[test]
fn edited_last_line_fails_against_head() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("audit.jsonl");
    write_records(&path, 2);
    let mut written = lines(&path);
    let original_sha = line_sha256(written[1].as_bytes());
    written[1] = written[1].replace("user1", "user9");
    let edited_sha = line_sha256(written[1].as_bytes());
    fs::write(&path, written.join("\n") + "\n").unwrap();
    assert_eq!(
        break_text(std::slice::from_ref(&path)),
        format!(
            "{}:2: the line hashes to {edited_sha} but {} recorded {original_sha}: the line was changed after it was written",
            path.display(),
            head_path(&path).display()
        )
    );
}

#[test]
fn removed_middle_line_breaks_seq() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("audit.jsonl");
    write_records(&path, 4);
    let mut written = lines(&path);
    written.remove(1);
    fs::write(&path, written.join("\n") + "\n").unwrap();
    assert_eq!(
        break_text(std::slice::from_ref(&path)),
        format!(
            "{}:2: seq 3 follows seq 1 at {}:1: records are missing, duplicated or out of order",
            path.display(),
            path.display()
        )
    );
}

#[test]
fn removed_last_lines_found_by_head() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("audit.jsonl");
    write_records(&path, 4);
    let written = lines(&path);
    fs::write(&path, written[..2].join("\n") + "\n").unwrap();
    assert_eq!(
        break_text(std::slice::from_ref(&path)),
        format!(
            "{}:2: the file ends at seq 2 but {} names seq 4 as the last record written: records at the end were removed",
            path.display(),
            head_path(&path).display()
        )
    );
}

#[test]
fn unchained_and_cut_lines_are_reported() {
    let directory = tempfile::tempdir().unwrap();
    let legacy = directory.path().join("legacy.jsonl");
    fs::write(&legacy, "{\"event\":\"decision\"}\n").unwrap();
    assert_eq!(
        break_text(std::slice::from_ref(&legacy)),
        format!(
            "{}:1: the record has no `seq` or no `prev_sha256`: it was written before the journal was chained, or edited",
            legacy.display()
        )
    );

    let cut = directory.path().join("cut.jsonl");
    write_records(&cut, 2);
    let text = fs::read_to_string(&cut).unwrap();
    fs::write(&cut, &text[..text.len() - 10]).unwrap();
    assert_eq!(
        break_text(std::slice::from_ref(&cut)),
        format!("{}:2: the line does not end with a newline: an unfinished write or a cut file", cut.display())
    );
}

#[test]
fn lost_head_continues_from_last_line() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("audit.jsonl");
    write_records(&path, 2);
    fs::remove_file(head_path(&path)).unwrap();
    write_records(&path, 1);
    let verification = verify(&[path]).unwrap();
    assert_eq!(verification.broken, None);
    assert_eq!(verification.records, 3);
}

#[test]
fn missing_file_is_an_error() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("absent.jsonl");
    let error = verify(std::slice::from_ref(&path)).unwrap_err();
    assert_eq!(error.to_string(), format!("{}: No such file or directory (os error 2)", path.display()));
}
