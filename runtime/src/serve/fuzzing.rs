//! The request path of `runtime serve` in-process, for fuzzing (feature
//! `fuzzing`, off by default; issue 14).
//!
//! A [`Harness`] is the real router ([`super::http::router`]) with the real
//! browser guard (TCP rule, bound to `127.0.0.1`) and bearer token, around
//! three real sealed products: `examples/wat/credit_score.wat` and
//! `tests/fixtures/limit_breaker.wat` (bytes-ABI modules; the second one's
//! `trap`, `spin` and `grow` entries break its fuel and memory limits) and
//! the Rust component `examples/components/wat/credit_score_rs.wat`. Each is
//! sealed with a test key when the harness starts, opened and compiled as
//! [`crate::load`] does, and counts into a journal in a temporary directory
//! holding an active lease and 2^40 bought units, so every admission
//! succeeds without a chain. No buying or refresh loop runs.
//!
//! [`Harness::decode`] turns fuzz input into a request (with
//! [`arbitrary`]: a method, a path built from known routes, the served
//! product ids, random hex, percent-escapes, `..` and long segments,
//! headers around the token, `Host`, `Origin`, `Sec-Fetch-Site`,
//! `Content-Length` and `Content-Type`, and a body); [`Harness::request`] runs
//! one through `Router::oneshot` on a current-thread runtime; [`Harness::check`]
//! does both and panics when an invariant of [`super::http`]'s table fails:
//!
//! * the status is one the table documents (500 is a finding too: nothing in
//!   here should fail internally);
//! * every non-2xx body is JSON `{"error": string, "message": string}`
//!   (but for `HEAD`, whose answers have no body);
//! * a request is billed (the admitted units of all products grow by exactly
//!   one) iff it is a call answered 200, or 422 from the guest (not
//!   `bad-argument`, which is refused before admission); nothing else is;
//! * without the right token, or with `Origin` / `Sec-Fetch-Site` other than
//!   `none` (always 403), or without `Host`, nothing but `/healthz` answers 2xx.
//!
//! The cargo-fuzz package `tests/fuzz-serve` (target `serve_request`) and
//! the replay test of its seed corpus (`runtime/tests/all/serve_fuzz_corpus.rs`)
//! both call [`Harness::check`], so they cannot drift apart.

use std::sync::Arc;

use alloy::primitives::B256;
use arbitrary::Unstructured;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use k256::ecdsa::SigningKey;
use sealbox_sandbox::{GuestLimits, Sandbox, SandboxConfig};
use sealed_format::{Address, Limits, Metering, SealOptions, WorldSource};
use tower::ServiceExt as _;

use super::auth::BearerToken;
use super::guard::{Guard, HostRule};
use super::pool::CallPool;
use super::state::{App, Served};
use crate::journal::{Journal, UsageKey};
use crate::lease::Lease;
use crate::product::{Guest, Product};

/// The bearer token the harness's server requires.
pub const TOKEN: &str = "fuzz-token-0123456789abcdef";

/// `--max-input-bytes` of the harness's server.
pub const MAX_INPUT_BYTES: usize = 4096;

/// Units bought for each product: never used up by a fuzzing campaign.
const BOUGHT: u64 = 1 << 40;

const CREDIT_SCORE_WAT: &str = include_str!("../../../examples/wat/credit_score.wat");
const LIMIT_BREAKER_WAT: &str = include_str!("../../../tests/fixtures/limit_breaker.wat");
const COMPONENT_WAT: &str = include_str!("../../../examples/components/wat/credit_score_rs.wat");
const COMPONENT_WIT: &str = include_str!("../../../examples/components/wit/credit-score.wit");

/// Names of entries and functions the decoder picks from (served or not).
const NAMES: &[&str] = &[
    "score",
    "echo",
    "trap",
    "spin",
    "grow",
    "sealbox_alloc",
    "memory",
    "interface",
    "",
];

/// One HTTP request, as raw parts (any of which may be invalid).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FuzzRequest {
    /// The method.
    pub method: Vec<u8>,
    /// The request target (origin form, usually).
    pub uri: Vec<u8>,
    /// Header names and values, in order.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

/// What the server answered, with the admitted units around the request.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The path the router saw (`Uri::path`).
    pub path: String,
    /// The status code.
    pub status: StatusCode,
    /// The `Content-Type` of the response, if any (and valid UTF-8).
    pub content_type: Option<String>,
    /// The response body.
    pub body: Vec<u8>,
    /// Units admitted (all products) before the request.
    pub units_before: u64,
    /// Units admitted (all products) after the response.
    pub units_after: u64,
}

/// A served product, as the decoder and the checks see it.
#[derive(Debug, Clone)]
struct ServedInfo {
    id: B256,
    key: UsageKey,
}

/// The serve router in-process around real sealed products (see the module docs).
pub struct Harness {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    journal: Arc<Journal>,
    products: Vec<ServedInfo>,
    // Holds the journal's files; removed when the harness is dropped (one in
    // a static, as the fuzz target's, leaves its few kilobytes behind).
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("products", &self.products)
            .finish_non_exhaustive()
    }
}

/// A fixed test key (never a real one).
fn test_key(byte: u8) -> SigningKey {
    SigningKey::from_bytes(&[byte; 32].into()).expect("a constant non-zero scalar is a key")
}

/// Seals `wasm` with the test vendor key, opens it and compiles it as
/// [`crate::load::Loader::load`] does.
fn seal_and_compile(
    sandbox: &Sandbox,
    wasm: &[u8],
    opts: &SealOptions,
) -> (sealed_format::Manifest, Guest) {
    let sealed = sealed_format::seal(wasm, opts, &test_key(0x51), &[]).expect("seal the fixture");
    let opened = sealed_format::open(&sealed).expect("open the sealed fixture");
    let manifest = opened.manifest.clone();
    let plaintext = opened.plaintext(None).expect("a plaintext fixture");
    let limits = GuestLimits {
        max_memory_pages: manifest.limits.max_memory_pages.map(u64::from),
        fuel: manifest.limits.fuel,
        deadline_ms: manifest.limits.deadline_ms,
    };
    let guest = if opened.is_component() {
        let component = sandbox
            .compile_component(manifest.code_hash.0, &plaintext, &limits)
            .expect("compile the component")
            .only(&manifest.entry)
            .expect("its entries");
        Guest::Component(component)
    } else {
        let program = sandbox
            .compile(manifest.code_hash.0, &plaintext, &limits)
            .expect("compile the module");
        Guest::Module(program)
    };
    (manifest, guest)
}

impl Harness {
    /// Seals and compiles the products, opens the journal with their leases
    /// and builds the router. Panics on any failure (it is a test fixture).
    pub fn new() -> Harness {
        let dir = tempfile::Builder::new()
            .prefix("sealbox-fuzz-serve-")
            .tempdir()
            .expect("a temporary directory");
        let journal = Arc::new(Journal::open(&dir.path().join("journal.db")).expect("journal"));
        let sandbox = Sandbox::new(SandboxConfig {
            cache_dir: None,
            pool_instances: 8,
            ..SandboxConfig::default()
        })
        .expect("sandbox");
        let registry = Address::repeat_byte(0x11);
        let base = |name: &str| {
            let mut opts = SealOptions::new(name, "1.0.0", 31337, registry);
            opts.metering = Metering::KernelPreferred;
            opts
        };
        let mut breaker = base("limit-breaker");
        breaker.limits = Limits {
            max_memory_pages: Some(2),
            fuel: Some(200_000),
            deadline_ms: Some(2_000),
        };
        let mut component = base("credit-score-rs");
        component.component = Some(WorldSource {
            wit: COMPONENT_WIT.to_string(),
            world: Some("scorer".to_string()),
        });
        let fixtures = [
            (CREDIT_SCORE_WAT, base("credit-score")),
            (LIMIT_BREAKER_WAT, breaker),
            (COMPONENT_WAT, component),
        ];
        let mut served = Vec::new();
        let mut products = Vec::new();
        for (i, (wat, opts)) in fixtures.into_iter().enumerate() {
            let wasm = wat::parse_str(wat).expect("the fixture's text parses");
            let (manifest, guest) = seal_and_compile(&sandbox, &wasm, &opts);
            let key = UsageKey {
                deployment: [0xde; 32],
                buyer: [0xb0; 32],
                product: manifest.product_id.0,
                customer: [0xc0; 20],
                signer: [0x5a + i as u8; 20],
            };
            let lease = Lease {
                checked_at: 0,
                block: 1,
                block_timestamp: 0,
                price_wei: 1,
                available_wei: u128::from(u64::MAX),
                bought_units: 0,
                bought_block: 1,
                inactive: None,
                signer_deauthorized: false,
                cannot_buy: None,
                release: manifest.code_hash.0,
            };
            // Nothing bought when the counter is created (else its units would
            // count as used), then a purchase confirmed in the next block.
            journal.store_lease(&key, &lease).expect("store the lease");
            journal
                .record_bought(&key, BOUGHT, 2)
                .expect("record the purchase");
            products.push(ServedInfo {
                id: manifest.product_id,
                key,
            });
            let product =
                Product::new(manifest, guest, key, Arc::clone(&journal), None).expect("product");
            served.push(Arc::new(Served::new(product)));
        }
        let pool = CallPool::for_calls(1, 4).expect("the call worker");
        let token: BearerToken = TOKEN.parse().expect("a valid token");
        let app = Arc::new(App::new(
            served,
            Arc::clone(&journal),
            Some(token),
            MAX_INPUT_BYTES,
            pool,
        ));
        let guard = Guard::new(HostRule::Tcp {
            bound: std::net::Ipv4Addr::LOCALHOST.into(),
            allowed: vec![],
        });
        let router = super::http::router(app, guard);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        Harness {
            rt,
            router,
            journal,
            products,
            _dir: dir,
        }
    }

    /// The served product ids, in order: the two modules, then the component.
    pub fn product_ids(&self) -> Vec<B256> {
        self.products.iter().map(|p| p.id).collect()
    }

    /// Units admitted so far, summed over the products.
    pub fn admitted_units(&self) -> u64 {
        self.products
            .iter()
            .map(|p| {
                self.journal
                    .usage(&p.key)
                    .expect("the journal reads")
                    .runtime_units
            })
            .sum()
    }

    /// Sends one request through the router. `None` when its method, URI or
    /// a header is not valid HTTP (such a request never reaches a router).
    pub fn request(
        &self,
        method: &[u8],
        uri: &[u8],
        headers: &[(Vec<u8>, Vec<u8>)],
        body: Vec<u8>,
    ) -> Option<Outcome> {
        let method = Method::from_bytes(method).ok()?;
        let uri = Uri::try_from(uri).ok()?;
        let mut builder = Request::builder().method(method).uri(uri.clone());
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name).ok()?;
            let value = HeaderValue::from_bytes(value).ok()?;
            builder = builder.header(name, value);
        }
        let request = builder.body(Body::from(body)).ok()?;
        let units_before = self.admitted_units();
        let router = self.router.clone();
        let (status, content_type, body) = self.rt.block_on(async move {
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let status = response.status();
            let content_type = response
                .headers()
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("an in-memory response body is readable");
            (status, content_type, body.to_vec())
        });
        Some(Outcome {
            path: uri.path().to_string(),
            status,
            content_type,
            body,
            units_before,
            units_after: self.admitted_units(),
        })
    }

    /// Decodes fuzz input into a request (see the module docs). Total: any
    /// input gives a request, short input a plain one.
    pub fn decode(&self, data: &[u8]) -> FuzzRequest {
        let mut u = Unstructured::new(data);
        let method = self.decode_method(&mut u);
        let uri = self.decode_uri(&mut u);
        let headers = decode_headers(&mut u);
        let body = decode_body(&mut u);
        let mut headers = headers;
        // Content-Length placeholders take the body's length now it is known.
        for (name, value) in &mut headers {
            if name.as_slice() == b"content-length" && value.as_slice() == b"=" {
                *value = body.len().to_string().into_bytes();
            }
        }
        FuzzRequest {
            method,
            uri,
            headers,
            body,
        }
    }

    /// Decodes `data`, sends the request and checks every invariant of the
    /// module docs; panics, naming the request and the answer, on a violation.
    /// Returns the outcome (`None` when the request was not valid HTTP).
    pub fn check(&self, data: &[u8]) -> Option<Outcome> {
        let request = self.decode(data);
        let outcome = self.request(
            &request.method,
            &request.uri,
            &request.headers,
            request.body.clone(),
        )?;
        if let Err(violation) = invariants(&request, &outcome) {
            panic!(
                "serve invariant violated: {violation}\nrequest: {} {}\nheaders: {:?}\nbody \
                 ({} bytes): {:?}\nstatus: {}\ncontent-type: {:?}\nresponse body: {}",
                String::from_utf8_lossy(&request.method),
                String::from_utf8_lossy(&request.uri),
                request
                    .headers
                    .iter()
                    .map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v)))
                    .collect::<Vec<_>>(),
                request.body.len(),
                String::from_utf8_lossy(&request.body[..request.body.len().min(200)]),
                outcome.status,
                outcome.content_type,
                String::from_utf8_lossy(&outcome.body[..outcome.body.len().min(500)]),
            );
        }
        Some(outcome)
    }

    fn decode_method(&self, u: &mut Unstructured<'_>) -> Vec<u8> {
        let methods: &[&[u8]] = &[
            b"POST", b"POST", b"POST", b"GET", b"GET", b"PUT", b"DELETE", b"HEAD", b"OPTIONS",
            b"PATCH",
        ];
        let pick = u.int_in_range(0..=methods.len()).unwrap_or(0);
        match methods.get(pick) {
            Some(m) => m.to_vec(),
            None => bytes(u, 12),
        }
    }

    fn decode_uri(&self, u: &mut Unstructured<'_>) -> Vec<u8> {
        let mut uri = b"/".to_vec();
        match u.int_in_range(0u8..=9).unwrap_or(0) {
            0..=2 => {
                let id = self.decode_id(u);
                let name = decode_name(u);
                uri = [b"/v1/products/".as_slice(), &id, b"/invoke/", &name].concat();
            }
            3 | 4 => {
                let id = self.decode_id(u);
                let name = decode_name(u);
                uri = [b"/v1/products/".as_slice(), &id, b"/call/", &name].concat();
            }
            5 => {
                let id = self.decode_id(u);
                uri = [b"/v1/products/".as_slice(), &id, b"/interface"].concat();
            }
            6 => uri = b"/healthz".to_vec(),
            7 => uri = b"/metrics".to_vec(),
            _ => {
                // Segments from the routes' words, ids and oddities.
                let n = u.int_in_range(0u8..=6).unwrap_or(0);
                uri.clear();
                for _ in 0..n {
                    let words: &[&[u8]] = &[
                        b"v1",
                        b"products",
                        b"invoke",
                        b"call",
                        b"interface",
                        b"healthz",
                        b"metrics",
                        b"..",
                        b".",
                        b"%2e%2e",
                        b"",
                    ];
                    let pick = u.int_in_range(0..=words.len() + 1).unwrap_or(0);
                    let segment = match words.get(pick) {
                        Some(w) => w.to_vec(),
                        None if pick == words.len() => self.decode_id(u),
                        None => escape(&bytes(u, 24)),
                    };
                    uri.extend([b"/".as_slice(), &segment].concat());
                }
                if uri.is_empty() {
                    uri.push(b'/');
                }
            }
        }
        // Suffixes: trailing slashes, dot segments, escapes, queries, long segments.
        for _ in 0..u.int_in_range(0u8..=3).unwrap_or(0) {
            let suffixes: &[&[u8]] = &[
                b"/",
                b"/..",
                b"/%2e%2e",
                b"/./",
                b"//",
                b"%2F",
                b"%FF",
                b"%00",
                b"%",
                b"?x=1",
                b"#f",
                b"?",
                b"/healthz",
            ];
            let pick = u.int_in_range(0..=suffixes.len()).unwrap_or(0);
            match suffixes.get(pick) {
                Some(s) => uri.extend_from_slice(s),
                None => {
                    let len = u.int_in_range(0usize..=9000).unwrap_or(0);
                    uri.push(b'/');
                    uri.extend(std::iter::repeat_n(b'a', len));
                }
            }
        }
        uri
    }

    /// A `{product_id}`: a served one (as is, upper case, without `0x`,
    /// percent-escaped), random hex of the right or a wrong length, or anything.
    fn decode_id(&self, u: &mut Unstructured<'_>) -> Vec<u8> {
        let n = self.products.len();
        let served = |u: &mut Unstructured<'_>| {
            let i = u.int_in_range(0..=n - 1).unwrap_or(0);
            self.products[i].id.to_string().into_bytes()
        };
        match u.int_in_range(0u8..=10).unwrap_or(0) {
            0..=3 => served(u),
            4 => served(u).to_ascii_uppercase(),
            5 => served(u)[2..].to_vec(),
            6 => escape(&served(u)),
            7 => {
                let raw: [u8; 32] = u.arbitrary().unwrap_or([0; 32]);
                format!("0x{}", hex::encode(raw)).into_bytes()
            }
            8 => {
                let len = u.int_in_range(0usize..=80).unwrap_or(0);
                let raw = bytes(u, len);
                format!("0x{}", hex::encode(raw)).into_bytes()
            }
            9 => escape(&bytes(u, 40)),
            _ => {
                let mut id = served(u);
                id.extend(std::iter::repeat_n(
                    b'0',
                    u.int_in_range(1usize..=5000).unwrap_or(1),
                ));
                id
            }
        }
    }
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

/// Up to `max` arbitrary bytes.
fn bytes(u: &mut Unstructured<'_>, max: usize) -> Vec<u8> {
    let len = u.int_in_range(0..=max).unwrap_or(0);
    u.bytes(len).map(<[u8]>::to_vec).unwrap_or_default()
}

/// Bytes as a path segment: unreserved ones as is, the rest percent-escaped.
fn escape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in raw {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend(format!("%{b:02X}").into_bytes());
        }
    }
    out
}

/// An `{export}` / `{function}`: a known name, or arbitrary escaped bytes.
fn decode_name(u: &mut Unstructured<'_>) -> Vec<u8> {
    let pick = u.int_in_range(0..=NAMES.len()).unwrap_or(0);
    match NAMES.get(pick) {
        Some(name) => name.as_bytes().to_vec(),
        None => escape(&bytes(u, 40)),
    }
}

fn decode_headers(u: &mut Unstructured<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let add = |headers: &mut Vec<_>, name: &str, value: &[u8]| {
        headers.push((name.as_bytes().to_vec(), value.to_vec()));
    };
    // Mostly authorized and addressed to this server, so the fuzzer gets past
    // the token and the guard.
    let h = &mut headers;
    match u.int_in_range(0u8..=6).unwrap_or(0) {
        0..=2 => add(h, "authorization", format!("Bearer {TOKEN}").as_bytes()),
        3 => add(h, "authorization", format!("bEaReR  {TOKEN} ").as_bytes()),
        4 => add(h, "authorization", format!("Bearer {TOKEN}x").as_bytes()),
        5 => add(h, "authorization", format!("Basic {TOKEN}").as_bytes()),
        _ => {}
    }
    match u.int_in_range(0u8..=7).unwrap_or(0) {
        0..=2 => add(h, "host", b"127.0.0.1:8080"),
        3 => add(h, "host", b"localhost"),
        4 => add(h, "host", b"[::1]:1"),
        5 => add(h, "host", b"evil.example:8080"),
        6 => add(h, "host", &bytes(u, 30)),
        _ => {}
    }
    for _ in 0..u.int_in_range(0u8..=4).unwrap_or(0) {
        match u.int_in_range(0u8..=13).unwrap_or(0) {
            0 => add(h, "origin", b"null"),
            1 => add(h, "origin", b"http://127.0.0.1:8080"),
            2 => add(h, "sec-fetch-site", b"none"),
            3 => add(h, "sec-fetch-site", b"cross-site"),
            // `=`: the body's length, once it is decoded.
            4 => add(h, "content-length", b"="),
            5 => add(h, "content-length", b"4097"),
            6 => add(h, "content-length", b"18446744073709551616"),
            7 => add(h, "content-length", &bytes(u, 8)),
            8 => add(h, "content-type", b"application/json"),
            9 => add(h, "content-type", b"application/octet-stream"),
            10 => add(h, "content-type", b"text/plain"),
            11 => add(h, "authorization", &bytes(u, 60)),
            12 => add(h, "sec-fetch-site", &bytes(u, 12)),
            _ => {
                let name = bytes(u, 16);
                let value = bytes(u, 40);
                h.push((name, value));
            }
        }
    }
    headers
}

fn decode_body(u: &mut Unstructured<'_>) -> Vec<u8> {
    match u.int_in_range(0u8..=6).unwrap_or(0) {
        0 => Vec::new(),
        mode @ (1 | 2) => {
            // An applicant, each field in or near its range; as the
            // component's parameters (`{"applicant": …}`), or bare.
            let n = |u: &mut Unstructured<'_>, max: u64| -> String {
                match u.int_in_range(0u8..=9).unwrap_or(0) {
                    0 => "-1".into(),
                    1 => "1e3".into(),
                    2 => "\"7\"".into(),
                    3 => "18446744073709551616".into(),
                    _ => u.int_in_range(0..=max).unwrap_or(0).to_string(),
                }
            };
            let applicant = format!(
                r#"{{"income":{},"debt":{},"age":{},"late-payments":{},"credit-history-months":{}}}"#,
                n(u, 2_000_000),
                n(u, 2_000_000),
                n(u, 150),
                n(u, 2000),
                n(u, 2000)
            );
            match mode {
                1 => format!(r#"{{"applicant":{applicant}}}"#).into_bytes(),
                _ => applicant.into_bytes(),
            }
        }
        3 => json_ish(u, 0),
        4 => {
            let len = u.int_in_range(4000usize..=5000).unwrap_or(4097);
            vec![b'x'; len]
        }
        _ => u.bytes(u.len()).map(<[u8]>::to_vec).unwrap_or_default(),
    }
}

/// A small JSON-like text (not always valid JSON).
fn json_ish(u: &mut Unstructured<'_>, depth: u8) -> Vec<u8> {
    let pick = if depth > 3 {
        u.int_in_range(0u8..=4).unwrap_or(0)
    } else {
        u.int_in_range(0u8..=7).unwrap_or(0)
    };
    match pick {
        0 => b"null".to_vec(),
        1 => u
            .int_in_range(0u64..=u64::MAX)
            .unwrap_or(0)
            .to_string()
            .into_bytes(),
        2 => format!("{:?}", String::from_utf8_lossy(&bytes(u, 12))).into_bytes(),
        3 => b"true".to_vec(),
        4 => bytes(u, 6),
        5 => {
            let mut out = b"[".to_vec();
            for i in 0..u.int_in_range(0u8..=3).unwrap_or(0) {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(json_ish(u, depth + 1));
            }
            out.push(b']');
            out
        }
        _ => {
            let mut out = b"{".to_vec();
            for i in 0..u.int_in_range(0u8..=3).unwrap_or(0) {
                if i > 0 {
                    out.push(b',');
                }
                let key = decode_name(u);
                out.extend(format!("{:?}:", String::from_utf8_lossy(&key)).into_bytes());
                out.extend(json_ish(u, depth + 1));
            }
            out.push(b'}');
            out
        }
    }
}

/// The first value of header `name` (as the server's checks read it).
fn first_header<'a>(request: &'a FuzzRequest, name: &str) -> Option<&'a [u8]> {
    request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_slice())
}

/// Whether the request presents [`TOKEN`], stated independently of
/// [`BearerToken::accepts`]: `Bearer` (any case), a space, the token,
/// surrounding whitespace aside.
fn presents_token(request: &FuzzRequest) -> bool {
    let Some(value) = first_header(request, "authorization") else {
        return false;
    };
    let Some((scheme, rest)) = value.split_at_checked(7) else {
        return false;
    };
    scheme.eq_ignore_ascii_case(b"bearer ") && rest.trim_ascii() == TOKEN.as_bytes()
}

/// Whether the request's path is a call route (`POST` to `invoke` or `call`
/// of some product): the only requests a 200 bills.
fn is_call(request: &FuzzRequest, path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    request.method.as_slice() == b"POST"
        && matches!(
            segments.as_slice(),
            ["", "v1", "products", id, "invoke" | "call", name]
                if !id.is_empty() && !name.is_empty()
        )
}

/// The invariants of the module docs; `Err` names the one that fails.
fn invariants(request: &FuzzRequest, out: &Outcome) -> Result<(), String> {
    let status = out.status.as_u16();
    let documented = [200, 400, 401, 402, 403, 404, 405, 413, 422, 503];
    if !documented.contains(&status) {
        return Err(format!("status {status} is not in http.rs's table"));
    }
    let mut error_kind = None;
    // A response to HEAD has no body (the router drops it).
    if !out.status.is_success() && request.method.as_slice() != b"HEAD" {
        let json: serde_json::Value = serde_json::from_slice(&out.body)
            .map_err(|e| format!("a {status} body is not JSON: {e}"))?;
        let fields = json
            .as_object()
            .ok_or_else(|| format!("a {status} body is not a JSON object"))?;
        let kind = fields.get("error").and_then(|v| v.as_str());
        let message = fields.get("message").and_then(|v| v.as_str());
        if kind.is_none() || message.is_none() || fields.len() != 2 {
            return Err(format!(
                "a {status} body is not {{\"error\": string, \"message\": string}}"
            ));
        }
        error_kind = kind.map(str::to_string);
    }
    let billed = out
        .units_after
        .checked_sub(out.units_before)
        .ok_or("the admitted units went down")?;
    let should_bill = match status {
        200 => is_call(request, &out.path),
        // `bad-argument`: the JSON did not fit the WIT parameters, refused
        // before admission; any other 422 is the guest's fault, after it.
        422 => error_kind.as_deref() != Some("bad-argument"),
        _ => false,
    };
    if billed != u64::from(should_bill) {
        return Err(format!(
            "{billed} unit(s) admitted for a {status} (expected {})",
            u64::from(should_bill)
        ));
    }
    let healthz = out.path == "/healthz";
    let from_a_page = first_header(request, "origin").is_some()
        || first_header(request, "sec-fetch-site").is_some_and(|v| v != b"none");
    if from_a_page && status != 403 {
        return Err(format!("a request from a web page got {status}, not 403"));
    }
    if out.status.is_success() && !healthz {
        if !presents_token(request) {
            return Err(format!("{status} without the right token"));
        }
        if first_header(request, "host").is_none() {
            return Err(format!("{status} without a Host header"));
        }
    }
    Ok(())
}
