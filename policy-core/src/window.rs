//! Weekly time windows, such as business hours or a maintenance slot.
//!
//! A window lists weekly slots in one IANA time zone. Slots are compared with
//! the local wall-clock time of that zone, so `08:00`-`18:00` stays 08:00 to
//! 18:00 local time across daylight saving changes. The start is inclusive
//! and the end exclusive; an end of `24:00` means midnight at the end of the
//! day. A slot whose end is before its start runs past midnight into the next
//! day and belongs to the day it starts on: `fri 22:00-06:00` is open from
//! Friday 22:00 to Saturday 06:00, and not on Saturday night.
//!
//! During a daylight saving change the wall clock skips or repeats an hour,
//! and so does the window: a slot starting inside a skipped hour opens when
//! the clock jumps, and the repeated hour is inside a slot twice.
//!
//! Time zones come from the system time zone database (`/usr/share/zoneinfo`,
//! Debian package `tzdata`, or the directory in `TZDIR`), read through `jiff`.
//! Keep `tzdata` up to date on every node, because a stale database gets
//! future daylight saving dates wrong.

use std::fmt;

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// A window as written in the policy's `windows` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// IANA time zone name, such as `Europe/London` or `UTC`.
    pub timezone: String,
    /// Weekly slots; the window is open when any slot is.
    pub weekly: Vec<SlotSpec>,
}

/// One weekly slot: the days it starts on and its local start and end times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotSpec {
    /// Days the slot starts on: `mon`, `tue`, `wed`, `thu`, `fri`, `sat`, `sun`.
    pub days: Vec<String>,
    /// Local start time `HH:MM`, inclusive.
    pub start: String,
    /// Local end time `HH:MM` or `24:00`, exclusive.
    pub end: String,
}

/// A compiled window; see the module documentation for its semantics.
#[derive(Clone)]
pub struct Window {
    timezone_name: String,
    timezone: TimeZone,
    slots: Vec<Slot>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    /// Indexed by weekday, Monday = 0.
    days: [bool; 7],
    /// Minutes after local midnight, 0..=1439.
    start: u16,
    /// Minutes after local midnight, 0..=1440, never equal to `start`. When it
    /// is less than `start`, the slot ends on the next day.
    end: u16,
}

/// How far ahead `current_end` and `next_open` look.
const HORIZON_DAYS: i64 = 8;
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const NANOS_PER_MINUTE: i64 = 60_000_000_000;

impl WindowSpec {
    /// Validates the spec and resolves its time zone.
    ///
    /// # Errors
    ///
    /// Returns every problem as `(path, message)`, where the path is relative
    /// to the window (`timezone`, `weekly[1].days[0]`, `weekly[0].end`) and the
    /// message names the rejected value and the accepted form.
    pub fn compile(&self) -> Result<Window, Vec<(String, String)>> {
        let mut problems = Vec::new();

        let timezone = match TimeZone::get(&self.timezone) {
            Ok(tz) => Some(tz),
            Err(_) => {
                problems.push((
                    "timezone".to_string(),
                    format!(
                        "unknown time zone `{}`: not in the system time zone database; \
                         use an IANA name such as `Europe/London` or `UTC`",
                        self.timezone
                    ),
                ));
                None
            }
        };

        if self.weekly.is_empty() {
            problems.push((
                "weekly".to_string(),
                "no slots: add at least one slot such as {\"days\": [\"mon\"], \"start\": \"08:00\", \"end\": \"18:00\"}"
                    .to_string(),
            ));
        }

        let mut slots = Vec::with_capacity(self.weekly.len());
        for (index, spec) in self.weekly.iter().enumerate() {
            if let Some(slot) = compile_slot(spec, &format!("weekly[{index}]"), &mut problems) {
                slots.push(slot);
            }
        }

        match timezone {
            Some(timezone) if problems.is_empty() => Ok(Window { timezone_name: self.timezone.clone(), timezone, slots }),
            _ => Err(problems),
        }
    }
}

fn compile_slot(spec: &SlotSpec, path: &str, problems: &mut Vec<(String, String)>) -> Option<Slot> {
    let problems_before = problems.len();

    let mut days = [false; 7];
    if spec.days.is_empty() {
        problems.push((
            format!("{path}.days"),
            "no days listed: use one or more of mon, tue, wed, thu, fri, sat, sun".to_string(),
        ));
    }
    for (index, day) in spec.days.iter().enumerate() {
        match DAY_NAMES.iter().position(|name| name == day) {
            Some(weekday) => {
                if let Some(flag) = days.get_mut(weekday) {
                    *flag = true;
                }
            }
            None => problems.push((
                format!("{path}.days[{index}]"),
                format!("invalid day `{day}`: expected one of mon, tue, wed, thu, fri, sat, sun"),
            )),
        }
    }

    let start = parse_minutes(&spec.start, false);
    if start.is_none() {
        problems.push((
            format!("{path}.start"),
            format!("invalid start time `{}`: expected HH:MM from 00:00 to 23:59", spec.start),
        ));
    }
    let end = parse_minutes(&spec.end, true);
    if end.is_none() {
        problems.push((
            format!("{path}.end"),
            format!("invalid end time `{}`: expected HH:MM from 00:00 to 24:00", spec.end),
        ));
    }
    if let (Some(start), Some(end)) = (start, end) {
        if start == end {
            problems.push((
                path.to_string(),
                format!(
                    "start and end are both `{}`, so the slot would be empty; use 00:00 to 24:00 for a whole day",
                    spec.start
                ),
            ));
        }
    }

    match (start, end) {
        (Some(start), Some(end)) if problems.len() == problems_before => Some(Slot { days, start, end }),
        _ => None,
    }
}

/// Parses `HH:MM` (two digits each) into minutes after midnight. `24:00` is
/// accepted only as an end time. An end of `00:00` is less than any start,
/// so it ends the slot at midnight on the next day, like `24:00`.
fn parse_minutes(text: &str, is_end: bool) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    if !hours.bytes().chain(minutes.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: u16 = hours.parse().ok()?;
    let minutes: u16 = minutes.parse().ok()?;
    if minutes > 59 {
        return None;
    }
    let total = hours * 60 + minutes;
    match (hours, is_end) {
        (0..=23, _) => Some(total),
        (24, true) if minutes == 0 => Some(total),
        _ => None,
    }
}

impl Window {
    /// Returns whether the window is open at `now`.
    pub fn contains(&self, now: Timestamp) -> bool {
        self.contains_local(self.timezone.to_datetime(now))
    }

    /// Returns the instant at which the window next closes when it is open at
    /// `now`. Adjacent or overlapping slots count as one open period, so this
    /// is the first instant after `now` at which [`Window::contains`] is false.
    ///
    /// Returns `None` when the window is closed at `now`, or stays open for
    /// the next 8 days.
    pub fn current_end(&self, now: Timestamp) -> Option<Timestamp> {
        if !self.contains(now) {
            return None;
        }
        self.boundaries_after(now).into_iter().find(|&instant| !self.contains(instant))
    }

    /// Returns the first instant at or after `now` at which the window is
    /// open: `now` itself when it is open, otherwise the next opening within
    /// 8 days, or `None` when there is none (possible only for a slot that
    /// falls entirely into a skipped daylight saving hour).
    pub fn next_open(&self, now: Timestamp) -> Option<Timestamp> {
        if self.contains(now) {
            return Some(now);
        }
        self.boundaries_after(now).into_iter().find(|&instant| self.contains(instant))
    }

    /// Returns the time zone name as written in the policy.
    pub fn timezone_name(&self) -> &str {
        &self.timezone_name
    }

    fn contains_local(&self, local: DateTime) -> bool {
        let weekday = usize::try_from(local.weekday().to_monday_zero_offset()).unwrap_or(0);
        let previous_day = (weekday + 6) % 7;
        let time = local.time();
        let nanos_of_day = (i64::from(time.hour()) * 60 + i64::from(time.minute())) * NANOS_PER_MINUTE
            + i64::from(time.second()) * 1_000_000_000
            + i64::from(time.subsec_nanosecond());

        self.slots.iter().any(|slot| {
            let start = i64::from(slot.start) * NANOS_PER_MINUTE;
            let end = i64::from(slot.end) * NANOS_PER_MINUTE;
            let starts_today = slot.days.get(weekday).copied().unwrap_or(false);
            if slot.start < slot.end {
                starts_today && start <= nanos_of_day && nanos_of_day < end
            } else {
                let started_yesterday = slot.days.get(previous_day).copied().unwrap_or(false);
                (starts_today && start <= nanos_of_day) || (started_yesterday && nanos_of_day < end)
            }
        })
    }

    /// Lists, sorted, every instant in `(now, now + 8 days]` at which the
    /// window may open or close. These are the slot boundaries the local clock
    /// reaches (twice inside a repeated hour) and the time zone transitions,
    /// where the clock may jump over a boundary inside a skipped hour.
    fn boundaries_after(&self, now: Timestamp) -> Vec<Timestamp> {
        let Ok(horizon) = now.checked_add(SignedDuration::from_hours(HORIZON_DAYS * 24)) else {
            return Vec::new();
        };
        let mut instants: Vec<Timestamp> = self
            .timezone
            .following(now)
            .map(|transition| transition.timestamp())
            .take_while(|&instant| instant <= horizon)
            .collect();

        let today = self.timezone.to_datetime(now).date();
        let mut day = today.yesterday().unwrap_or(today);
        for _ in 0..=HORIZON_DAYS + 2 {
            let weekday = usize::try_from(day.weekday().to_monday_zero_offset()).unwrap_or(0);
            for slot in self.slots.iter().filter(|slot| slot.days.get(weekday).copied().unwrap_or(false)) {
                self.push_local_instants(&mut instants, day, slot.start);
                let end_day = if slot.end > slot.start { day } else { day.tomorrow().unwrap_or(day) };
                self.push_local_instants(&mut instants, end_day, slot.end);
            }
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }

        instants.retain(|&instant| now < instant && instant <= horizon);
        instants.sort_unstable();
        instants.dedup();
        instants
    }

    /// Pushes the instants at which the local clock shows `minutes` after
    /// midnight of `day`: none in a skipped hour, two in a repeated hour.
    fn push_local_instants(&self, instants: &mut Vec<Timestamp>, day: Date, minutes: u16) {
        let midnight = day.to_datetime(jiff::civil::Time::midnight());
        let Ok(local) = midnight.checked_add(SignedDuration::from_mins(i64::from(minutes))) else {
            return;
        };
        let offsets = match self.timezone.to_ambiguous_timestamp(local).offset() {
            AmbiguousOffset::Unambiguous { offset } => [Some(offset), None],
            AmbiguousOffset::Fold { before, after } => [Some(before), Some(after)],
            AmbiguousOffset::Gap { .. } => [None, None],
        };
        for offset in offsets.into_iter().flatten() {
            if let Ok(instant) = offset.to_timestamp(local) {
                instants.push(instant);
            }
        }
    }
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Window")
            .field("timezone", &self.timezone_name)
            .field("slots", &self.slots)
            .finish()
    }
}

#[cfg(test)]
mod tests;
