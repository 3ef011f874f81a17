//! The `mock-srv` binary: arguments to a `Config`, bind, run.

use std::io::Write;
use std::process::ExitCode;

use mock_srv::config::{Command, HELP};
use mock_srv::{Error, Server};

fn main() -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let config = match Command::parse(std::env::args_os().skip(1), env) {
        Ok(Command::Run(config)) => *config,
        Ok(Command::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("mock-srv {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(&e),
    };
    let mut server = match Server::bind(config).and_then(|mut s| s.handle_signals().map(|()| s)) {
        Ok(server) => server,
        Err(e) => return fail(&e),
    };
    // The first line on stdout says where to go; with --port 0 it is how to find the port.
    println!("mock-srv listening on http://{}", server.local_addr());
    let _ = std::io::stdout().flush();
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Prints a one-line reason and returns the error's exit code (2 usage/data, 1 runtime).
fn fail(e: &Error) -> ExitCode {
    eprintln!("mock-srv: {e}");
    ExitCode::from(e.exit_code() as u8)
}
