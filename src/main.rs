//! The `aidhub` command: parse the command line and hand over to the library.

fn main() -> std::process::ExitCode {
    aidhub::cli::main()
}
