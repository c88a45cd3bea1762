//! Who may talk to the server: loopback or a Unix socket without a token,
//! any other address only with one; a set token guards every route except
//! `/healthz`.
//!
//! The token never goes on a command line (other local users read those in
//! `ps` and `/proc/PID/cmdline`): it comes from a file only its owner can
//! read ([`BearerToken::from_file`]) or from the environment.

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use super::http::error_response;
use super::state::App;
use super::{Listen, ServeError};

/// Fewest characters a bearer token may have.
pub const MIN_TOKEN_LEN: usize = 16;

/// A bearer token. Its `Debug` output never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(Arc<str>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Why a string is not usable as a bearer token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Too short to resist guessing.
    #[error(
        "the bearer token has {len} characters; use at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 24`)"
    )]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// Holds characters an `Authorization: Bearer` header cannot carry.
    #[error(
        "the bearer token may only hold letters, digits and - . _ ~ + / = (RFC 6750 token68 characters)"
    )]
    BadCharacters,
}

impl FromStr for BearerToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort { len: s.len() });
        }
        let token68 = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
        if !s.chars().all(token68) {
            return Err(TokenError::BadCharacters);
        }
        Ok(BearerToken(Arc::from(s)))
    }
}

/// Permission bits that must be clear on a token file (group and other access).
const FORBIDDEN_MODE_BITS: u32 = 0o077;

/// Most bytes read from a token file (a token is a line of a few dozen characters).
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// Why a token file could not be used. Messages name the file, never the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be opened or read.
    #[error("cannot read the token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Group or others may read (or write) the file.
    #[error(
        "the token file {path} has mode {mode:04o}: group or others can access it; a token file \
         must be 0600 or stricter (run: chmod 600 {path})"
    )]
    InsecureMode {
        /// The file.
        path: PathBuf,
        /// Its permission bits (`mode & 0o7777`).
        mode: u32,
    },
    /// The file holds more than one line of a token's size.
    #[error(
        "the token file {path} is larger than {MAX_TOKEN_FILE_BYTES} bytes; it must hold the token alone"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The content is not a usable token.
    #[error("the token file {path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with the token.
        source: TokenError,
    },
}

impl BearerToken {
    /// Reads the token from `path`: the whole file, less one trailing newline
    /// (`\n` or `\r\n`). The file must be readable by its owner only (mode
    /// 0600 or stricter); its mode is checked before anything is read.
    pub fn from_file(path: &Path) -> Result<BearerToken, TokenFileError> {
        let io = |source| TokenFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mode = file.metadata().map_err(io)?.permissions().mode() & 0o7777;
        if mode & FORBIDDEN_MODE_BITS != 0 {
            return Err(TokenFileError::InsecureMode {
                path: path.to_path_buf(),
                mode,
            });
        }
        let mut text = zeroize::Zeroizing::new(String::new());
        file.take(MAX_TOKEN_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_TOKEN_FILE_BYTES {
            return Err(TokenFileError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let line = text.strip_suffix('\n').unwrap_or(&text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        line.parse().map_err(|source| TokenFileError::Invalid {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Whether an `Authorization` header value presents this token.
    /// The comparison takes the same time wherever the first difference is.
    pub fn accepts(&self, header: &[u8]) -> bool {
        let Some(presented) = strip_scheme(header) else {
            return false;
        };
        let expected = self.0.as_bytes();
        if presented.len() != expected.len() {
            return false;
        }
        presented
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The credentials after a case-insensitive `Bearer ` scheme.
fn strip_scheme(header: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer ";
    if header.len() < SCHEME.len() || !header[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    Some(header[SCHEME.len()..].trim_ascii())
}

/// Refuses to bind a non-loopback TCP address without a token. A Unix
/// socket needs none: its file mode (0600) decides who may connect.
pub fn check_bind(listen: &Listen, token: Option<&BearerToken>) -> Result<(), ServeError> {
    match listen {
        Listen::Tcp(addr) if token.is_none() && !addr.ip().is_loopback() => {
            Err(ServeError::TokenRequired { addr: *addr })
        }
        _ => Ok(()),
    }
}

/// Middleware: 401 unless the request carries the server's token (when one is set).
pub(crate) async fn require_token(
    State(app): State<Arc<App>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = &app.token else {
        return next.run(req).await;
    };
    let presented = req.headers().get(header::AUTHORIZATION);
    if presented.is_some_and(|h| token.accepts(h.as_bytes())) {
        return next.run(req).await;
    }
    app.unauthorized();
    let message = if presented.is_some() {
        "the bearer token is wrong"
    } else {
        "this server requires `Authorization: Bearer <token>`"
    };
    let mut response = error_response(
        axum::http::StatusCode::UNAUTHORIZED,
        "unauthorized",
        message,
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"sealbox\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_never_printed() {
        assert_eq!(
            "short".parse::<BearerToken>(),
            Err(TokenError::TooShort { len: 5 })
        );
        assert_eq!(
            "has a space in it, sorry".parse::<BearerToken>(),
            Err(TokenError::BadCharacters)
        );
        let t: BearerToken = "0123456789abcdef-XYZ".parse().unwrap();
        assert!(!format!("{t:?}").contains("0123"));
        assert!(t.accepts(b"Bearer 0123456789abcdef-XYZ"));
        assert!(t.accepts(b"bearer 0123456789abcdef-XYZ"));
        assert!(!t.accepts(b"Bearer 0123456789abcdef-XYz"));
        assert!(!t.accepts(b"Bearer 0123456789abcdef-XY"));
        assert!(!t.accepts(b"Basic 0123456789abcdef-XYZ"));
        assert!(!t.accepts(b"0123456789abcdef-XYZ"));
    }

    #[test]
    fn only_loopback_may_go_without_a_token() {
        let t: BearerToken = "0123456789abcdef".parse().unwrap();
        let tcp = |s: &str| Listen::Tcp(s.parse().unwrap());
        assert!(check_bind(&tcp("127.0.0.1:8080"), None).is_ok());
        assert!(check_bind(&tcp("[::1]:8080"), None).is_ok());
        assert!(matches!(
            check_bind(&tcp("0.0.0.0:8080"), None),
            Err(ServeError::TokenRequired { .. })
        ));
        assert!(matches!(
            check_bind(&tcp("192.168.1.5:8080"), None),
            Err(ServeError::TokenRequired { .. })
        ));
        assert!(check_bind(&tcp("0.0.0.0:8080"), Some(&t)).is_ok());
        assert!(check_bind(&Listen::Unix("/run/s.sock".into()), None).is_ok());
    }

    #[test]
    fn token_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "0123456789abcdef-XYZ\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = BearerToken::from_file(&path).unwrap_err();
        assert!(matches!(
            err,
            TokenFileError::InsecureMode { mode: 0o644, .. }
        ));
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("chmod 600"),
            "{msg}"
        );
        assert!(!msg.contains("0123"), "{msg}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let t = BearerToken::from_file(&path).unwrap();
        assert!(t.accepts(b"Bearer 0123456789abcdef-XYZ"));
        std::fs::write(&path, "0123456789abcdef-XYZ\r\n").unwrap();
        assert!(
            BearerToken::from_file(&path)
                .unwrap()
                .accepts(b"Bearer 0123456789abcdef-XYZ")
        );
        // Only one newline is dropped: anything else is not part of a token.
        std::fs::write(&path, "0123456789abcdef-XYZ\n\n").unwrap();
        assert!(matches!(
            BearerToken::from_file(&path),
            Err(TokenFileError::Invalid {
                source: TokenError::BadCharacters,
                ..
            })
        ));
        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            BearerToken::from_file(&path),
            Err(TokenFileError::Invalid {
                source: TokenError::TooShort { len: 5 },
                ..
            })
        ));
        assert!(matches!(
            BearerToken::from_file(&dir.path().join("missing")),
            Err(TokenFileError::Io { .. })
        ));
    }
}
