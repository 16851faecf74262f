//! The `slack-bridge` binary: parse the command line, hand over to the library, and turn any
//! error into one `Error: …` message and an exit status: 78 for configuration errors (a
//! restart cannot help), 1 for the rest.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match slack_bridge::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            eprintln!("Error: {}", text.trim_end());
            return ExitCode::from(1);
        }
    };
    match slack_bridge::execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
