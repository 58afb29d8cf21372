//! The hash-chained audit journal.
//!
//! Every record carries `seq` (1 for the first record ever written, then one
//! more per record) and `prev_sha256`, the sha256 of the previous record's
//! line without its newline. Editing, removing or reordering a line breaks
//! the chain, and [`verify`] reports where.
//!
//! Writers serialise on an exclusive `flock` of the head file
//! `<audit path>.head`, which stores the seq and sha256 of the last record
//! written. The head file is never rotated, so when logrotate renames the
//! audit file and creates an empty one (`create`), the first record of the
//! new file links to the last record of the renamed file. `copytruncate`
//! must not be used: lines written between its copy and its truncation are
//! lost, and the chain breaks there.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::audit::{self, AuditRecord};

/// `prev_sha256` of the first record of a journal: 64 zeros.
pub const GENESIS_SHA256: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Bytes read at a time when looking for the last line of a file.
const TAIL_CHUNK_BYTES: u64 = 64 * 1024;

/// Position of a record in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The record's `seq`.
    pub seq: u64,
    /// Lowercase hex sha256 of the record's line without its newline.
    pub sha256: String,
}

impl Link {
    /// The link before the first record: seq 0 and [`GENESIS_SHA256`].
    pub fn genesis() -> Link {
        Link { seq: 0, sha256: GENESIS_SHA256.to_owned() }
    }
}

/// Returns the head file of the audit file `audit`: its path with `.head`
/// appended, like `/var/log/spank-guard/audit.jsonl.head`.
pub fn head_path(audit: &Path) -> PathBuf {
    let mut name = audit.as_os_str().to_owned();
    name.push(".head");
    PathBuf::from(name)
}

/// Returns the write-error file of the audit file `audit`: its path with
/// `.write-errors` appended. It gets one line per record the plugin failed to
/// write, for `guardctl metrics export`.
pub fn write_errors_path(audit: &Path) -> PathBuf {
    let mut name = audit.as_os_str().to_owned();
    name.push(".write-errors");
    PathBuf::from(name)
}

/// Appends `<time> <error>` to the write-error file of `audit`. The caller
/// has already failed to write a record, so this is best effort: it may fail
/// for the same reason (a full disk), and then the error is only logged.
pub fn record_write_error(audit: &Path, error: &io::Error) -> io::Result<()> {
    let message = error.to_string().replace('\n', " ");
    let line = format!("{} {message}\n", audit::format_timestamp(jiff::Timestamp::now()));
    audit::append_line(&write_errors_path(audit), &line)
}

/// Returns the lowercase hex sha256 of one line, given without its newline.
pub fn line_sha256(line: &[u8]) -> String {
    crate::digest::to_hex(&Sha256::digest(line))
}

/// Appends `record` to the audit file at `path` with the next `seq` and the
/// `prev_sha256` of the last record written, and returns the new record's
/// link. The `seq` and `prev_sha256` of `record` are replaced.
///
/// The whole step runs under an exclusive `flock` of the head file, so
/// concurrent writers on one node extend one chain. When the head file is
/// empty or unreadable as a link (first use, or a failed update), the link
/// is taken from the last line of the audit file.
///
/// NOTE: `flock` does not exclude writers on other NFS clients; keep the
/// audit file and its head file on a node-local file system.
pub fn append_record(path: &Path, record: &AuditRecord) -> io::Result<Link> {
    audit::create_parent_directory(path)?;
    let head_file_path = head_path(path);
    let head = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(&head_file_path)
        .map_err(|error| with_path(&head_file_path, error))?;
    lock(&head, libc::LOCK_EX).map_err(|error| with_path(&head_file_path, error))?;

    let previous = match read_head(&head)? {
        Some(link) => link,
        None => last_link(path)?,
    };
    let mut chained = record.clone();
    chained.seq = Some(previous.seq + 1);
    chained.prev_sha256 = Some(previous.sha256);
    let line = chained.to_json_line();
    audit::append_line(path, &line)?;

    let body = line.strip_suffix('\n').unwrap_or(&line);
    let link = Link { seq: previous.seq + 1, sha256: line_sha256(body.as_bytes()) };
    if let Err(error) = write_head(&head, &link) {
        // An emptied head makes the next writer read the last line instead
        // of linking to a stale record.
        let _ = head.set_len(0);
        return Err(with_path(&head_file_path, error));
    }
    Ok(link)
}

fn with_path(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

/// Takes a `flock` of `operation` (`LOCK_EX` or `LOCK_SH`), waiting for it.
/// The lock is released when the file is closed.
fn lock(file: &File, operation: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: the descriptor belongs to `file`, which outlives the call,
        // and flock only reads its integer arguments.
        let result = unsafe { libc::flock(file.as_raw_fd(), operation) };
        if result == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Formats a link as the head file stores it. The width never changes, so
/// one positional write replaces the old content completely.
fn format_head(link: &Link) -> String {
    format!("{:020} {}\n", link.seq, link.sha256)
}

fn parse_head(text: &str) -> Option<Link> {
    let (seq, sha256) = text.strip_suffix('\n')?.split_once(' ')?;
    let valid_sha = sha256.len() == 64 && sha256.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
    if !valid_sha {
        return None;
    }
    Some(Link { seq: seq.parse().ok()?, sha256: sha256.to_owned() })
}

fn read_head(mut head: &File) -> io::Result<Option<Link>> {
    let mut text = String::new();
    match head.read_to_string(&mut text) {
        Ok(_) => Ok(parse_head(&text)),
        // A head file that is not UTF-8 is treated like an empty one.
        Err(error) if error.kind() == io::ErrorKind::InvalidData => Ok(None),
        Err(error) => Err(error),
    }
}

fn write_head(head: &File, link: &Link) -> io::Result<()> {
    let text = format_head(link);
    head.write_all_at(text.as_bytes(), 0)?;
    head.set_len(text.len() as u64)
}

/// Returns the link of the last line of the audit file: [`Link::genesis`]
/// when the file is missing or empty. A line without `seq` (written before
/// the journal was chained) counts as seq 0.
fn last_link(path: &Path) -> io::Result<Link> {
    let Some(line) = last_line(path)? else {
        return Ok(Link::genesis());
    };
    let seq = serde_json::from_slice::<serde_json::Value>(&line)
        .ok()
        .and_then(|value| value.get("seq").and_then(serde_json::Value::as_u64))
        .unwrap_or(0);
    Ok(Link { seq, sha256: line_sha256(&line) })
}

/// Returns the last line of the file without its newline, reading backwards
/// from the end in chunks; `None` when the file is missing or empty.
fn last_line(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(with_path(path, error)),
    };
    let length = file.metadata()?.len();
    let mut tail: Vec<u8> = Vec::new();
    let mut start = length;
    while start > 0 {
        let chunk_start = start.saturating_sub(TAIL_CHUNK_BYTES);
        let mut chunk = vec![0u8; usize::try_from(start - chunk_start).unwrap_or(0)];
        file.read_exact_at(&mut chunk, chunk_start)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        start = chunk_start;
        let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
        if let Some(newline) = body.iter().rposition(|byte| *byte == b'\n') {
            return Ok(Some(body.get(newline + 1..).unwrap_or_default().to_vec()));
        }
    }
    let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
    Ok((!body.is_empty()).then(|| body.to_vec()))
}

/// The first place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// File of the broken line.
    pub file: PathBuf,
    /// Line number, from 1.
    pub line: usize,
    /// What does not match.
    pub reason: String,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

/// End of the chain as recorded in the head file of the last file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadCheck {
    /// The head file names the last record verified.
    Matched(PathBuf),
    /// No head file next to the last file (a rotated file, or an empty head).
    Absent,
    /// The head file could not be opened, so removed trailing records
    /// would go unnoticed.
    Unreadable(String),
}

/// Result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Number of records before the broken line, or in total.
    pub records: u64,
    /// `seq` and `prev_sha256` of the first record.
    pub first: Option<Link>,
    /// Link of the last record.
    pub last: Option<Link>,
    /// The head file check.
    pub head: HeadCheck,
    /// The first break, if any.
    pub broken: Option<ChainBreak>,
}

struct Position {
    link: Link,
    file: PathBuf,
    line: usize,
}

/// Checks the chain through `files`, given oldest first (a rotated file
/// before the one that replaced it), and returns the first break.
///
/// For each line: it ends with a newline, is a JSON object with `seq` and
/// `prev_sha256`, its `seq` is one more than the previous record's, and its
/// `prev_sha256` is the sha256 of the previous line. The first record may
/// link to a file that was not given. When the last file has a head file,
/// its link must be the last record's, so removed trailing lines are found
/// too; the head file is read under a shared `flock`, so records written
/// meanwhile do not count as a break.
///
/// A break at the `prev_sha256` check is reported at the earlier line,
/// whose content no longer hashes to what the next record recorded.
pub fn verify(files: &[PathBuf]) -> io::Result<Verification> {
    let mut verification =
        Verification { records: 0, first: None, last: None, head: HeadCheck::Absent, broken: None };
    let mut previous: Option<Position> = None;
    let mut head: Option<Link> = None;

    for (index, file) in files.iter().enumerate() {
        let is_last = index + 1 == files.len();
        let mut head_file = None;
        if is_last {
            let path = head_path(file);
            match File::open(&path) {
                Ok(opened) => {
                    lock(&opened, libc::LOCK_SH).map_err(|error| with_path(&path, error))?;
                    head = read_head(&opened)?;
                    verification.head = if head.is_some() { HeadCheck::Matched(path) } else { HeadCheck::Absent };
                    head_file = Some(opened);
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => verification.head = HeadCheck::Unreadable(format!("{}: {error}", path.display())),
            }
        }
        let bytes = std::fs::read(file).map_err(|error| with_path(file, error))?;
        drop(head_file);

        if let Some(broken) = verify_file(file, &bytes, &mut previous, &mut verification) {
            verification.broken = Some(broken);
            return Ok(verification);
        }
    }

    verification.last = previous.as_ref().map(|position| position.link.clone());
    if let (Some(head), Some(last_file)) = (head, files.last()) {
        verification.broken = check_head(&head, previous.as_ref(), last_file);
    }
    Ok(verification)
}

fn verify_file(
    file: &Path,
    bytes: &[u8],
    previous: &mut Option<Position>,
    verification: &mut Verification,
) -> Option<ChainBreak> {
    let broken = |line: usize, reason: String| ChainBreak { file: file.to_path_buf(), line, reason };
    let complete = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if bytes.is_empty() {
        return None;
    }
    let lines: Vec<&[u8]> = complete.split(|byte| *byte == b'\n').collect();
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        if number == lines.len() && !bytes.ends_with(b"\n") {
            return Some(broken(number, "the line does not end with a newline: an unfinished write or a cut file".to_owned()));
        }
        let value: serde_json::Value = match serde_json::from_slice(line) {
            Ok(value) => value,
            Err(error) => return Some(broken(number, format!("not a JSON object: {error}"))),
        };
        let seq = value.get("seq").and_then(serde_json::Value::as_u64);
        let prev_sha256 = value.get("prev_sha256").and_then(serde_json::Value::as_str);
        let (Some(seq), Some(prev_sha256)) = (seq, prev_sha256) else {
            return Some(broken(
                number,
                "the record has no `seq` or no `prev_sha256`: it was written before the journal was chained, or edited".to_owned(),
            ));
        };
        let sha256 = line_sha256(line);

        match previous.as_ref() {
            None => verification.first = Some(Link { seq, sha256: prev_sha256.to_owned() }),
            Some(position) => {
                let order_hint = if number == 1 { " (are the files given oldest first?)" } else { "" };
                if seq != position.link.seq + 1 {
                    return Some(broken(
                        number,
                        format!(
                            "seq {seq} follows seq {} at {}:{}: records are missing, duplicated or out of order{order_hint}",
                            position.link.seq,
                            position.file.display(),
                            position.line
                        ),
                    ));
                }
                if prev_sha256 != position.link.sha256 {
                    // The break is the previous line, already counted.
                    verification.records -= 1;
                    return Some(ChainBreak {
                        file: position.file.clone(),
                        line: position.line,
                        reason: format!(
                            "the line hashes to {} but the next record ({}:{number}, seq {seq}) recorded prev_sha256 {prev_sha256}: one of the two lines was changed after it was written{order_hint}",
                            position.link.sha256,
                            file.display()
                        ),
                    });
                }
            }
        }
        verification.records += 1;
        *previous = Some(Position { link: Link { seq, sha256 }, file: file.to_path_buf(), line: number });
    }
    None
}

/// Compares the head file's link with the last record verified.
fn check_head(head: &Link, last: Option<&Position>, last_file: &Path) -> Option<ChainBreak> {
    let head_file = head_path(last_file);
    let Some(last) = last else {
        return Some(ChainBreak {
            file: last_file.to_path_buf(),
            line: 0,
            reason: format!(
                "{} names seq {} as the last record written, but the files hold no record; after a rotation, give the rotated file first",
                head_file.display(),
                head.seq
            ),
        });
    };
    if last.link.seq < head.seq {
        return Some(ChainBreak {
            file: last.file.clone(),
            line: last.line,
            reason: format!(
                "the file ends at seq {} but {} names seq {} as the last record written: records at the end were removed",
                last.link.seq,
                head_file.display(),
                head.seq
            ),
        });
    }
    if last.link.seq == head.seq && last.link.sha256 != head.sha256 {
        return Some(ChainBreak {
            file: last.file.clone(),
            line: last.line,
            reason: format!(
                "the line hashes to {} but {} recorded {}: the line was changed after it was written",
                last.link.sha256,
                head_file.display(),
                head.sha256
            ),
        });
    }
    None
}
