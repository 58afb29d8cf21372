//! Load errors: every problem found in a policy file, each with its JSON path,
//! line and column.

use std::fmt;

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON path of the offending value, like `environments.prod.windows[0]`;
    /// empty for the whole document or for I/O errors.
    pub path: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// Description of the problem and of the expected value.
    pub message: String,
}

/// Every problem that prevented a policy from loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// File path or other name of the policy source.
    pub origin: String,
    /// The problems, in document order for cross-reference checks.
    pub problems: Vec<Problem>,
}

impl LoadError {
    /// Builds an error with a single problem that has no position (I/O, permissions).
    pub fn whole(origin: &str, message: String) -> LoadError {
        LoadError {
            origin: origin.to_owned(),
            problems: vec![Problem { path: String::new(), line: 0, column: 0, message }],
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.path.is_empty()) {
            (0, true) => formatter.write_str(&self.message),
            (0, false) => write!(formatter, "{}: {}", self.path, self.message),
            (_, true) => write!(formatter, "{}:{}: {}", self.line, self.column, self.message),
            (_, false) => write!(formatter, "{}:{}: {}: {}", self.line, self.column, self.path, self.message),
        }
    }
}

impl fmt::Display for LoadError {
    /// Writes one line per problem: `{origin}:{line}:{column}: {path}: {message}`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (number, problem) in self.problems.iter().enumerate() {
            if number > 0 {
                formatter.write_str("\n")?;
            }
            if problem.line == 0 {
                write!(formatter, "{}: {}", self.origin, problem)?;
            } else {
                write!(formatter, "{}:{}", self.origin, problem)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}
