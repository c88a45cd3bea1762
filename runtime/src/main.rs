//! `runtime`: the Sealbox customer runtime.
//!
//! Each subcommand lives in its own module under `cli/`; shared options and
//! the wiring of chain, journal, sandbox and meter are in `cli/context.rs`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(args.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let err = anyhow::Error::new(e).context("cannot start the async runtime");
            return sealbox_report::report(cli::BIN, err.as_ref(), sealbox_report::Exit::Failure);
        }
    };
    match runtime.block_on(args.command.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => cli::report(&err),
    }
}
