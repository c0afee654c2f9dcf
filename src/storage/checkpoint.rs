//! Signed checkpoints: the bureau's SM2 signature over a sequence number and the chain
//! hash after it, so the log cannot be rewritten and re-hashed, or cut short, by someone
//! without the private key (see `crate::audit::verify` for the check).
//!
//! The stored value (column family `checkpoints`, key: the sequence, u64 big-endian),
//! format version 1:
//!
//! ```text
//! offset  size  field
//!      0     4  magic            b"VLCP"
//!      4     2  format version   1 (little-endian)
//!      6     8  sequence         the last record the checkpoint covers
//!     14    32  chain head       the chain hash after that record
//!     46     8  signed at        ms since the Unix epoch (the signer's clock)
//!     54    32  key fingerprint  SM3 of the signer's public key (SEC1, uncompressed)
//!     86    64  signature        SM2 (r ‖ s, big-endian) over bytes 0..86
//! ```
//!
//! The signature covers the magic and the version too, so a signed statement cannot be
//! read back under another format. SM2 signs with the distinguishing identifier of
//! GM/T 0009 (`1234567812345678`), which other SM2 tools use by default.
//!
//! Keys are PEM files: the private key PKCS#8 (`-----BEGIN PRIVATE KEY-----`), the
//! public key SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`).
//!
//! The export file (`voucher-ledger checkpoints --out FILE`) is text: a header line,
//! then for each checkpoint a `#` comment a person reads and one line with the hex of
//! the stored value above; blank lines and other `#` lines are ignored.

use std::path::Path;

use sm2::dsa::signature::{Signer, Verifier};
use sm2::dsa::{Signature, SigningKey, VerifyingKey};
use sm2::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use sm2::{PublicKey, SecretKey};

use super::record::{sm3_digest, ChainHash, CHAIN_HASH_LENGTH};
use crate::domain::Timestamp;

pub const CHECKPOINT_MAGIC: [u8; 4] = *b"VLCP";
pub const CHECKPOINT_FORMAT_VERSION: u16 = 1;
/// Bytes the signature covers: magic, version, sequence, head, time, key fingerprint.
pub const CHECKPOINT_SIGNED_LENGTH: usize = 4 + 2 + 8 + CHAIN_HASH_LENGTH + 8 + 32;
pub const CHECKPOINT_SIGNATURE_LENGTH: usize = 64;
pub const CHECKPOINT_LENGTH: usize = CHECKPOINT_SIGNED_LENGTH + CHECKPOINT_SIGNATURE_LENGTH;
/// The SM2 distinguishing identifier (GM/T 0009's default).
pub const SM2_DISTINGUISHING_ID: &str = "1234567812345678";
/// The first line of an export file.
pub const EXPORT_HEADER: &str = "# voucher-ledger checkpoints v1";

/// A signed checkpoint as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub sequence: u64,
    pub chain_head: ChainHash,
    pub signed_at: Timestamp,
    /// SM3 of the signer's public key (SEC1, uncompressed).
    pub key_fingerprint: [u8; 32],
    pub signature: [u8; CHECKPOINT_SIGNATURE_LENGTH],
}

/// What is wrong with a stored or exported checkpoint value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("checkpoint value: {reason}")]
pub struct CheckpointFormatError {
    pub reason: String,
}

fn format_error(reason: impl Into<String>) -> CheckpointFormatError {
    CheckpointFormatError {
        reason: reason.into(),
    }
}

/// The bytes a checkpoint's signature covers.
pub fn signed_bytes(
    sequence: u64,
    chain_head: &ChainHash,
    signed_at: Timestamp,
    key_fingerprint: &[u8; 32],
) -> [u8; CHECKPOINT_SIGNED_LENGTH] {
    let mut out = [0u8; CHECKPOINT_SIGNED_LENGTH];
    out[0..4].copy_from_slice(&CHECKPOINT_MAGIC);
    out[4..6].copy_from_slice(&CHECKPOINT_FORMAT_VERSION.to_le_bytes());
    out[6..14].copy_from_slice(&sequence.to_le_bytes());
    out[14..46].copy_from_slice(&chain_head.0);
    out[46..54].copy_from_slice(&signed_at.0.to_le_bytes());
    out[54..86].copy_from_slice(key_fingerprint);
    out
}

impl Checkpoint {
    /// The bytes its signature covers.
    pub fn signed_bytes(&self) -> [u8; CHECKPOINT_SIGNED_LENGTH] {
        signed_bytes(
            self.sequence,
            &self.chain_head,
            self.signed_at,
            &self.key_fingerprint,
        )
    }

    /// The stored value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHECKPOINT_LENGTH);
        out.extend_from_slice(&self.signed_bytes());
        out.extend_from_slice(&self.signature);
        out
    }

    /// Reads a stored value: exactly [`CHECKPOINT_LENGTH`] bytes of a known version.
    /// The signature is not checked here (that needs the trusted key).
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, CheckpointFormatError> {
        if bytes.len() < 6 {
            return Err(format_error(format!(
                "{} bytes is too short for a checkpoint",
                bytes.len()
            )));
        }
        if bytes[0..4] != CHECKPOINT_MAGIC {
            return Err(format_error(format!("bad magic {:02x?}", &bytes[0..4])));
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != CHECKPOINT_FORMAT_VERSION {
            return Err(format_error(format!(
                "unknown format version {version} (this build reads {CHECKPOINT_FORMAT_VERSION})"
            )));
        }
        if bytes.len() != CHECKPOINT_LENGTH {
            return Err(format_error(format!(
                "{} bytes, a version {version} checkpoint is {CHECKPOINT_LENGTH}",
                bytes.len()
            )));
        }
        let mut eight = [0u8; 8];
        eight.copy_from_slice(&bytes[6..14]);
        let sequence = u64::from_le_bytes(eight);
        let mut head = [0u8; CHAIN_HASH_LENGTH];
        head.copy_from_slice(&bytes[14..46]);
        eight.copy_from_slice(&bytes[46..54]);
        let signed_at = Timestamp(i64::from_le_bytes(eight));
        let mut key_fingerprint = [0u8; 32];
        key_fingerprint.copy_from_slice(&bytes[54..86]);
        let mut signature = [0u8; CHECKPOINT_SIGNATURE_LENGTH];
        signature.copy_from_slice(&bytes[86..CHECKPOINT_LENGTH]);
        Ok(Checkpoint {
            sequence,
            chain_head: ChainHash(head),
            signed_at,
            key_fingerprint,
            signature,
        })
    }
}

/// Why a key could not be read, made or used; names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("signing failed: {0}")]
    Sign(String),
}

fn key_file_error(path: &Path, reason: impl Into<String>) -> KeyError {
    KeyError::File {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn fingerprint_of(verifying_key: &VerifyingKey) -> [u8; 32] {
    sm3_digest(&verifying_key.to_sec1_bytes())
}

/// The server's signing key (the bureau's SM2 private key).
#[derive(Clone)]
pub struct CheckpointSigner {
    signing_key: SigningKey,
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "CheckpointSigner({})",
            hex::encode(self.fingerprint)
        )
    }
}

impl CheckpointSigner {
    /// Reads a PKCS#8 PEM private key.
    pub fn from_pem_file(path: &Path) -> Result<CheckpointSigner, KeyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| key_file_error(path, format!("cannot read: {error}")))?;
        Self::from_pem(&text).map_err(|reason| key_file_error(path, reason))
    }

    /// Parses a PKCS#8 PEM private key.
    pub fn from_pem(text: &str) -> Result<CheckpointSigner, String> {
        let secret = SecretKey::from_pkcs8_pem(text)
            .map_err(|error| format!("is not a PKCS#8 PEM SM2 private key: {error}"))?;
        Self::from_secret(&secret)
    }

    fn from_secret(secret: &SecretKey) -> Result<CheckpointSigner, String> {
        let signing_key = SigningKey::new(SM2_DISTINGUISHING_ID, secret)
            .map_err(|error| format!("is not a usable SM2 key: {error}"))?;
        let fingerprint = fingerprint_of(signing_key.verifying_key());
        Ok(CheckpointSigner {
            signing_key,
            fingerprint,
        })
    }

    /// SM3 of the public key: what checkpoints name their signer by.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The public key, for verifying what this signer signed.
    pub fn trusted_key(&self) -> TrustedKey {
        TrustedKey {
            verifying_key: self.signing_key.verifying_key().clone(),
            fingerprint: self.fingerprint,
        }
    }

    /// Signs a checkpoint of `sequence` whose record has `chain_head`.
    pub fn sign(
        &self,
        sequence: u64,
        chain_head: ChainHash,
        signed_at: Timestamp,
    ) -> Result<Checkpoint, KeyError> {
        let message = signed_bytes(sequence, &chain_head, signed_at, &self.fingerprint);
        let signature: Signature = self
            .signing_key
            .try_sign(&message)
            .map_err(|error| KeyError::Sign(error.to_string()))?;
        let mut bytes = [0u8; CHECKPOINT_SIGNATURE_LENGTH];
        bytes.copy_from_slice(&signature.to_bytes());
        Ok(Checkpoint {
            sequence,
            chain_head,
            signed_at,
            key_fingerprint: self.fingerprint,
            signature: bytes,
        })
    }
}

/// A public key the auditor trusts to have signed checkpoints.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    verifying_key: VerifyingKey,
    fingerprint: [u8; 32],
}

impl TrustedKey {
    /// Reads a SubjectPublicKeyInfo PEM public key.
    pub fn from_pem_file(path: &Path) -> Result<TrustedKey, KeyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| key_file_error(path, format!("cannot read: {error}")))?;
        Self::from_pem(&text).map_err(|reason| key_file_error(path, reason))
    }

    pub fn from_pem(text: &str) -> Result<TrustedKey, String> {
        let public = PublicKey::from_public_key_pem(text)
            .map_err(|error| format!("is not a PEM SM2 public key: {error}"))?;
        let verifying_key = VerifyingKey::new(SM2_DISTINGUISHING_ID, public)
            .map_err(|error| format!("is not a usable SM2 public key: {error}"))?;
        let fingerprint = fingerprint_of(&verifying_key);
        Ok(TrustedKey {
            verifying_key,
            fingerprint,
        })
    }

    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Checks that this key signed `checkpoint`; says why not.
    pub fn check(&self, checkpoint: &Checkpoint) -> Result<(), String> {
        if checkpoint.key_fingerprint != self.fingerprint {
            return Err(format!(
                "signed by key {}, not the trusted key {}",
                hex::encode(checkpoint.key_fingerprint),
                hex::encode(self.fingerprint)
            ));
        }
        let signature = Signature::try_from(&checkpoint.signature[..])
            .map_err(|_| "the signature is not a valid SM2 signature".to_string())?;
        self.verifying_key
            .verify(&checkpoint.signed_bytes(), &signature)
            .map_err(|_| "the signature does not verify under the trusted key".to_string())
    }
}

/// A freshly generated key pair, as PEM text: (private PKCS#8, public SPKI).
pub fn generate_key_pair() -> Result<(String, String), String> {
    let secret = SecretKey::random(&mut rand_core::OsRng);
    let private = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|error| format!("encoding the private key: {error}"))?;
    let public = secret
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|error| format!("encoding the public key: {error}"))?;
    Ok((private.to_string(), public))
}

/// The export file's text for `checkpoints`.
pub fn export_text(checkpoints: &[Checkpoint]) -> String {
    let mut text = String::with_capacity(64 + checkpoints.len() * 420);
    text.push_str(EXPORT_HEADER);
    text.push('\n');
    for checkpoint in checkpoints {
        text.push_str(&format!(
            "# sequence {} chain head {} signed at {} ms by key {}\n{}\n",
            checkpoint.sequence,
            checkpoint.chain_head,
            checkpoint.signed_at.0,
            hex::encode(checkpoint.key_fingerprint),
            hex::encode(checkpoint.encode())
        ));
    }
    text
}

/// Reads an export file's text; an error names the line.
pub fn parse_export(text: &str) -> Result<Vec<Checkpoint>, String> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, first)) if first.trim_end() == EXPORT_HEADER => {}
        _ => return Err(format!("line 1: expected the header {EXPORT_HEADER:?}")),
    }
    let mut checkpoints = Vec::new();
    for (index, line) in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bytes = hex::decode(line)
            .map_err(|error| format!("line {}: not a hex checkpoint value: {error}", index + 1))?;
        let checkpoint =
            Checkpoint::decode(&bytes).map_err(|error| format!("line {}: {error}", index + 1))?;
        checkpoints.push(checkpoint);
    }
    Ok(checkpoints)
}
