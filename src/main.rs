//! The `starpipe` binary: the command line lives in `cli/` (flags → options → a library call);
//! everything a command does is in the library.

mod cli;

// mimalloc: ingest allocates and frees a few buffers per spectrum, millions of times; glibc's
// allocator spent ~8 % of DESI ingest consolidating and unlinking chunks (scripts/bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
