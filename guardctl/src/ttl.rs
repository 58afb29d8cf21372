//! Parsing of ticket lifetimes such as `90m` or `2h`.

/// Parses a lifetime written as a positive whole number followed by one unit:
/// `s` (seconds), `m` (minutes), `h` (hours) or `d` (days). Returns seconds.
pub fn parse_ttl(text: &str) -> Result<i64, String> {
    let expected = "expected a positive whole number followed by s, m, h or d, for example 90m or 2h";
    let mut characters = text.chars();
    let Some(unit) = characters.next_back() else {
        return Err(format!("empty lifetime: {expected}"));
    };
    let digits = characters.as_str();
    let seconds_per_unit: i64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("invalid lifetime `{text}`: missing or unknown unit: {expected}")),
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("invalid lifetime `{text}`: {expected}"));
    }
    let number: i64 = digits.parse().map_err(|_| format!("lifetime `{text}` is too large"))?;
    if number == 0 {
        return Err(format!("invalid lifetime `{text}`: the lifetime must be above zero"));
    }
    number.checked_mul(seconds_per_unit).ok_or_else(|| format!("lifetime `{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("45s"), Ok(45));
        assert_eq!(parse_ttl("90m"), Ok(5400));
        assert_eq!(parse_ttl("2h"), Ok(7200));
        assert_eq!(parse_ttl("1d"), Ok(86_400));
    }

    #[test]
    fn ttl_rejects_missing_unit() {
        assert_eq!(
            parse_ttl("120"),
            Err("invalid lifetime `120`: missing or unknown unit: expected a positive whole number \
                 followed by s, m, h or d, for example 90m or 2h"
                .to_owned())
        );
    }

    #[test]
    fn ttl_rejects_malformed_numbers() {
        for text in ["h", "-2h", "1.5h", "2 h", "+2h", "2hh"] {
            assert!(parse_ttl(text).is_err(), "{text} was accepted");
        }
        assert_eq!(parse_ttl("0h"), Err("invalid lifetime `0h`: the lifetime must be above zero".to_owned()));
        assert_eq!(parse_ttl("99999999999999999999d"), Err("lifetime `99999999999999999999d` is too large".to_owned()));
        assert_eq!(parse_ttl("9999999999999999d"), Err("lifetime `9999999999999999d` is too large".to_owned()));
    }

    #[test]
    fn ttl_rejects_empty() {
        assert!(parse_ttl("").unwrap_err().starts_with("empty lifetime: "));
    }
}
