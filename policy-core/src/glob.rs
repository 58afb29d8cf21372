//! Path-style globs for image paths, node names and environment variable
//! names.
//!
//! The only metacharacter is `*`, which matches any run of characters other
//! than `/`, including the empty run. Every other character, `?` and `[`
//! included, matches itself, so a glob never matches more than an admin can
//! read off it.

/// Returns whether `text` matches `pattern`, where `*` matches any run of
/// characters except `/` and everything else is literal.
///
/// ```
/// use policy_core::glob::glob_match;
/// assert!(glob_match("/mnt/images/*.sif", "/mnt/images/torch.sif"));
/// assert!(!glob_match("/mnt/images/*.sif", "/mnt/images/sub/torch.sif"));
/// ```
pub fn glob_match(pattern: &str, text: &str) -> bool {
    // `*` never matches `/` and a literal `/` only matches `/`, so the
    // components of pattern and text pair up one to one.
    if pattern.matches('/').count() != text.matches('/').count() {
        return false;
    }
    pattern
        .split('/')
        .zip(text.split('/'))
        .all(|(pattern_part, text_part)| match_component(pattern_part.as_bytes(), text_part.as_bytes()))
}

/// Matches one `/`-free component with the linear backtracking algorithm:
/// on a mismatch only the most recent `*` needs to take one more byte.
///
/// Working on bytes is exact for UTF-8 input: `*` is ASCII, and the pattern
/// byte after a `*` starts a character, so it never matches a continuation
/// byte in the middle of a character.
fn match_component(pattern: &[u8], text: &[u8]) -> bool {
    let mut p = 0;
    let mut t = 0;
    // Position after the last `*` seen, and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;

    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
            }
            Some(&byte) if text.get(t) == Some(&byte) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((after_star, tried_at)) => {
                    p = after_star;
                    t = tried_at + 1;
                    star = Some((after_star, tried_at + 1));
                }
                None => return false,
            },
        }
    }
    pattern.get(p..).is_some_and(|rest| rest.iter().all(|&byte| byte == b'*'))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::glob_match;

    /// Matches by plain recursion over characters, as a reference.
    fn reference_match(pattern: &[char], text: &[char]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some(('*', rest)) => {
                (0..=text.len()).take_while(|&taken| !text[..taken].contains(&'/')).any(|taken| reference_match(rest, &text[taken..]))
            }
            Some((&literal, rest)) => text.first() == Some(&literal) && reference_match(rest, &text[1..]),
        }
    }

    /// Derives a pattern from `text`, so that most pairs match: each choice
    /// keeps a character, turns it into `*`, puts `*` before it, or swaps
    /// `a` and `b`.
    fn derive_pattern(text: &str, choices: &[u8]) -> String {
        let mut pattern = String::new();
        for (c, choice) in text.chars().zip(choices.iter().chain(std::iter::repeat(&0))) {
            match (choice, c) {
                (1, c) if c != '/' => pattern.push('*'),
                (2, c) => {
                    pattern.push('*');
                    pattern.push(c);
                }
                (3, 'a') => pattern.push('b'),
                (3, 'b') => pattern.push('a'),
                (_, c) => pattern.push(c),
            }
        }
        pattern
    }

    proptest! {
        #[test]
        fn agrees_with_reference(pattern in "[ab/*é]{0,10}", text in "[ab/é]{0,12}") {
            let pattern_chars: Vec<char> = pattern.chars().collect();
            let text_chars: Vec<char> = text.chars().collect();
            prop_assert_eq!(glob_match(&pattern, &text), reference_match(&pattern_chars, &text_chars));
        }

        #[test]
        fn agrees_with_reference_on_near_matches(
            text in "[ab/é]{0,12}",
            choices in prop::collection::vec(0u8..5, 12),
            tail in "[ab/é]{0,3}",
        ) {
            let pattern = derive_pattern(&text, &choices);
            let text = format!("{text}{tail}");
            let pattern_chars: Vec<char> = pattern.chars().collect();
            let text_chars: Vec<char> = text.chars().collect();
            prop_assert_eq!(glob_match(&pattern, &text), reference_match(&pattern_chars, &text_chars), "{} vs {}", pattern, text);
        }
    }

    #[test]
    fn literal_patterns_match_exactly() {
        assert!(glob_match("/opt/images/a.sif", "/opt/images/a.sif"));
        assert!(!glob_match("/opt/images/a.sif", "/opt/images/a.sif2"));
        assert!(!glob_match("/opt/images/a.sif", "/opt/images/a.si"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
    }

    #[test]
    fn star_matches_any_run_including_empty() {
        assert!(glob_match("/img/*.sif", "/img/.sif"));
        assert!(glob_match("/img/*.sif", "/img/pytorch-2.4.sif"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("gpu-*", "gpu-"));
        assert!(glob_match("gpu-*", "gpu-a100-01"));
        assert!(!glob_match("gpu-*", "gpu"));
        assert!(glob_match("LD_*", "LD_PRELOAD"));
        assert!(!glob_match("LD_*", "XLD_PRELOAD"));
    }

    #[test]
    fn star_never_crosses_slash() {
        assert!(!glob_match("/img/*.sif", "/img/sub/x.sif"));
        assert!(!glob_match("/img/*", "/img/sub/x.sif"));
        assert!(!glob_match("*", "a/b"));
        assert!(glob_match("*/*", "a/b"));
        assert!(glob_match("/img/*/*.sif", "/img/sub/x.sif"));
        // The star may match the empty run after the last slash.
        assert!(glob_match("/img/*", "/img/"));
        assert!(glob_match("/img/*/", "/img//"));
    }

    #[test]
    fn several_stars_backtrack() {
        assert!(glob_match("*a*b*c", "xxaxxbxxc"));
        assert!(glob_match("a*a*a", "aaa"));
        assert!(glob_match("a*a*a", "abababa"));
        assert!(!glob_match("a*a*a", "aa"));
        assert!(glob_match("**", "x"));
        assert!(glob_match("*.tar.*", "x.tar.gz"));
        assert!(!glob_match("*.tar.*", "x.tgz"));
    }

    #[test]
    fn other_metacharacters_are_literal() {
        assert!(glob_match("a?c", "a?c"));
        assert!(!glob_match("a?c", "abc"));
        assert!(glob_match("c[1-2]", "c[1-2]"));
        assert!(!glob_match("c[1-2]", "c1"));
        // A backslash does not escape the star after it.
        assert!(glob_match("a\\*", "a\\b"));
        assert!(!glob_match("a\\*", "a*"));
    }

    #[test]
    fn multibyte_characters_match_whole() {
        assert!(glob_match("/daten/*ß.sif", "/daten/straß.sif"));
        assert!(glob_match("*é", "café"));
        assert!(!glob_match("*é", "cafe"));
    }
}
