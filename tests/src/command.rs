//! Running client commands and reading their results.

use std::fmt;
use std::process::Command;

/// Exit code and output of a finished command.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for failure messages.
    pub command: String,
    /// Exit code; -1 when a signal killed the command.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Runs `command` to completion and captures its output.
    pub fn capture(command: &mut Command, description: String) -> Output {
        match command.output() {
            Ok(output) => Output {
                command: description,
                code: output.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            },
            Err(error) => Output { command: description, code: -1, stdout: String::new(), stderr: format!("cannot run: {error}") },
        }
    }

    /// Returns the lines of standard output.
    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Returns the lines of standard error and standard output that contain `spank-guard: `.
    pub fn guard_lines(&self) -> Vec<&str> {
        self.stderr.lines().chain(self.stdout.lines()).filter(|line| line.contains("spank-guard: ")).collect()
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        writeln!(f, "exit code: {}", self.code)?;
        writeln!(f, "--- stdout\n{}", self.stdout)?;
        write!(f, "--- stderr\n{}", self.stderr)
    }
}
