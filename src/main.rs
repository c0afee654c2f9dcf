//! The `voucher-ledger` binary: all behaviour lives in the library (`cli::main`).

fn main() -> std::process::ExitCode {
    voucher_ledger::cli::main()
}
