use clap::{Parser, Subcommand};
use conclave_server::config::{ServeArgs, Settings};
use std::process::ExitCode;

/// Conclave: a conference-call server for SIP phones, trunks and browsers.
#[derive(Parser)]
#[command(name = "conclave", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTP API, and SIP and media as they land).
    Serve(ServeArgs),
    /// Print the OpenAPI 3.1 document of the management API.
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Openapi => {
            println!("{}", conclave_server::api::openapi_json());
            ExitCode::SUCCESS
        }
        Command::Serve(args) => {
            let settings = match Settings::load(args) {
                Ok(settings) => settings,
                Err(err) => {
                    eprintln!("conclave: {err:#}");
                    return ExitCode::from(2);
                }
            };
            // Whatever the server creates (database, keys, recordings) is its user's alone.
            // SAFETY: umask only sets the process's file creation mask.
            unsafe {
                libc::umask(0o077);
            }
            conclave_server::limits::tune_allocator();
            conclave_server::telemetry::init_logging(&settings.log);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(err) => {
                    eprintln!("conclave: cannot start the async runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(conclave_server::serve(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("conclave: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
