//! No request from a web page: the outermost check of every request, before
//! the token, the routes and anything admitted or billed.
//!
//! A browser lets any page send a "simple" cross-origin `POST` (for example
//! `Content-Type: text/plain`) to `http://127.0.0.1:PORT` without asking the
//! server first, and DNS rebinding lets a page read the answers by pointing
//! its own host name at the loopback address. Programs that call the API
//! (curl, SDKs, Prometheus) send neither of the headers that mark such
//! requests, so the server refuses, with 403:
//!
//! * **Origin**: any request carrying an `Origin` header (whatever its value,
//!   `null` included): browsers send it on every cross-origin request and on
//!   every `POST`, same-origin or not. A `Sec-Fetch-Site` header other than
//!   `none` (a request a page made, rather than one the user typed into the
//!   address bar) is refused for the same reason. This holds on every route,
//!   `/healthz` included, and on every listener, Unix sockets included.
//! * **Host**: on TCP, a `Host` that does not name this server: `localhost`,
//!   a loopback address (`127.0.0.1`, `[::1]`), the address the server is
//!   bound to (any IP address when bound to `0.0.0.0` or `[::]`), or a name
//!   given with `--allow-host`. A rebinding page sends its own host name, so
//!   it is refused. The port is not compared: it says nothing about which
//!   site sent the request, and tunnels and port mappings (`ssh -L`,
//!   `docker -p`) legitimately change it. A request without `Host` is refused.
//!   `/healthz` answers whatever the `Host` (probes such as the kubelet send
//!   the pod's address); a Unix socket answers whatever the `Host` (a browser
//!   cannot connect to one, and file permissions decide who can).
//!
//! Refusals are counted in `sealbox_http_refused_total{reason="origin"|"host"}`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::http::error_response;

/// The route answered whatever the `Host` (it still refuses `Origin`).
const HEALTHZ: &str = "/healthz";

/// A host name the server answers to besides its own addresses (`--allow-host`),
/// such as the DNS name clients reach it by. Compared case-insensitively, port ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost(String);

/// Why a string is not usable as an [`AllowedHost`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a host name: give a DNS name such as sealbox.internal (letters, digits, - and \
     ., no scheme, port or wildcard)"
)]
pub struct AllowedHostError(String);

impl FromStr for AllowedHost {
    type Err = AllowedHostError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if s.is_empty() || s.len() > 253 || !s.split('.').all(label_ok) {
            return Err(AllowedHostError(s.to_string()));
        }
        Ok(AllowedHost(s.to_ascii_lowercase()))
    }
}

impl AllowedHost {
    /// The name, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which `Host` headers a server answers to.
#[derive(Debug, Clone)]
pub(crate) enum HostRule {
    /// A TCP listener bound to `bound`: loopback names, the bound address
    /// (any IP when it is unspecified) and the allowed names.
    Tcp {
        bound: IpAddr,
        allowed: Vec<AllowedHost>,
    },
    /// A Unix socket: any `Host`, or none.
    Any,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// It came from a web page (`Origin`, or `Sec-Fetch-Site` other than `none`).
    Origin,
    /// Its `Host` does not name this server.
    Host,
}

/// The check's rule and its refusal counters.
#[derive(Debug)]
pub(crate) struct Guard {
    rule: HostRule,
    refused_origin: AtomicU64,
    refused_host: AtomicU64,
}

impl Guard {
    pub(crate) fn new(rule: HostRule) -> Arc<Guard> {
        Arc::new(Guard {
            rule,
            refused_origin: AtomicU64::new(0),
            refused_host: AtomicU64::new(0),
        })
    }

    /// Requests refused as coming from a web page.
    pub(crate) fn refused_origin(&self) -> u64 {
        self.refused_origin.load(Ordering::Relaxed)
    }

    /// Requests refused for a `Host` that does not name this server.
    pub(crate) fn refused_host(&self) -> u64 {
        self.refused_host.load(Ordering::Relaxed)
    }

    /// `Err` with the refusal and a message, or `Ok` when the request may go on.
    fn check(&self, path: &str, headers: &HeaderMap) -> Result<(), (Refusal, String)> {
        if headers.contains_key(header::ORIGIN) {
            return Err((
                Refusal::Origin,
                "requests sent by web pages (carrying an Origin header) are refused; call the \
                 API from a program, not from a browser"
                    .into(),
            ));
        }
        if let Some(site) = headers.get("sec-fetch-site")
            && site.as_bytes() != b"none"
        {
            return Err((
                Refusal::Origin,
                "requests sent by web pages (Sec-Fetch-Site other than `none`) are refused; call \
                 the API from a program, not from a browser"
                    .into(),
            ));
        }
        let HostRule::Tcp { bound, allowed } = &self.rule else {
            return Ok(());
        };
        if path == HEALTHZ {
            return Ok(());
        }
        let Some(host) = headers.get(header::HOST) else {
            return Err((
                Refusal::Host,
                "the request has no Host header; send `Host: 127.0.0.1:PORT` (or the name this \
                 server was given with --allow-host)"
                    .into(),
            ));
        };
        let answered = host
            .to_str()
            .ok()
            .and_then(split_host)
            .is_some_and(|name| names_this_server(&name, *bound, allowed));
        if answered {
            return Ok(());
        }
        Err((
            Refusal::Host,
            "the Host header does not name this server (allowed: localhost, a loopback address, \
             the address it listens on, or a name given with --allow-host)"
                .into(),
        ))
    }
}

/// A `Host` header's host: an IP address or a lowercase name. `None` when the
/// header is malformed (bad port, unbracketed IPv6, empty name).
fn split_host(value: &str) -> Option<Name> {
    let value = value.trim();
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let ip = inside.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (Name::Ip(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = match value.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (value, None),
        };
        if host.is_empty() {
            return None;
        }
        let name = match host.parse::<Ipv4Addr>() {
            Ok(ip) => Name::Ip(IpAddr::V4(ip)),
            Err(_) => Name::Dns(host.to_ascii_lowercase()),
        };
        (name, port)
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5)
    {
        return None;
    }
    Some(host)
}

/// The host part of a `Host` header.
#[derive(Debug, PartialEq, Eq)]
enum Name {
    Ip(IpAddr),
    Dns(String),
}

fn names_this_server(name: &Name, bound: IpAddr, allowed: &[AllowedHost]) -> bool {
    match name {
        Name::Ip(ip) => ip.is_loopback() || *ip == bound || bound.is_unspecified(),
        Name::Dns(dns) => dns == "localhost" || allowed.iter().any(|a| a.as_str() == dns),
    }
}

/// Middleware (outermost): 403 for requests from web pages and for a `Host`
/// that does not name this server.
pub(crate) async fn refuse_browsers(
    State(guard): State<Arc<Guard>>,
    req: Request,
    next: Next,
) -> Response {
    match guard.check(req.uri().path(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err((refusal, message)) => {
            let kind = match refusal {
                Refusal::Origin => {
                    guard.refused_origin.fetch_add(1, Ordering::Relaxed);
                    "forbidden-origin"
                }
                Refusal::Host => {
                    guard.refused_host.fetch_add(1, Ordering::Relaxed);
                    "forbidden-host"
                }
            };
            error_response(StatusCode::FORBIDDEN, kind, &message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn loopback() -> Guard {
        Guard {
            rule: HostRule::Tcp {
                bound: IpAddr::V4(Ipv4Addr::LOCALHOST),
                allowed: vec!["Sealbox.Internal".parse().unwrap()],
            },
            refused_origin: AtomicU64::new(0),
            refused_host: AtomicU64::new(0),
        }
    }

    fn refusal(g: &Guard, path: &str, h: &[(&'static str, &'static str)]) -> Option<Refusal> {
        g.check(path, &headers(h)).err().map(|(r, _)| r)
    }

    #[test]
    fn any_origin_is_refused_everywhere() {
        let g = loopback();
        let host = ("host", "127.0.0.1:8080");
        for origin in ["http://evil.example", "null", "http://127.0.0.1:8080", ""] {
            let h = headers(&[host]);
            let mut h = h;
            h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
            assert_eq!(
                g.check("/v1/products/x/invoke/y", &h).err().map(|e| e.0),
                Some(Refusal::Origin)
            );
            assert_eq!(
                g.check(HEALTHZ, &h).err().map(|e| e.0),
                Some(Refusal::Origin)
            );
        }
        let unix = Guard::new(HostRule::Any);
        assert_eq!(
            refusal(&unix, "/metrics", &[("origin", "null")]),
            Some(Refusal::Origin)
        );
        for site in ["cross-site", "same-site", "same-origin"] {
            let mut h = headers(&[host]);
            h.insert("sec-fetch-site", HeaderValue::from_static(site));
            assert_eq!(
                g.check("/metrics", &h).err().map(|e| e.0),
                Some(Refusal::Origin)
            );
        }
        assert_eq!(
            refusal(&g, "/metrics", &[host, ("sec-fetch-site", "none")]),
            None
        );
    }

    #[test]
    fn host_must_name_this_server_port_aside() {
        let g = loopback();
        let path = "/v1/products/x/invoke/y";
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "[::1]:8080",
            "[::1]",
            "localhost:8080",
            "LOCALHOST:9000",
            "localhost",
            "sealbox.internal:80",
            "SEALBOX.internal",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_str(ok).unwrap());
            assert!(g.check(path, &h).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "evil.example",
            "localhost.evil.example:8080",
            "127.0.0.1.nip.io:8080",
            "10.0.0.5:8080",
            "x",
            "localhost:",
            "localhost:80a",
            "::1:8080",
            "[::1",
            ":8080",
            "",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_str(bad).unwrap());
            assert_eq!(
                g.check(path, &h).err().map(|e| e.0),
                Some(Refusal::Host),
                "{bad}"
            );
            // Probes reach /healthz whatever the Host.
            assert!(g.check(HEALTHZ, &h).is_ok(), "{bad}");
        }
        assert_eq!(refusal(&g, path, &[]), Some(Refusal::Host));
        assert!(g.check(HEALTHZ, &HeaderMap::new()).is_ok());
    }

    #[test]
    fn the_bound_address_and_wildcards() {
        let g = Guard::new(HostRule::Tcp {
            bound: "192.168.1.5".parse().unwrap(),
            allowed: vec![],
        });
        assert_eq!(
            refusal(&g, "/metrics", &[("host", "192.168.1.5:8080")]),
            None
        );
        assert_eq!(
            refusal(&g, "/metrics", &[("host", "192.168.1.6:8080")]),
            Some(Refusal::Host)
        );
        let any = Guard::new(HostRule::Tcp {
            bound: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            allowed: vec![],
        });
        assert_eq!(
            refusal(&any, "/metrics", &[("host", "192.168.1.6:8080")]),
            None
        );
        assert_eq!(
            refusal(&any, "/metrics", &[("host", "[fe80::1]:8080")]),
            None
        );
        assert_eq!(
            refusal(&any, "/metrics", &[("host", "evil.example:8080")]),
            Some(Refusal::Host)
        );
        let unix = Guard::new(HostRule::Any);
        assert_eq!(
            refusal(&unix, "/metrics", &[("host", "evil.example")]),
            None
        );
        assert_eq!(refusal(&unix, "/metrics", &[]), None);
    }

    #[test]
    fn allowed_hosts_are_plain_dns_names() {
        assert_eq!(
            "Sealbox.NS.svc".parse::<AllowedHost>().unwrap().as_str(),
            "sealbox.ns.svc"
        );
        for bad in ["", "http://x", "x:8080", "*.example", "a..b", "-a", "a b"] {
            assert!(bad.parse::<AllowedHost>().is_err(), "{bad}");
        }
    }
}
