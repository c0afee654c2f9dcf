//! Compiles the gRPC protos in proto/voucher/v1 with protoc (from the system package
//! protobuf-compiler) and writes the descriptor set used by server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/voucher/v1/types.proto",
        "proto/voucher/v1/programme.proto",
        "proto/voucher/v1/registry.proto",
        "proto/voucher/v1/vouchers.proto",
        "proto/voucher/v1/redemption.proto",
        "proto/voucher/v1/ledger.proto",
        "proto/voucher/v1/settlement.proto",
        "proto/voucher/v1/export.proto",
        "proto/voucher/v1/reconciliation.proto",
        "proto/voucher/v1/checkpoints.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("voucher_v1_descriptor.bin"))
        .compile_protos(&protos, &["proto"])?;
    Ok(())
}
