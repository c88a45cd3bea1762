//! The encrypted payload: the plaintext module under AES-256-GCM with a random content key,
//! and that key wrapped for each recipient by ECIES on secp256k1
//! (ephemeral ECDH → HKDF-SHA256 → AES-256-GCM).

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use alloy_primitives::{Address, B256};
use hkdf::Hkdf;
use k256::ecdsa::SigningKey;
use k256::elliptic_curve::sec1::ToEncodedPoint;
use k256::{NonZeroScalar, PublicKey};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::FormatError;
use crate::manifest::{ENCRYPTION_ALGORITHM, Encryption, Recipient};

/// Name of the custom section holding the encrypted module.
pub const SECTION_NAME: &str = "sealbox.payload";
/// HKDF `info` of the key-wrapping key derivation.
pub const WRAP_INFO: &[u8] = b"sealbox/v1 ecies key wrap";

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// Encrypts `plaintext` for `recipients`, returning the ciphertext and the manifest's
/// `encryption` entry. `code_hash` is bound as associated data of every AES-GCM operation.
pub(crate) fn encrypt(
    plaintext: &[u8],
    code_hash: &B256,
    recipients: &[PublicKey],
) -> Result<(Vec<u8>, Encryption), FormatError> {
    let mut rng = rand::thread_rng();
    let mut content_key = Zeroizing::new([0u8; KEY_LEN]);
    rng.fill_bytes(content_key.as_mut_slice());
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);

    let ciphertext = aead(content_key.as_slice())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: code_hash.as_slice(),
            },
        )
        .map_err(|_| FormatError::Options("the module is too large to encrypt".into()))?;

    let recipients = recipients
        .iter()
        .map(|pubkey| wrap(&content_key, code_hash, pubkey))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        ciphertext,
        Encryption {
            algorithm: ENCRYPTION_ALGORITHM.to_string(),
            nonce,
            recipients,
        },
    ))
}

/// Decrypts `ciphertext` with the content key unwrapped by `key`, one of the recipients.
pub(crate) fn decrypt(
    ciphertext: &[u8],
    code_hash: &B256,
    encryption: &Encryption,
    key: &SigningKey,
) -> Result<Vec<u8>, FormatError> {
    let own = PublicKey::from(key.verifying_key());
    let recipient = encryption
        .recipients
        .iter()
        .find(|r| r.pubkey == own)
        .ok_or_else(|| {
            FormatError::NotRecipient(format!(
                "the key of {} is not among the module's {} recipient(s)",
                Address::from_public_key(key.verifying_key()),
                encryption.recipients.len()
            ))
        })?;
    let content_key = unwrap(recipient, code_hash, key)?;
    aead(content_key.as_slice())
        .decrypt(
            Nonce::from_slice(&encryption.nonce),
            Payload {
                msg: ciphertext,
                aad: code_hash.as_slice(),
            },
        )
        .map_err(|_| FormatError::Decrypt("the payload fails AES-256-GCM authentication".into()))
}

fn wrap(
    content_key: &[u8; KEY_LEN],
    code_hash: &B256,
    recipient: &PublicKey,
) -> Result<Recipient, FormatError> {
    let ephemeral = NonZeroScalar::random(&mut rand::thread_rng());
    let ephemeral_pubkey = PublicKey::from_secret_scalar(&ephemeral);
    let (kek, nonce) = derive(&ephemeral, recipient, &ephemeral_pubkey, recipient)?;
    let wrapped = aead(kek.as_slice())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: content_key,
                aad: code_hash.as_slice(),
            },
        )
        .map_err(|_| FormatError::Options("key wrapping failed".into()))?;
    let wrapped_key = wrapped
        .try_into()
        .map_err(|_| FormatError::Options("wrapped key has an unexpected length".into()))?;
    Ok(Recipient {
        pubkey: *recipient,
        ephemeral_pubkey,
        wrapped_key,
    })
}

fn unwrap(
    recipient: &Recipient,
    code_hash: &B256,
    key: &SigningKey,
) -> Result<Zeroizing<[u8; KEY_LEN]>, FormatError> {
    let (kek, nonce) = derive(
        key.as_nonzero_scalar(),
        &recipient.ephemeral_pubkey,
        &recipient.ephemeral_pubkey,
        &recipient.pubkey,
    )?;
    let plain = Zeroizing::new(
        aead(kek.as_slice())
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &recipient.wrapped_key,
                    aad: code_hash.as_slice(),
                },
            )
            .map_err(|_| {
                FormatError::Decrypt(format!(
                    "the content key wrapped for {} fails AES-256-GCM authentication",
                    recipient.address()
                ))
            })?,
    );
    let mut content_key = Zeroizing::new([0u8; KEY_LEN]);
    if plain.len() != KEY_LEN {
        return Err(FormatError::Decrypt(
            "the unwrapped content key is not 32 bytes".into(),
        ));
    }
    content_key.copy_from_slice(&plain);
    Ok(content_key)
}

/// Key-wrapping key and nonce: HKDF-SHA256 over the ECDH x-coordinate of `secret · peer`,
/// salted with both public keys (ephemeral ‖ recipient, compressed).
///
/// Wrapping uses the ephemeral scalar and the recipient's key as `peer`; unwrapping uses the
/// recipient's scalar and the ephemeral key as `peer`: both reach the same shared point.
fn derive(
    secret: &NonZeroScalar,
    peer: &PublicKey,
    ephemeral_pubkey: &PublicKey,
    recipient: &PublicKey,
) -> Result<(Zeroizing<[u8; KEY_LEN]>, [u8; NONCE_LEN]), FormatError> {
    let shared = k256::ecdh::diffie_hellman(secret, peer.as_affine());
    let mut salt = Vec::with_capacity(66);
    salt.extend_from_slice(ephemeral_pubkey.to_encoded_point(true).as_bytes());
    salt.extend_from_slice(recipient.to_encoded_point(true).as_bytes());
    let hkdf = Hkdf::<Sha256>::new(Some(&salt), shared.raw_secret_bytes());
    let mut okm = Zeroizing::new([0u8; KEY_LEN + NONCE_LEN]);
    hkdf.expand(WRAP_INFO, okm.as_mut_slice())
        .map_err(|_| FormatError::Decrypt("HKDF expansion failed".into()))?;
    let mut kek = Zeroizing::new([0u8; KEY_LEN]);
    kek.copy_from_slice(&okm[..KEY_LEN]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&okm[KEY_LEN..]);
    Ok((kek, nonce))
}

fn aead(key: &[u8]) -> Aes256Gcm {
    Aes256Gcm::new(aes_gcm::Key::<Aes256Gcm>::from_slice(key))
}
