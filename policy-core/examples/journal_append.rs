//! Measures the cost of one chained audit append (`journal::append_record`:
//! flock of the head file, read it, append the record, rewrite the head),
//! which every step pays, and of a plain `append_line`.
//!
//! Run: cargo run --release -p policy-core --example journal_append -- DIR [COUNT]

use std::path::PathBuf;
use std::time::Instant;

use policy_core::audit::{append_line, AuditRecord};
use policy_core::journal::append_record;
use policy_core::{Outcome, Request};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arguments = std::env::args().skip(1);
    let directory = PathBuf::from(arguments.next().ok_or("usage: journal_append DIR [COUNT]")?);
    let count: u32 = arguments.next().map_or(Ok(20_000), |text| text.parse())?;
    let request = Request { user: "bench".to_owned(), cluster: "bench".to_owned(), ..Request::default() };
    let record = AuditRecord::policy_error(&request, "benchmark record", Outcome::Deny, jiff::Timestamp::now());
    let line = record.to_json_line();

    let plain = directory.join("plain.jsonl");
    let started = Instant::now();
    for _ in 0..count {
        append_line(&plain, &line)?;
    }
    let plain_micros = started.elapsed().as_secs_f64() * 1e6 / f64::from(count);

    let chained = directory.join("chained.jsonl");
    let started = Instant::now();
    for _ in 0..count {
        append_record(&chained, &record)?;
    }
    let chained_micros = started.elapsed().as_secs_f64() * 1e6 / f64::from(count);

    println!("{count} records: append_line {plain_micros:.1} us, append_record (chained) {chained_micros:.1} us per record");
    Ok(())
}
