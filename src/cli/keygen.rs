//! `voucher-ledger keygen --out DIR`: a new SM2 key pair for signing checkpoints:
//! `checkpoint-key.pem` (private, PKCS#8, mode 0600: the server's `checkpoint_key`) and
//! `checkpoint-key.pub.pem` (public: what the bureau and auditors verify with).

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::CliError;
use crate::storage::checkpoint::{generate_key_pair, CheckpointSigner};

pub const PRIVATE_KEY_FILE: &str = "checkpoint-key.pem";
pub const PUBLIC_KEY_FILE: &str = "checkpoint-key.pub.pem";

pub fn run(directory: &Path) -> Result<ExitCode, CliError> {
    std::fs::create_dir_all(directory)
        .map_err(|error| CliError::Client(format!("{}: {error}", directory.display())))?;
    let private_path = directory.join(PRIVATE_KEY_FILE);
    let public_path = directory.join(PUBLIC_KEY_FILE);
    for path in [&private_path, &public_path] {
        if path.exists() {
            return Err(CliError::Client(format!(
                "{} already exists; keygen never overwrites a key",
                path.display()
            )));
        }
    }
    let (private, public) = generate_key_pair().map_err(CliError::Client)?;
    write_new(&private_path, private.as_bytes(), 0o600)?;
    write_new(&public_path, public.as_bytes(), 0o644)?;
    let signer = CheckpointSigner::from_pem(&private).map_err(CliError::Client)?;
    println!(
        "private key   {} (keep it secret: the server's checkpoint_key)",
        private_path.display()
    );
    println!(
        "public key    {} (give it to the bureau and the auditors)",
        public_path.display()
    );
    println!("fingerprint   {}", hex::encode(signer.fingerprint()));
    Ok(ExitCode::SUCCESS)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let failed = |error: std::io::Error| CliError::Client(format!("{}: {error}", path.display()));
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.sync_all().map_err(failed)
}
