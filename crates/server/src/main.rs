use clap::{Parser, Subcommand};
use conclave_server::config::{ServeArgs, Settings};
use std::path::PathBuf;
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
    /// Re-wrap every recording's key under a new master key (the audio is not touched).
    /// Stop the server first, then start it with --recording-key-file naming the new file.
    RotateRecordingKey {
        /// The new master key: made (32 random bytes, readable by this user only) when the
        /// file does not exist.
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
        /// The server's settings: its data directory, database and current key file.
        #[command(flatten)]
        serve: ServeArgs,
    },
}

/// The settings from flags, environment and file; and whatever the server creates
/// (database, keys, recordings) is its user's alone.
fn settings(args: ServeArgs) -> Result<Settings, ExitCode> {
    let settings = Settings::load(args).map_err(|err| {
        eprintln!("conclave: {err:#}");
        ExitCode::from(2)
    })?;
    // SAFETY: umask only sets the process's file creation mask.
    unsafe {
        libc::umask(0o077);
    }
    Ok(settings)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Openapi => {
            println!("{}", conclave_server::api::openapi_json());
            ExitCode::SUCCESS
        }
        Command::RotateRecordingKey {
            new_key_file,
            serve,
        } => {
            let settings = match settings(serve) {
                Ok(settings) => settings,
                Err(code) => return code,
            };
            let rotated = tokio::runtime::Runtime::new()
                .map_err(anyhow::Error::from)
                .and_then(|rt| {
                    rt.block_on(conclave_server::recording::rotate_master_key(
                        &settings,
                        &new_key_file,
                    ))
                });
            match rotated {
                Ok(n) => {
                    println!(
                        "{n} recording keys re-wrapped: start the server with --recording-key-file {}",
                        new_key_file.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("conclave: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(args) => {
            let settings = match settings(args) {
                Ok(settings) => settings,
                Err(code) => return code,
            };
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
