//! Feeds arbitrary strings to the parsers of values that users control on
//! the command line or in the job environment: bind lists, container flag
//! lists and node names. Any input must give a value or an error message,
//! never a panic, and what parses must satisfy the documented rules.

#![no_main]

use libfuzzer_sys::fuzz_target;
use policy_core::binds::{format_bind_argument, parse_bind_list};
use policy_core::flags::{check_flag, split_flag_list};
use policy_core::hostlist::NodePattern;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(binds) = parse_bind_list(text) {
        for bind in binds {
            assert!(!bind.source.is_empty(), "empty source from {text:?}");
            assert!(!bind.source.contains([',', ':', '^', '\\']), "unsplit source from {text:?}");
            if bind.check_destination().is_ok() {
                if let Some(destination) = &bind.destination {
                    assert!(destination.starts_with('/'));
                    assert!(!destination.split('/').any(|component| component == ".."));
                }
            }
            let destination = bind.destination.clone().unwrap_or_else(|| bind.source.clone());
            if let Ok(argument) = format_bind_argument(&bind.source, &destination, bind.mode) {
                // The argument reparses to the same bind.
                let reparsed = parse_bind_list(&argument).unwrap_or_default();
                assert_eq!(reparsed.len(), 1, "{argument:?}");
            }
        }
    }

    let allowed = vec!["--nv".to_string(), "--pwd".to_string()];
    for flag in split_flag_list(text) {
        if check_flag(&flag, &allowed).is_ok() {
            let name = flag.split_once('=').map_or(flag.as_str(), |(name, _)| name);
            assert!(allowed.iter().any(|entry| entry == name), "{flag:?} passed");
        }
    }

    // Node patterns are short; keep the backtracking search small.
    if text.len() <= 64 {
        if let Ok(pattern) = NodePattern::parse(text) {
            let _ = pattern.matches("c01");
            let _ = pattern.matches(text);
        }
    }
});
