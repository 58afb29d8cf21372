use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::{SlotSpec, Window, WindowSpec};

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap_or_else(|e| panic!("bad timestamp {text}: {e}"))
}

fn spec(timezone: &str, slots: &[(&[&str], &str, &str)]) -> WindowSpec {
    WindowSpec {
        timezone: timezone.to_string(),
        weekly: slots
            .iter()
            .map(|(days, start, end)| SlotSpec {
                days: days.iter().map(|d| d.to_string()).collect(),
                start: start.to_string(),
                end: end.to_string(),
            })
            .collect(),
    }
}

fn window(timezone: &str, slots: &[(&[&str], &str, &str)]) -> Window {
    spec(timezone, slots).compile().unwrap_or_else(|e| panic!("window should compile: {e:?}"))
}

fn errors(timezone: &str, slots: &[(&[&str], &str, &str)]) -> Vec<(String, String)> {
    match spec(timezone, slots).compile() {
        Ok(w) => panic!("expected errors, got {w:?}"),
        Err(problems) => problems,
    }
}

fn problem(path: &str, message: &str) -> (String, String) {
    (path.to_string(), message.to_string())
}

const WEEKDAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri"];

#[test]
fn spec_deserializes_and_rejects_unknown_fields() {
    let json = r#"{"timezone": "UTC", "weekly": [{"days": ["sat"], "start": "10:00", "end": "16:00"}]}"#;
    let parsed: WindowSpec = serde_json::from_str(json).unwrap();
    assert_eq!(parsed, spec("UTC", &[(&["sat"], "10:00", "16:00")]));

    let extra = r#"{"timezone": "UTC", "weekly": [], "zone": "x"}"#;
    let err = serde_json::from_str::<WindowSpec>(extra).unwrap_err().to_string();
    assert!(err.starts_with("unknown field `zone`"), "{err}");

    let extra_slot = r#"{"timezone": "UTC", "weekly": [{"days": [], "start": "1", "end": "2", "tz": 1}]}"#;
    let err = serde_json::from_str::<WindowSpec>(extra_slot).unwrap_err().to_string();
    assert!(err.starts_with("unknown field `tz`"), "{err}");
}

#[test]
fn business_hours_in_utc() {
    let w = window("UTC", &[(WEEKDAYS, "08:00", "18:00")]);
    assert_eq!(w.timezone_name(), "UTC");
    // 2026-12-04 is a Friday.
    assert!(!w.contains(ts("2026-12-04T07:59:59Z")));
    assert!(w.contains(ts("2026-12-04T08:00:00Z")));
    assert!(w.contains(ts("2026-12-04T17:59:59.999Z")));
    assert!(!w.contains(ts("2026-12-04T18:00:00Z")));
    assert!(!w.contains(ts("2026-12-05T12:00:00Z")));

    assert_eq!(w.current_end(ts("2026-12-04T09:30:00Z")), Some(ts("2026-12-04T18:00:00Z")));
    assert_eq!(w.current_end(ts("2026-12-04T18:00:00Z")), None);
    // Closed on Friday evening: the next opening is Monday morning.
    assert_eq!(w.next_open(ts("2026-12-04T18:00:00Z")), Some(ts("2026-12-07T08:00:00Z")));
    assert_eq!(w.next_open(ts("2026-12-04T12:00:00Z")), Some(ts("2026-12-04T12:00:00Z")));
}

#[test]
fn overnight_slot_belongs_to_its_start_day() {
    let w = window("Europe/London", &[(&["fri"], "22:00", "06:00")]);
    // December: London is on GMT, so local time equals UTC.
    assert!(!w.contains(ts("2026-12-04T21:59:59Z")), "Friday before the start");
    assert!(w.contains(ts("2026-12-04T22:00:00Z")), "Friday 22:00");
    assert!(w.contains(ts("2026-12-04T23:00:00Z")), "Friday 23:00");
    assert!(w.contains(ts("2026-12-05T00:00:00Z")), "Saturday midnight");
    assert!(w.contains(ts("2026-12-05T05:59:00Z")), "Saturday 05:59");
    assert!(!w.contains(ts("2026-12-05T06:00:00Z")), "Saturday 06:00 is the exclusive end");
    assert!(!w.contains(ts("2026-12-05T23:00:00Z")), "Saturday night: sat is not listed");
    assert!(!w.contains(ts("2026-12-06T05:00:00Z")), "Sunday early morning: sat is not listed");
    assert!(!w.contains(ts("2026-12-03T23:00:00Z")), "Thursday night");
    assert!(!w.contains(ts("2026-12-04T05:00:00Z")), "Friday early morning: thu is not listed");

    assert_eq!(w.current_end(ts("2026-12-04T23:00:00Z")), Some(ts("2026-12-05T06:00:00Z")));
    assert_eq!(w.next_open(ts("2026-12-05T06:00:00Z")), Some(ts("2026-12-11T22:00:00Z")));
    assert_eq!(w.next_open(ts("2026-12-04T12:00:00Z")), Some(ts("2026-12-04T22:00:00Z")));
}

#[test]
fn end_at_midnight_forms() {
    let w = window("UTC", &[(&["mon"], "18:00", "24:00")]);
    // 2026-12-07 is a Monday.
    assert!(w.contains(ts("2026-12-07T23:59:59Z")));
    assert!(!w.contains(ts("2026-12-08T00:00:00Z")));
    assert_eq!(w.current_end(ts("2026-12-07T20:00:00Z")), Some(ts("2026-12-08T00:00:00Z")));

    // `00:00` as the end is the same midnight, reached as an overnight slot.
    let w = window("UTC", &[(&["mon"], "18:00", "00:00")]);
    assert!(w.contains(ts("2026-12-07T23:59:59Z")));
    assert!(!w.contains(ts("2026-12-08T00:00:00Z")));
    assert_eq!(w.current_end(ts("2026-12-07T20:00:00Z")), Some(ts("2026-12-08T00:00:00Z")));
}

#[test]
fn adjacent_slots_form_one_open_period() {
    let w = window("UTC", &[(&["fri"], "18:00", "24:00"), (&["sat"], "00:00", "06:00")]);
    assert!(w.contains(ts("2026-12-05T00:00:00Z")));
    assert_eq!(w.current_end(ts("2026-12-04T20:00:00Z")), Some(ts("2026-12-05T06:00:00Z")));
}

#[test]
fn always_open_window_has_no_end() {
    let all = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let w = window("UTC", &[(all, "00:00", "24:00")]);
    let now = ts("2026-12-04T12:34:56Z");
    assert!(w.contains(now));
    assert_eq!(w.current_end(now), None);
    assert_eq!(w.next_open(now), Some(now));
}

#[test]
fn closed_window_has_no_current_end() {
    let w = window("UTC", &[(&["sat"], "10:00", "16:00")]);
    assert_eq!(w.current_end(ts("2026-12-04T12:00:00Z")), None);
    assert_eq!(w.next_open(ts("2026-12-04T12:00:00Z")), Some(ts("2026-12-05T10:00:00Z")));
    // Just after the slot closes, the next opening is a week later.
    assert_eq!(w.next_open(ts("2026-12-05T16:00:00Z")), Some(ts("2026-12-12T10:00:00Z")));
}

#[test]
fn london_spring_forward_uses_wall_clock() {
    // 2026-03-29 is the last Sunday of March: at 01:00 UTC the clocks go from
    // 01:00 GMT to 02:00 BST, so local 01:00-01:59 does not exist that day.
    let w = window("Europe/London", &[(WEEKDAYS, "08:00", "18:00")]);
    // Friday before the change: GMT, 08:00 local is 08:00 UTC.
    assert!(!w.contains(ts("2026-03-27T07:59:59Z")));
    assert!(w.contains(ts("2026-03-27T08:00:00Z")));
    // Monday after the change: BST, 08:00 local is 07:00 UTC.
    assert!(!w.contains(ts("2026-03-30T06:59:59Z")));
    assert!(w.contains(ts("2026-03-30T07:00:00Z")));
    assert!(!w.contains(ts("2026-03-30T17:00:00Z")));
    assert_eq!(w.next_open(ts("2026-03-27T18:00:00Z")), Some(ts("2026-03-30T07:00:00Z")));
    assert_eq!(w.current_end(ts("2026-03-30T12:00:00Z")), Some(ts("2026-03-30T17:00:00Z")));

    // A slot starting inside the skipped hour opens when the clock jumps.
    let w = window("Europe/London", &[(&["sun"], "01:30", "03:00")]);
    assert!(!w.contains(ts("2026-03-29T00:59:59Z")), "00:59:59 GMT");
    assert!(w.contains(ts("2026-03-29T01:00:00Z")), "02:00 BST");
    assert!(!w.contains(ts("2026-03-29T02:00:00Z")), "03:00 BST");
    assert_eq!(w.next_open(ts("2026-03-28T12:00:00Z")), Some(ts("2026-03-29T01:00:00Z")));
    assert_eq!(w.current_end(ts("2026-03-29T01:30:00Z")), Some(ts("2026-03-29T02:00:00Z")));
    // The next Sunday has the whole slot, in BST.
    assert_eq!(w.next_open(ts("2026-03-29T02:00:00Z")), Some(ts("2026-04-05T00:30:00Z")));

    // A slot entirely inside the skipped hour does not open that Sunday.
    let w = window("Europe/London", &[(&["sun"], "01:10", "01:50")]);
    assert_eq!(w.next_open(ts("2026-03-28T12:00:00Z")), Some(ts("2026-04-05T00:10:00Z")));
}

#[test]
fn london_fall_back_repeats_the_hour() {
    // 2026-10-25 is the last Sunday of October: at 01:00 UTC the clocks go
    // from 02:00 BST back to 01:00 GMT, so local 01:00-01:59 happens twice.
    let w = window("Europe/London", &[(WEEKDAYS, "08:00", "18:00")]);
    // Friday before: BST, 08:00 local is 07:00 UTC.
    assert!(w.contains(ts("2026-10-23T07:00:00Z")));
    // Monday after: GMT, 08:00 local is 08:00 UTC.
    assert!(!w.contains(ts("2026-10-26T07:59:59Z")));
    assert!(w.contains(ts("2026-10-26T08:00:00Z")));
    assert_eq!(w.next_open(ts("2026-10-23T17:00:00Z")), Some(ts("2026-10-26T08:00:00Z")));

    let w = window("Europe/London", &[(&["sun"], "00:00", "01:30")]);
    assert!(w.contains(ts("2026-10-25T00:15:00Z")), "01:15 BST");
    assert_eq!(w.current_end(ts("2026-10-25T00:15:00Z")), Some(ts("2026-10-25T00:30:00Z")));
    assert!(!w.contains(ts("2026-10-25T00:45:00Z")), "01:45 BST");
    assert_eq!(w.next_open(ts("2026-10-25T00:45:00Z")), Some(ts("2026-10-25T01:00:00Z")));
    assert!(w.contains(ts("2026-10-25T01:15:00Z")), "01:15 GMT, the repeated hour");
    assert_eq!(w.current_end(ts("2026-10-25T01:15:00Z")), Some(ts("2026-10-25T01:30:00Z")));
    assert!(!w.contains(ts("2026-10-25T01:30:00Z")), "01:30 GMT");
}

#[test]
fn overnight_slot_across_spring_forward() {
    // Saturday 22:00 GMT to Sunday 06:00 BST is seven hours, not eight.
    let w = window("Europe/London", &[(&["sat"], "22:00", "06:00")]);
    assert!(w.contains(ts("2026-03-28T22:00:00Z")));
    assert!(w.contains(ts("2026-03-29T04:59:59Z")));
    assert!(!w.contains(ts("2026-03-29T05:00:00Z")));
    assert_eq!(w.current_end(ts("2026-03-28T23:00:00Z")), Some(ts("2026-03-29T05:00:00Z")));
}

#[test]
fn other_zone_with_own_offset() {
    let w = window("America/New_York", &[(WEEKDAYS, "09:00", "17:00")]);
    // December: EST is UTC-5.
    assert!(!w.contains(ts("2026-12-04T13:59:59Z")));
    assert!(w.contains(ts("2026-12-04T14:00:00Z")));
    assert_eq!(w.current_end(ts("2026-12-04T15:00:00Z")), Some(ts("2026-12-04T22:00:00Z")));
    // Friday 23:00 UTC is still Friday 18:00 in New York: closed until Monday.
    assert_eq!(w.next_open(ts("2026-12-04T23:00:00Z")), Some(ts("2026-12-07T14:00:00Z")));
}

#[test]
fn invalid_timezone_names_the_value() {
    assert_eq!(
        errors("Europe/Londn", &[(&["mon"], "08:00", "18:00")]),
        vec![problem(
            "timezone",
            "unknown time zone `Europe/Londn`: not in the system time zone database; \
             use an IANA name such as `Europe/London` or `UTC`",
        )]
    );
}

#[test]
fn invalid_days_and_times_name_the_value() {
    let problems = errors(
        "UTC",
        &[
            (&["mon", "Monday"], "8:00", "24:01"),
            (&[], "24:00", "25:00"),
            (&["sun"], "10:60", "1000"),
            (&["sat"], "09:00", "09:00"),
        ],
    );
    assert_eq!(
        problems,
        vec![
            problem("weekly[0].days[1]", "invalid day `Monday`: expected one of mon, tue, wed, thu, fri, sat, sun"),
            problem("weekly[0].start", "invalid start time `8:00`: expected HH:MM from 00:00 to 23:59"),
            problem("weekly[0].end", "invalid end time `24:01`: expected HH:MM from 00:00 to 24:00"),
            problem("weekly[1].days", "no days listed: use one or more of mon, tue, wed, thu, fri, sat, sun"),
            problem("weekly[1].start", "invalid start time `24:00`: expected HH:MM from 00:00 to 23:59"),
            problem("weekly[1].end", "invalid end time `25:00`: expected HH:MM from 00:00 to 24:00"),
            problem("weekly[2].start", "invalid start time `10:60`: expected HH:MM from 00:00 to 23:59"),
            problem("weekly[2].end", "invalid end time `1000`: expected HH:MM from 00:00 to 24:00"),
            problem(
                "weekly[3]",
                "start and end are both `09:00`, so the slot would be empty; use 00:00 to 24:00 for a whole day",
            ),
        ]
    );
}

#[test]
fn time_syntax_is_strict() {
    for bad in ["", "08", "08:0", "8:00", "08:00:00", "+8:00", "08:-1", "0a:00", "٠٨:٠٠", " 08:00"] {
        let problems = errors("UTC", &[(&["mon"], bad, "18:00")]);
        assert_eq!(problems.len(), 1, "start {bad:?}: {problems:?}");
        assert_eq!(problems[0].0, "weekly[0].start", "start {bad:?}");
    }
}

#[test]
fn empty_weekly_list_rejected() {
    assert_eq!(
        errors("Nowhere/City", &[]),
        vec![
            problem(
                "timezone",
                "unknown time zone `Nowhere/City`: not in the system time zone database; \
                 use an IANA name such as `Europe/London` or `UTC`",
            ),
            problem(
                "weekly",
                "no slots: add at least one slot such as {\"days\": [\"mon\"], \"start\": \"08:00\", \"end\": \"18:00\"}",
            ),
        ]
    );
}

/// Daylight saving changes of 2026 and their zones; generated times start
/// near them so every run crosses some of them.
const TRANSITIONS: &[(&str, &str)] = &[
    ("America/New_York", "2026-03-08T07:00:00Z"),    // spring forward
    ("Europe/London", "2026-03-29T01:00:00Z"),       // spring forward
    ("Australia/Lord_Howe", "2026-04-04T15:00:00Z"), // back by 30 minutes
    ("Australia/Lord_Howe", "2026-10-03T15:30:00Z"), // forward by 30 minutes
    ("Europe/London", "2026-10-25T01:00:00Z"),       // fall back
    ("America/New_York", "2026-11-01T06:00:00Z"),    // fall back
    ("UTC", "2026-12-04T12:00:00Z"),                 // no change
];

fn slots() -> impl Strategy<Value = Vec<(Vec<&'static str>, String, String)>> {
    let days = prop::sample::subsequence(super::DAY_NAMES.to_vec(), 1..=7);
    // Half of the times fall between 00:45 and 02:45, where the clocks of
    // these zones change, so slots often start or end in a skipped or
    // repeated interval.
    let start = prop_oneof![0u16..96, 3u16..11];
    let end = prop_oneof![1u16..=96, 3u16..11];
    let slot = (days, start, end)
        .prop_filter("start and end must differ", |(_, start, end)| start != end)
        .prop_map(|(days, start, end)| {
            let time = |quarters: u16| format!("{:02}:{:02}", quarters * 15 / 60, quarters * 15 % 60);
            (days, time(start), time(end))
        });
    prop::collection::vec(slot, 1..4)
}

/// Returns the first minute `now + k` for `k` in `range` at which
/// `contains` equals `open`. All boundaries and offsets are whole minutes, so
/// a scan by minute from a whole minute finds the exact instant.
fn scan(window: &Window, now: Timestamp, range: std::ops::RangeInclusive<i64>, open: bool) -> Option<Timestamp> {
    range
        .map(|minute| now.checked_add(SignedDuration::from_mins(minute)).unwrap())
        .find(|&instant| window.contains(instant) == open)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn boundaries_match_minute_scan(
        (zone, base) in prop::sample::select(TRANSITIONS),
        slots in slots(),
        offset_minutes in -2 * 1440i64..1440,
    ) {
        let slot_refs: Vec<(&[&str], &str, &str)> =
            slots.iter().map(|(days, start, end)| (days.as_slice(), start.as_str(), end.as_str())).collect();
        let window = window(zone, &slot_refs);
        let now = ts(base).checked_add(SignedDuration::from_mins(offset_minutes)).unwrap();
        let horizon = 8 * 1440;

        let expected_open = scan(&window, now, 0..=horizon, true);
        prop_assert_eq!(window.next_open(now), expected_open);

        let expected_end = if window.contains(now) { scan(&window, now, 1..=horizon, false) } else { None };
        prop_assert_eq!(window.current_end(now), expected_end);
    }
}
