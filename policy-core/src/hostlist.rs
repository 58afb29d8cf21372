//! Node name patterns: Slurm hostlist ranges and `*` globs.
//!
//! A pattern is literal text with any number of bracket groups and stars:
//!
//! - `c[1-4,7]` matches `c1` to `c4` and `c7`.
//! - `c[01-10]` is zero-padded to the width of the lower bound as written,
//!   as Slurm prints it: `c01` and `c10` match, `c1` and `c010` do not.
//! - `r[1-2]n[1-3]` combines groups, like Slurm's hostlist expansion.
//! - `*` matches any run of characters (never `/`), as in [`crate::glob`].
//!
//! A pattern matches a node when the node is one of the names the pattern
//! expands to, with each `*` matching as a glob. So `c[1-4]*` means `c1*`,
//! `c2*`, `c3*` or `c4*`, and matches `c1-ib` but also `c10` and `c42`.
//! Write `c[1-4]-*` when the suffix has a separator.

use std::fmt;

/// One compiled node pattern from an environment's `nodes` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePattern {
    source: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Star,
    /// A bracket group: the digits match when any of the ranges matches.
    Numbers(Vec<NumberRange>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NumberRange {
    low: u64,
    high: u64,
    /// Digits the lower bound was written with; shorter numbers are
    /// zero-padded to this width.
    width: usize,
}

/// Maximum digits of a number in a bracket group, so every number fits a `u64`.
const MAX_DIGITS: usize = 18;

impl NodePattern {
    /// Parses a node pattern such as `c[1-4,7]`, `gpu-*` or `r[1-2]n[01-16]`.
    ///
    /// # Errors
    ///
    /// Returns a message naming the pattern when it is empty, contains a
    /// character that cannot occur in a node name, has an unclosed or empty
    /// bracket group, or a range that is not `N` or `N-M` with `N <= M`.
    pub fn parse(s: &str) -> Result<NodePattern, String> {
        if s.is_empty() {
            return Err("empty node pattern: write a node name (`c1`), a range (`c[1-4]`) or a glob (`gpu-*`)"
                .to_string());
        }

        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = s;
        while let Some(ch) = rest.chars().next() {
            rest = &rest[ch.len_utf8()..];
            match ch {
                '[' => {
                    let Some(close) = rest.find(']') else {
                        return Err(format!("invalid node pattern `{s}`: `[` is not closed by `]`"));
                    };
                    let group = &rest[..close];
                    rest = &rest[close + 1..];
                    push_literal(&mut segments, &mut literal);
                    segments.push(Segment::Numbers(parse_group(s, group)?));
                }
                ']' => {
                    return Err(format!("invalid node pattern `{s}`: `]` without a matching `[`"));
                }
                '*' => {
                    push_literal(&mut segments, &mut literal);
                    if segments.last() != Some(&Segment::Star) {
                        segments.push(Segment::Star);
                    }
                }
                ',' => {
                    return Err(format!(
                        "invalid node pattern `{s}`: `,` is only allowed inside brackets; \
                         list each pattern as its own entry"
                    ));
                }
                c if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') => literal.push(c),
                other => {
                    return Err(format!(
                        "invalid node pattern `{s}`: `{}` cannot occur in a node name \
                         (use letters, digits, `-`, `_`, `.`, `[ranges]` and `*`)",
                        other.escape_default()
                    ));
                }
            }
        }
        push_literal(&mut segments, &mut literal);

        Ok(NodePattern { source: s.to_string(), segments })
    }

    /// Returns whether `node` is one of the names this pattern stands for.
    pub fn matches(&self, node: &str) -> bool {
        match_segments(&self.segments, node.as_bytes())
    }

    /// Returns the pattern as written in the policy.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for NodePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn push_literal(segments: &mut Vec<Segment>, literal: &mut String) {
    if !literal.is_empty() {
        segments.push(Segment::Literal(std::mem::take(literal)));
    }
}

/// Parses the inside of one bracket group, such as `1-4,7` or `01-10`.
fn parse_group(pattern: &str, group: &str) -> Result<Vec<NumberRange>, String> {
    if group.is_empty() {
        return Err(format!("invalid node pattern `{pattern}`: empty `[]`; write ranges such as `[1-4,7]`"));
    }
    if group.contains('[') {
        return Err(format!("invalid node pattern `{pattern}`: brackets cannot be nested"));
    }

    let mut ranges = Vec::new();
    for item in group.split(',') {
        let (low_text, high_text) = item.split_once('-').unwrap_or((item, item));
        let low = parse_number(pattern, item, low_text)?;
        let high = parse_number(pattern, item, high_text)?;
        if low > high {
            return Err(format!(
                "invalid node pattern `{pattern}`: range `{item}` goes down; write the lower number first \
                 (`{high_text}-{low_text}`)"
            ));
        }
        ranges.push(NumberRange { low, high, width: low_text.len() });
    }
    Ok(ranges)
}

fn parse_number(pattern: &str, item: &str, digits: &str) -> Result<u64, String> {
    if item.is_empty() {
        return Err(format!(
            "invalid node pattern `{pattern}`: empty range between commas; write ranges such as `[1-4,7]`"
        ));
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid node pattern `{pattern}`: range `{item}` must be a number `N` or `N-M` of decimal digits"
        ));
    }
    if digits.len() > MAX_DIGITS {
        return Err(format!(
            "invalid node pattern `{pattern}`: number `{digits}` has more than {MAX_DIGITS} digits"
        ));
    }
    digits
        .parse()
        .map_err(|_| format!("invalid node pattern `{pattern}`: number `{digits}` is out of range"))
}

/// Matches `node` against `segments`, backtracking over the length of each
/// star and digit run. Node names are short, so the search stays small.
fn match_segments(segments: &[Segment], node: &[u8]) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return node.is_empty();
    };
    match first {
        Segment::Literal(text) => node
            .strip_prefix(text.as_bytes())
            .is_some_and(|remaining| match_segments(rest, remaining)),
        Segment::Star => {
            let run = node.iter().take_while(|&&b| b != b'/').count();
            (0..=run).any(|taken| match_segments(rest, &node[taken..]))
        }
        Segment::Numbers(ranges) => {
            let run = node.iter().take_while(|b| b.is_ascii_digit()).count();
            (1..=run).any(|taken| {
                let (digits, remaining) = node.split_at(taken);
                ranges.iter().any(|range| range.matches(digits)) && match_segments(rest, remaining)
            })
        }
    }
}

impl NumberRange {
    /// Returns whether `digits` (ASCII digits only) is a number of this range
    /// printed the way Slurm prints it: zero-padded to `width`.
    fn matches(&self, digits: &[u8]) -> bool {
        if digits.len() > MAX_DIGITS + 1 {
            return false;
        }
        let padded_as_written = digits.len() == self.width
            || (digits.len() > self.width && digits.first() != Some(&b'0'));
        if !padded_as_written {
            return false;
        }
        let value = digits
            .iter()
            .fold(0u64, |acc, &digit| acc.saturating_mul(10).saturating_add(u64::from(digit - b'0')));
        (self.low..=self.high).contains(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::NodePattern;

    fn pattern(s: &str) -> NodePattern {
        NodePattern::parse(s).unwrap_or_else(|e| panic!("`{s}` should parse: {e}"))
    }

    #[test]
    fn plain_name_matches_itself_only() {
        let p = pattern("login1");
        assert!(p.matches("login1"));
        assert!(!p.matches("login10"));
        assert!(!p.matches("login"));
        assert!(!p.matches(""));
    }

    #[test]
    fn range_list_matches_members() {
        let p = pattern("c[1-4,7]");
        for node in ["c1", "c2", "c3", "c4", "c7"] {
            assert!(p.matches(node), "{node}");
        }
        for node in ["c0", "c5", "c6", "c8", "c10", "c14", "c", "c1x", "d1", "c01"] {
            assert!(!p.matches(node), "{node}");
        }
    }

    #[test]
    fn zero_padding_follows_lower_bound_width() {
        let p = pattern("c[01-10]");
        assert!(p.matches("c01"));
        assert!(p.matches("c09"));
        assert!(p.matches("c10"));
        assert!(!p.matches("c1"));
        assert!(!p.matches("c010"));
        assert!(!p.matches("c00"));
        assert!(!p.matches("c11"));

        let p = pattern("n[001-120]");
        assert!(p.matches("n001"));
        assert!(p.matches("n120"));
        assert!(!p.matches("n01"));
        assert!(!p.matches("n0120"));

        // Numbers wider than the padding are printed without leading zeros.
        let p = pattern("c[8-10]");
        assert!(p.matches("c8"));
        assert!(p.matches("c10"));
        assert!(!p.matches("c08"));
        assert!(!p.matches("c010"));
    }

    #[test]
    fn several_groups_combine() {
        let p = pattern("r[1-2]n[1-3]");
        for node in ["r1n1", "r1n3", "r2n2"] {
            assert!(p.matches(node), "{node}");
        }
        for node in ["r3n1", "r1n4", "r1n", "rn1", "r12n1"] {
            assert!(!p.matches(node), "{node}");
        }
    }

    #[test]
    fn digit_after_group_is_part_of_expansion() {
        // Slurm expands `c[1-2]0` to `c10` and `c20`.
        let p = pattern("c[1-2]0");
        assert!(p.matches("c10"));
        assert!(p.matches("c20"));
        assert!(!p.matches("c1"));
        assert!(!p.matches("c30"));
    }

    #[test]
    fn star_globs() {
        let p = pattern("gpu-*");
        assert!(p.matches("gpu-"));
        assert!(p.matches("gpu-a100-01"));
        assert!(!p.matches("gpu"));
        assert!(!p.matches("xgpu-1"));

        let p = pattern("*");
        assert!(p.matches(""));
        assert!(p.matches("anything"));
    }

    #[test]
    fn group_followed_by_star_expands_first() {
        let p = pattern("c[1-4]*");
        assert!(p.matches("c1"));
        assert!(p.matches("c1-ib"));
        assert!(p.matches("c4x"));
        // Documented: `c[1-4]*` is `c1*` or ... `c4*`, so `c10` matches.
        assert!(p.matches("c10"));
        assert!(!p.matches("c5"));
        assert!(!p.matches("c"));

        let p = pattern("c[1-4]-*");
        assert!(p.matches("c1-ib"));
        assert!(!p.matches("c10-ib"));
    }

    #[test]
    fn display_returns_source() {
        assert_eq!(pattern("r[1-2]n*").to_string(), "r[1-2]n*");
        assert_eq!(pattern("c[01-10]").as_str(), "c[01-10]");
    }

    #[test]
    fn invalid_patterns_name_the_pattern() {
        let cases = [
            ("", "empty node pattern: write a node name (`c1`), a range (`c[1-4]`) or a glob (`gpu-*`)"),
            ("c[4-1]", "invalid node pattern `c[4-1]`: range `4-1` goes down; write the lower number first (`1-4`)"),
            ("c[a-b]", "invalid node pattern `c[a-b]`: range `a-b` must be a number `N` or `N-M` of decimal digits"),
            ("c[1-4", "invalid node pattern `c[1-4`: `[` is not closed by `]`"),
            ("c1-4]", "invalid node pattern `c1-4]`: `]` without a matching `[`"),
            ("c[]", "invalid node pattern `c[]`: empty `[]`; write ranges such as `[1-4,7]`"),
            ("c[1,,2]", "invalid node pattern `c[1,,2]`: empty range between commas; write ranges such as `[1-4,7]`"),
            ("c[1-]", "invalid node pattern `c[1-]`: range `1-` must be a number `N` or `N-M` of decimal digits"),
            ("c[1-2-3]", "invalid node pattern `c[1-2-3]`: range `1-2-3` must be a number `N` or `N-M` of decimal digits"),
            ("c[[1]]", "invalid node pattern `c[[1]]`: brackets cannot be nested"),
            ("c1,c2", "invalid node pattern `c1,c2`: `,` is only allowed inside brackets; list each pattern as its own entry"),
            (
                "c 1",
                "invalid node pattern `c 1`: ` ` cannot occur in a node name (use letters, digits, `-`, `_`, `.`, `[ranges]` and `*`)",
            ),
            (
                "c?",
                "invalid node pattern `c?`: `?` cannot occur in a node name (use letters, digits, `-`, `_`, `.`, `[ranges]` and `*`)",
            ),
            (
                "c[1-1234567890123456789]",
                "invalid node pattern `c[1-1234567890123456789]`: number `1234567890123456789` has more than 18 digits",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(NodePattern::parse(input).err().as_deref(), Some(expected), "pattern {input:?}");
        }
    }

    #[test]
    fn long_digit_runs_do_not_overflow() {
        let p = pattern("c[1-4]");
        assert!(!p.matches("c99999999999999999999999999"));
        let p = pattern("c[0-999999999999999999]");
        assert!(p.matches("c999999999999999999"));
        assert!(!p.matches("c9999999999999999999"));
    }
}
