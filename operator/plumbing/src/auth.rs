//! Bearer-token checks shared by the agent API and the alert receiver.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Constant-time bearer token check (over sha256 digests, so the lengths
/// leak nothing either). An empty configured token never matches.
pub fn authorized(header: Option<&str>, token: &[u8]) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let a = Sha256::digest(given.trim().as_bytes());
    let b = Sha256::digest(token);
    !token.is_empty() && bool::from(a.ct_eq(&b))
}

/// Why a token file is unusable. The message names the file, never the
/// content.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("token file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What reading it said.
        #[source]
        source: std::io::Error,
    },
    /// The token is shorter than 16 characters.
    #[error("token file {path}: the token must have at least 16 characters")]
    TooShort {
        /// The file.
        path: String,
    },
}

/// Reads a token file: one token, surrounding white space ignored, at least
/// 16 characters.
pub fn read_token_file(path: &str) -> Result<Vec<u8>, TokenFileError> {
    let token = std::fs::read_to_string(path)
        .map_err(|source| TokenFileError::Read {
            path: path.to_string(),
            source,
        })?
        .trim()
        .as_bytes()
        .to_vec();
    if token.len() < 16 {
        return Err(TokenFileError::TooShort {
            path: path.to_string(),
        });
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer() {
        assert!(authorized(Some("Bearer s3cret"), b"s3cret"));
        assert!(!authorized(Some("Bearer s3cre"), b"s3cret"));
        assert!(!authorized(Some("bearer s3cret"), b"s3cret"));
        assert!(!authorized(Some("s3cret"), b"s3cret"));
        assert!(!authorized(None, b"s3cret"));
        assert!(!authorized(Some("Bearer "), b""));
    }

    #[test]
    fn token_file() {
        let dir = std::env::temp_dir().join(format!("tg-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("t");
        std::fs::write(&f, "  0123456789abcdef\n").unwrap();
        assert_eq!(
            read_token_file(f.to_str().unwrap()).unwrap(),
            b"0123456789abcdef"
        );
        std::fs::write(&f, "short\n").unwrap();
        let e = read_token_file(f.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("16 characters") && !e.contains("short"), "{e}");
        let none = dir.join("none");
        let e = read_token_file(none.to_str().unwrap()).unwrap_err();
        assert!(matches!(e, TokenFileError::Read { .. }));
        assert!(
            e.to_string()
                .starts_with(&format!("token file {}: ", none.display()))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
