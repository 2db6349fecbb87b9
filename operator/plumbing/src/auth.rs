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

/// Reads a token file: one token, surrounding white space ignored, at least
/// 16 characters. The error names the file, never the content.
pub fn read_token_file(path: &str) -> Result<Vec<u8>, String> {
    let token = std::fs::read_to_string(path)
        .map_err(|e| format!("token file {path}: {e}"))?
        .trim()
        .as_bytes()
        .to_vec();
    if token.len() < 16 {
        return Err(format!(
            "token file {path}: the token must have at least 16 characters"
        ));
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
        let e = read_token_file(f.to_str().unwrap()).unwrap_err();
        assert!(e.contains("16 characters") && !e.contains("short"));
        assert!(read_token_file(dir.join("none").to_str().unwrap()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
