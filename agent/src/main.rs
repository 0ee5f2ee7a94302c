//! The `runnel` binary: parses the command line and hands over to [`runnel_agent::cli`].

use clap::Parser;
use runnel_agent::cli::{run_agent, run_logs, Cli, Command};

fn main() {
    let cli = Cli::parse();
    let code = match &cli.command {
        Command::Agent(args) => run_agent(args),
        Command::Logs(args) => run_logs(args),
        Command::CheckConfig { file } => match runnel_config::check(file) {
            Ok(effective) => {
                print!("{effective}");
                0
            }
            Err(e) => {
                eprintln!("{e}");
                2
            }
        },
    };
    std::process::exit(code);
}
