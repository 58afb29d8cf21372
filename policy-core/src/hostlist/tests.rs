use std::collections::BTreeSet;

use proptest::prelude::*;

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
    // Slurm 22.05 rejects text after the last group; here it is literal.
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
    // As documented, `c[1-4]*` means `c1*` to `c4*`, so `c10` matches.
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

/// One piece of a generated pattern: literal text, or a bracket group given
/// as `(low, high, extra zeros before low)` ranges.
#[derive(Debug, Clone)]
enum Piece {
    Literal(&'static str),
    Group(Vec<(u64, u64, usize)>),
}

fn pieces() -> impl Strategy<Value = Vec<Piece>> {
    let literal = prop::sample::select(&["c", "n", "-", "x1", "0"][..]).prop_map(Piece::Literal);
    let range = (0u64..15, 0u64..12, 0usize..3).prop_map(|(low, span, zeros)| (low, low + span, zeros));
    let group = prop::collection::vec(range, 1..3).prop_map(Piece::Group);
    prop::collection::vec(prop_oneof![literal, group], 1..4)
}

/// Writes the pieces as a pattern and expands it the way Slurm does:
/// every number zero-padded to the width of its range's lower bound.
fn render_and_expand(pieces: &[Piece]) -> (String, BTreeSet<String>) {
    let mut pattern = String::new();
    let mut names = BTreeSet::from([String::new()]);
    for piece in pieces {
        let options: Vec<String> = match piece {
            Piece::Literal(text) => {
                pattern.push_str(text);
                vec![text.to_string()]
            }
            Piece::Group(ranges) => {
                let mut written = Vec::new();
                let mut options = Vec::new();
                for &(low, high, zeros) in ranges {
                    let low_text = format!("{}{low}", "0".repeat(zeros));
                    let width = low_text.len();
                    written.push(if low == high { low_text } else { format!("{low_text}-{high}") });
                    options.extend((low..=high).map(|n| format!("{n:0width$}")));
                }
                pattern.push_str(&format!("[{}]", written.join(",")));
                options
            }
        };
        names = names.iter().flat_map(|name| options.iter().map(move |option| format!("{name}{option}"))).collect();
    }
    (pattern, names)
}

proptest! {
    #[test]
    fn matches_exactly_the_slurm_expansion(
        pieces in pieces(),
        others in prop::collection::vec("[cnx0-9-]{0,7}", 0..40),
    ) {
        let (text, names) = render_and_expand(&pieces);
        let pattern = NodePattern::parse(&text).unwrap();
        for name in &names {
            prop_assert!(pattern.matches(name), "{text} should match {name}");
        }
        for name in &others {
            prop_assert_eq!(pattern.matches(name), names.contains(name), "{} against {}", text, name);
        }
    }

    #[test]
    fn parse_and_match_never_panic(text in "[a-z0-9\\[\\],*-]{0,16}", node in "[a-z0-9-]{0,12}") {
        if let Ok(pattern) = NodePattern::parse(&text) {
            let _ = pattern.matches(&node);
        }
    }
}
