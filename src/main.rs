//! The `starpipe` binary: the command line lives in `cli/` (flags → options → a library call);
//! everything a command does is in the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
