//! The `voucher-ledger` binary: all behaviour lives in the library (`cli::main`).

/// The process's allocator: mimalloc instead of glibc's malloc, whose small-object paths
/// (`malloc`, `free`, `malloc_consolidate`) took ~8% of the server's CPU on the batched
/// redemption path (issue 12). RocksDB's C++ allocations keep the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    voucher_ledger::cli::main()
}
