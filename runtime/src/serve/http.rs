//! Routes, handlers and the mapping of errors to status codes.
//!
//! | status | when |
//! |---|---|
//! | 400 | product id not 32 bytes of hex, a path segment not UTF-8 once percent-decoded, unknown export, unreadable body (not JSON for `/call`), the wrong route for the product's kind |
//! | 401 | bearer token missing or wrong (when one is set) |
//! | 402 | license inactive, signer not authorized, no bought unit left (with `Retry-After` while the next block is being bought), no unit can be bought |
//! | 403 | sent by a web page (`Origin`, `Sec-Fetch-Site`) or to a foreign `Host` (see [`super::guard`]) |
//! | 404 | no such product served here; no such function (`/call`); not a component (`/interface`) |
//! | 405 | a route's path with a method it does not take (`Allow` names the one it does; before the token check) |
//! | 413 | body larger than `--max-input-bytes` |
//! | 422 | the JSON body does not fit the function's WIT parameters (`/call`; the message names the field), or the guest trapped, ran out of fuel or time, hit its memory limit, broke the ABI, exited |
//! | 500 | anything else (journal, engine) |
//! | 503 | the call queue is full (`--call-queue`; with `Retry-After: 1`), or the server is shutting down |
//!
//! Requests refused before admission (400, 401, 402, 403, 404, 405, 413, 503) are not billed.

use std::sync::Arc;

use alloy::primitives::B256;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sealbox_sandbox::CallError;

use super::auth::require_token;
use super::guard::{Guard, refuse_browsers};
use super::metrics;
use super::pool::{Done, Output, Refused, Request};
use super::state::{App, Served};
use crate::error::RuntimeError;
use crate::product::Guest;
use sealbox_sandbox::component::results_to_json;

/// The router: `/healthz` open, everything else behind the token (if any);
/// every route and the fallback behind the browser guard, which runs first.
pub(crate) fn router(app: Arc<App>, guard: Arc<Guard>) -> Router {
    let counters = Arc::clone(&guard);
    let guarded = Router::new()
        .route("/v1/products/{product_id}/invoke/{export}", post(invoke))
        .route(
            "/v1/products/{product_id}/call/{function}",
            post(call_typed),
        )
        .route("/v1/products/{product_id}/interface", get(interface))
        .route(
            "/metrics",
            get(move |state: State<Arc<App>>| metrics_text(state, Arc::clone(&counters))),
        )
        .layer(DefaultBodyLimit::max(app.max_input_bytes))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(guarded)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
        // Added last, so it wraps the token check and the body limit.
        .layer(axum::middleware::from_fn_with_state(guard, refuse_browsers))
}

/// A JSON error response `{"error": kind, "message": message}`.
pub(crate) fn error_response(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": kind, "message": message });
    (status, axum::Json(body)).into_response()
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    let body = serde_json::json!({ "status": "ok", "products": app.products.len() });
    axum::Json(body).into_response()
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not-found",
        "no such route; calls go to POST /v1/products/{product_id}/invoke/{export} (modules) or \
         POST /v1/products/{product_id}/call/{function} (components)",
    )
}

/// A known route with another method: JSON like every other error (axum's
/// own 405 has an empty body); axum adds the `Allow` header.
async fn method_not_allowed(method: Method) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        &format!("this route does not take {method} (the Allow header names the method it takes)"),
    )
}

async fn metrics_text(State(app): State<Arc<App>>, guard: Arc<Guard>) -> Response {
    let reader = Arc::clone(&app);
    let views = match tokio::task::spawn_blocking(move || metrics::read_journal(&reader)).await {
        Ok(views) => views,
        Err(e) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &format!("reading the journal failed: {e}"),
            );
        }
    };
    let mut text = metrics::render(&app, &views);
    metrics::render_refused(&mut text, guard.refused_origin(), guard.refused_host());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// A route's path parameters, or the JSON 400 refusing them: a segment
/// whose percent-escapes do not decode to UTF-8 (axum's own rejection would
/// answer in plain text).
// The error is the refusal itself, built once, on the way out.
#[allow(clippy::result_large_err)]
fn path_params<T>(path: Result<Path<T>, PathRejection>) -> Result<T, Response> {
    match path {
        Ok(Path(params)) => Ok(params),
        Err(rejection) => Err(error_response(
            StatusCode::BAD_REQUEST,
            "bad-path",
            &rejection.body_text(),
        )),
    }
}

/// The served product of a path's `{product_id}`, or the response refusing it.
// The error is the refusal itself, built once, on the way out.
#[allow(clippy::result_large_err)]
fn find_product(app: &App, product_id: &str) -> Result<Arc<Served>, Response> {
    let Ok(id) = product_id.parse::<B256>() else {
        return Err(error_response(
            StatusCode::BAD_REQUEST,
            "bad-product-id",
            &format!("`{product_id}` is not a product id (32 bytes as 0x-hex)"),
        ));
    };
    match app.find(&id) {
        Some(served) => Ok(Arc::clone(served)),
        None => {
            let served: Vec<String> = app.products.iter().map(|s| s.id.to_string()).collect();
            Err(error_response(
                StatusCode::NOT_FOUND,
                "unknown-product",
                &format!(
                    "product {id} is not served here (serving {})",
                    served.join(", ")
                ),
            ))
        }
    }
}

/// The request body within `--max-input-bytes`, or the response refusing it.
// The error is the refusal itself, built once, on the way out.
#[allow(clippy::result_large_err)]
fn read_body(
    app: &App,
    served: &Served,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, Response> {
    let limit = app.max_input_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        served.stats.error("input-too-large");
        return Err(too_large(limit));
    }
    match body {
        Ok(input) => Ok(input),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            served.stats.error("input-too-large");
            Err(too_large(limit))
        }
        Err(rejection) => {
            served.stats.error("bad-body");
            Err(error_response(
                StatusCode::BAD_REQUEST,
                "bad-body",
                &format!("cannot read the request body: {rejection}"),
            ))
        }
    }
}

async fn invoke(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (product_id, export) = match path_params(path) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let served = match find_product(&app, &product_id) {
        Ok(served) => served,
        Err(response) => return response,
    };
    let input = match read_body(&app, &served, &headers, body) {
        Ok(input) => input,
        Err(response) => return response,
    };
    if let Guest::Component(_) = served.product.guest() {
        served.stats.error("not-a-module");
        return error_response(
            StatusCode::BAD_REQUEST,
            "not-a-module",
            &format!(
                "{} is a component: POST a JSON body to /v1/products/{}/call/{{function}} \
                 (functions: {})",
                served.label(),
                served.id,
                served.entries.join(", ")
            ),
        );
    }
    if !served.entries.contains(&export) {
        served.stats.error("unknown-export");
        return error_response(
            StatusCode::BAD_REQUEST,
            "unknown-export",
            &format!(
                "{} has no entry `{export}` (entries: {})",
                served.label(),
                served.entries.join(", ")
            ),
        );
    }
    let request = Request::Bytes { export, input };
    match call(&app, &served, request).await {
        Ok(Output::Bytes(output)) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )],
            output,
        )
            .into_response(),
        Ok(Output::Typed(_)) => internal("a bytes call returned typed values"),
        Err(response) => response,
    }
}

/// `POST /v1/products/{id}/call/{function}`: a component's function with a
/// JSON body mapped to its WIT parameters; the result as JSON.
async fn call_typed(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (product_id, function) = match path_params(path) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let served = match find_product(&app, &product_id) {
        Ok(served) => served,
        Err(response) => return response,
    };
    let input = match read_body(&app, &served, &headers, body) {
        Ok(input) => input,
        Err(response) => return response,
    };
    let Ok(component) = served.product.component() else {
        served.stats.error("not-a-component");
        return error_response(
            StatusCode::BAD_REQUEST,
            "not-a-component",
            &format!(
                "{} is a core module: POST the input bytes to /v1/products/{}/invoke/{{export}} \
                 (entries: {})",
                served.label(),
                served.id,
                served.entries.join(", ")
            ),
        );
    };
    let json: serde_json::Value = match serde_json::from_slice(&input) {
        Ok(json) => json,
        Err(e) => {
            served.stats.error("bad-body");
            return error_response(
                StatusCode::BAD_REQUEST,
                "bad-body",
                &format!("the body is not JSON: {e}"),
            );
        }
    };
    // Typed here, before the call is queued or admitted: a body that does
    // not fit is never billed.
    let args = match component.json_call(&function, &json) {
        Ok(call) => call.into_args(),
        Err(e @ CallError::MissingExport { .. }) => {
            served.stats.error("unknown-function");
            return error_response(StatusCode::NOT_FOUND, "unknown-function", &e.to_string());
        }
        Err(e) => {
            served.stats.error("bad-argument");
            return error_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad-argument",
                &e.to_string(),
            );
        }
    };
    match call(&app, &served, Request::Typed { function, args }).await {
        Ok(Output::Typed(results)) => axum::Json(results_to_json(&results)).into_response(),
        Ok(Output::Bytes(_)) => internal("a typed call returned bytes"),
        Err(response) => response,
    }
}

/// `GET /v1/products/{id}/interface`: the WIT of a component's world.
async fn interface(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let product_id = match path_params(path) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let served = match find_product(&app, &product_id) {
        Ok(served) => served,
        Err(response) => return response,
    };
    let Some(world) = &served.product.manifest().component else {
        return error_response(
            StatusCode::NOT_FOUND,
            "not-a-component",
            &format!(
                "{} is a core module: it has bytes entries ({}), not a WIT interface",
                served.label(),
                served.entries.join(", ")
            ),
        );
    };
    let world_name = HeaderValue::from_str(&world.world_name())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                header::HeaderName::from_static("x-sealbox-world"),
                world_name,
            ),
        ],
        world.wit.clone(),
    )
        .into_response()
}

fn internal(what: &str) -> Response {
    error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", what)
}

/// Queues a call on the pool, waits for it, and turns a failure into the
/// response (with the bookkeeping of the product's stats either way).
// The error is the refusal itself, built once, on the way out.
#[allow(clippy::result_large_err)]
async fn call(app: &App, served: &Arc<Served>, request: Request) -> Result<Output, Response> {
    let done = match app.pool.submit_call(Arc::clone(served), request) {
        Ok(done) => done,
        Err(Refused::Full) => {
            served.stats.error("queue-full");
            let mut response = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue-full",
                "every call worker is busy and the call queue is full (--call-queue); retry in a \
                 moment",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Err(response);
        }
        Err(Refused::Closed) => {
            return Err(error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting-down",
                "the server is shutting down",
            ));
        }
    };
    let Ok(Done { result, took }) = done.await else {
        served.stats.error("internal");
        return Err(internal("the call's worker failed (see the server log)"));
    };
    app.after_call(served);
    match result {
        Ok(output) => {
            served.stats.call_ok(took);
            Ok(output)
        }
        Err(e) => {
            let kind = e.kind();
            // A guest error means the unit was admitted (and is billed) before the guest ran.
            if matches!(e, RuntimeError::Call(_)) {
                served.stats.call_failed(call_kind(&e), took);
            } else {
                served.stats.error(kind);
            }
            let mut response = error_response(status_of(&e), call_kind(&e), &e.to_string());
            if kind == "prepaying" {
                // The next block is being bought: worth retrying in a moment.
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Err(response)
        }
    }
}

fn too_large(limit: usize) -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "input-too-large",
        &format!("the request body is larger than the limit of {limit} bytes (--max-input-bytes)"),
    )
}

/// The error kind reported to the client: the runtime's kind, refined for guest faults.
pub(crate) fn call_kind(e: &RuntimeError) -> &'static str {
    match e {
        RuntimeError::Call(c) => fault_kind(c),
        other => other.kind(),
    }
}

/// The kind of a failed guest call, for clients and metrics.
fn fault_kind(c: &CallError) -> &'static str {
    match c {
        CallError::WithStderr { fault, .. } => fault_kind(fault),
        CallError::Exited { .. } => "exit",
        CallError::Trap { .. } => "trap",
        CallError::OutOfFuel { .. } => "out-of-fuel",
        CallError::DeadlineExceeded { .. } => "deadline",
        CallError::MemoryLimit { .. } => "memory-limit",
        CallError::InputTooLarge { .. } => "input-too-large",
        CallError::MissingExport { .. }
        | CallError::BadSignature { .. }
        | CallError::NotBytesAbi { .. }
        | CallError::BadArgument { .. } => "unknown-export",
        CallError::InputOutOfBounds { .. }
        | CallError::OutputOutOfBounds { .. }
        | CallError::OutputTooLarge { .. } => "guest-abi",
        CallError::PoolExhausted(_) => "busy",
        CallError::Instantiate(_) | CallError::Engine { .. } => "engine",
    }
}

/// The status code of a failed call.
pub(crate) fn status_of(e: &RuntimeError) -> StatusCode {
    if e.is_payment_refusal() {
        return StatusCode::PAYMENT_REQUIRED;
    }
    match e {
        RuntimeError::Call(CallError::InputTooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        RuntimeError::Call(
            CallError::MissingExport { .. }
            | CallError::BadSignature { .. }
            | CallError::NotBytesAbi { .. }
            | CallError::BadArgument { .. },
        ) => StatusCode::BAD_REQUEST,
        RuntimeError::Call(CallError::PoolExhausted(_)) => StatusCode::SERVICE_UNAVAILABLE,
        RuntimeError::Call(c) if c.is_guest_fault() => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::LeaseRefusal;

    #[test]
    fn refusals_map_to_402_and_guest_faults_to_422() {
        let exhausted = RuntimeError::Lease(LeaseRefusal::NotBought {
            used: 2,
            bought: 1,
            cannot_buy: None,
        });
        assert_eq!(status_of(&exhausted), StatusCode::PAYMENT_REQUIRED);
        let fuel = RuntimeError::Call(CallError::OutOfFuel {
            export: "f".into(),
            fuel: 1,
        });
        assert_eq!(status_of(&fuel), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(call_kind(&fuel), "out-of-fuel");
        let missing = RuntimeError::Call(CallError::MissingExport {
            name: "f".into(),
            available: vec![],
        });
        assert_eq!(status_of(&missing), StatusCode::BAD_REQUEST);
        let busy = RuntimeError::Call(CallError::PoolExhausted("64".into()));
        assert_eq!(status_of(&busy), StatusCode::SERVICE_UNAVAILABLE);
        let journal = RuntimeError::Offline("x".into());
        assert_eq!(status_of(&journal), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
