//! Refresh tokens at rest: sealed with ChaCha20-Poly1305 under a key kept in a 0600 file
//! beside the ledger. A copy of the ledger alone gives nobody a way into the portal, and a
//! sealed token moved to another person's row does not open (the row is the associated data).

use std::path::Path;

use ring::{
    aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use secrecy::{ExposeSecret, SecretString};

use crate::private_files;

const KEY_BYTES: usize = 32;

pub struct Sealer(LessSafeKey);

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the team key {path} cannot be used: {why}")]
    Key { path: String, why: String },
    #[error(
        "a stored token does not open with this server's team key (was the key file replaced?)"
    )]
    Open,
}

impl Sealer {
    /// Reads the key at `path`, creating it (0600, folder 0700) when it is missing.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        let raw = private_files::key_file(path, KEY_BYTES).map_err(|e| SealError::Key {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        Self::from_bytes(&raw).ok_or_else(|| SealError::Key {
            path: path.display().to_string(),
            why: "not a ChaCha20-Poly1305 key".to_owned(),
        })
    }

    fn from_bytes(raw: &[u8]) -> Option<Self> {
        let key = UnboundKey::new(&CHACHA20_POLY1305, raw).ok()?;
        (raw.len() == KEY_BYTES).then(|| Self(LessSafeKey::new(key)))
    }

    /// `token` sealed for the row `row`: a fresh nonce, then the ciphertext and its tag.
    pub fn seal(&self, row: &str, token: &SecretString) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system's random source works");
        let mut sealed = token.expose_secret().as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(row.as_bytes()),
                &mut sealed,
            )
            .expect("a token is far below the AEAD's size limit");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, row: &str, sealed: &[u8]) -> Result<SecretString, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buffer = rest.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(row.as_bytes()), &mut buffer)
            .map_err(|_| SealError::Open)?;
        String::from_utf8(plain.to_vec())
            .map(SecretString::from)
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_token_opens_only_for_its_row_and_never_shows() {
        let dir = std::env::temp_dir().join(format!("b24-seal-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sealer = Sealer::load_or_create(&dir.join("team.key")).unwrap();
        let token = SecretString::from("refresh-token-value-123".to_owned());
        let sealed = sealer.seal("m:7", &token);
        assert!(!sealed.windows(7).any(|w| w == b"refresh"));
        assert_eq!(
            sealer.open("m:7", &sealed).unwrap().expose_secret(),
            "refresh-token-value-123"
        );
        assert!(sealer.open("m:503", &sealed).is_err());
        let again = Sealer::load_or_create(&dir.join("team.key")).unwrap();
        assert!(again.open("m:7", &sealed).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("team.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
