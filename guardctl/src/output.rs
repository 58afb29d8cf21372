//! Writing command output in one piece.

use std::io::Write;

use crate::failure::Failure;

/// Writes `text` to standard output in one call. A closed pipe (for example
/// `guardctl explain ... | head -1`) is not an error worth reporting.
pub fn print(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(Failure::new(format!("cannot write to standard output: {error}"))),
    }
}

/// Returns "1 environment" or "3 environments".
pub fn count(number: usize, singular: &str, plural: &str) -> String {
    if number == 1 {
        format!("1 {singular}")
    } else {
        format!("{number} {plural}")
    }
}

/// Quotes one argument for a POSIX shell, leaving plain words unquoted, so
/// that a printed command line can be pasted into a terminal as it is.
pub fn shell_quote(argument: &str) -> String {
    let plain = !argument.is_empty()
        && argument
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_./:=,+@%".contains(&byte));
    if plain {
        argument.to_owned()
    } else {
        format!("'{}'", argument.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_leaves_plain_words() {
        assert_eq!(shell_quote("--bind"), "--bind");
        assert_eq!(shell_quote("/mnt/hpc-data:/data:ro"), "/mnt/hpc-data:/data:ro");
    }

    #[test]
    fn shell_quote_quotes_special_characters() {
        assert_eq!(shell_quote("two words"), "'two words'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }

    #[test]
    fn count_uses_singular_for_one() {
        assert_eq!(count(1, "image set", "image sets"), "1 image set");
        assert_eq!(count(0, "image set", "image sets"), "0 image sets");
    }
}
