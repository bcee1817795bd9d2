//! The `aidhub` command: parse the command line and hand over to the library.

/// jemalloc: the request path allocates small buffers on both worker threads, where glibc's
/// allocator showed up in the profile (about 8% of the hub's CPU under load), and jemalloc
/// keeps the idle footprint small (unlike mimalloc's per-thread segments).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    aidhub::cli::main()
}
