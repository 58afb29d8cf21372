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
//! expands to, with each `*` matching as a glob. Text after the last bracket
//! group is literal: `c[1-4]-ib` matches `c1-ib`. Slurm's own parser (as
//! `scontrol show hostnames` in 22.05 shows) rejects such suffixes and `*`,
//! so these forms only exist in the policy. So `c[1-4]*` means `c1*`,
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
mod tests;
