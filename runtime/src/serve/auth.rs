//! Who may talk to the server: loopback without a token, anything else only
//! with one; a set token guards every route except `/healthz`.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use super::ServeError;
use super::http::error_response;
use super::state::App;

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

impl BearerToken {
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

/// Refuses to bind a non-loopback address without a token.
pub fn check_bind(addr: SocketAddr, token: Option<&BearerToken>) -> Result<(), ServeError> {
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(ServeError::TokenRequired { addr });
    }
    Ok(())
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
        assert!(check_bind("127.0.0.1:8080".parse().unwrap(), None).is_ok());
        assert!(check_bind("[::1]:8080".parse().unwrap(), None).is_ok());
        assert!(matches!(
            check_bind("0.0.0.0:8080".parse().unwrap(), None),
            Err(ServeError::TokenRequired { .. })
        ));
        assert!(matches!(
            check_bind("192.168.1.5:8080".parse().unwrap(), None),
            Err(ServeError::TokenRequired { .. })
        ));
        assert!(check_bind("0.0.0.0:8080".parse().unwrap(), Some(&t)).is_ok());
    }
}
