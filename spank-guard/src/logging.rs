//! A `tracing` subscriber that forwards every event to Slurm's log.
//!
//! Levels map one to one: ERROR to `slurm_error`, WARN and INFO to
//! `slurm_info`, DEBUG to `slurm_verbose`, TRACE to `slurm_debug`, so
//! Slurm's own verbosity settings (`-v`, `SlurmdDebug`) filter them. Events
//! are written synchronously from the calling thread; the subscriber starts
//! no thread, so nothing keeps running when Slurm unloads the plugin.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::spank::{self, LogLevel};

/// Prefix of every line the plugin writes to Slurm's log.
pub const PREFIX: &str = "spank-guard: ";

/// Installs the Slurm subscriber as the process-wide default. Calling it
/// again (one plugin instance per process, several callbacks) does nothing.
pub fn install() {
    // An error only means a subscriber is already installed, which is the
    // case after the first callback of this process.
    let _ = tracing::subscriber::set_global_default(SlurmSubscriber::default());
}

/// Forwards tracing events to Slurm's logging functions.
#[derive(Default)]
struct SlurmSubscriber {
    next_span_id: AtomicU64,
}

impl Subscriber for SlurmSubscriber {
    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        // Spans carry no output; ids only need to be non-zero.
        Id::from_u64(self.next_span_id.fetch_add(1, Ordering::Relaxed).saturating_add(1))
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = String::from(PREFIX);
        event.record(&mut LineWriter { line: &mut line, first: true });
        spank::log(slurm_level(*event.metadata().level()), &line);
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

fn slurm_level(level: Level) -> LogLevel {
    match level {
        Level::ERROR => LogLevel::Error,
        Level::WARN | Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Verbose,
        Level::TRACE => LogLevel::Debug,
    }
}

/// Renders an event as `message key=value key=value`.
struct LineWriter<'a> {
    line: &'a mut String,
    first: bool,
}

impl LineWriter<'_> {
    fn separator(&mut self) {
        if !self.first {
            self.line.push(' ');
        }
        self.first = false;
    }
}

impl Visit for LineWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.separator();
        if field.name() == "message" {
            self.line.push_str(value);
        } else {
            let _ = write!(self.line, "{}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.separator();
        if field.name() == "message" {
            let _ = write!(self.line, "{value:?}");
        } else {
            let _ = write!(self.line, "{}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_one_to_one() {
        assert_eq!(slurm_level(Level::ERROR), LogLevel::Error);
        assert_eq!(slurm_level(Level::INFO), LogLevel::Info);
        assert_eq!(slurm_level(Level::DEBUG), LogLevel::Verbose);
        assert_eq!(slurm_level(Level::TRACE), LogLevel::Debug);
    }
}
