//! `guardctl`: the admin and CI command line of spank-guard. It checks
//! policies, explains the decision a job would get, and issues and verifies
//! approval tickets, with the same policy-core library the plugin uses.

mod cli;
mod commands;
mod failure;
mod output;
mod ttl;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, TicketCommand};
use failure::Status;

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with status 2.
    let cli = Cli::parse();

    let result = match cli.command {
        Command::Check(arguments) => commands::check::run(&arguments),
        Command::Explain(arguments) => commands::explain::run(&arguments),
        Command::Ticket { command } => match command {
            TicketCommand::Keygen(arguments) => commands::ticket::keygen(&arguments),
            TicketCommand::Issue(arguments) => commands::ticket::issue(&arguments),
            TicketCommand::Verify(arguments) => commands::ticket::verify(&arguments),
        },
        Command::Plugin { command } => commands::plugin::run(&command),
        Command::Policy { command } => commands::policy::run(&command),
        Command::Audit { command } => commands::audit::run(&command),
        Command::Replay(arguments) => commands::replay::run(&arguments),
        Command::Evidence(arguments) => commands::evidence::run(&arguments),
        Command::Metrics { command } => commands::metrics::run(&command),
    };

    match result {
        Ok(status) => ExitCode::from(status.code()),
        Err(failure) => {
            eprintln!("guardctl: {failure}");
            ExitCode::from(Status::Failure.code())
        }
    }
}
