//! What a web page may ask of the daemon. `weft serve` listens on loopback
//! with no tokens by default, so any page the operator's browser opens could
//! otherwise drive it: a form posting a run (a "simple" cross-site request
//! needs no CORS permission), or a page whose DNS name is re-pointed at
//! 127.0.0.1 after it loaded (DNS rebinding), which then reads every answer as
//! its own origin. Three checks, before authentication, on every route (the
//! API, its event streams, health and metrics):
//!
//! - **Host**: the `Host` header must be an IP address, `localhost`, or a name
//!   in `[server] allowed_hosts`. A rebinding page's requests carry its own
//!   DNS name, and an IP literal cannot be rebound.
//! - **Origin**: a request from a page carries `Origin`; it must be the
//!   daemon's own (`http(s)://` + its `Host`) or in `[server]
//!   allowed_origins`. Without `Origin`, a request the browser marks
//!   `Sec-Fetch-Site: cross-site` is refused unless it is a plain navigation.
//! - **Body**: a request body must be `application/json`, which a page can
//!   only send cross-site after a CORS preflight the daemon answers only for
//!   `allowed_origins`.
//!
//! The CLI and curl send no `Origin` and a literal `Host`, so they are not
//! affected. This module owns those checks and the CORS layer; it knows
//! nothing of users or runs.

use std::collections::HashSet;
use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::ApiError;

/// The names and origins a deployment accepts besides loopback's own.
#[derive(Debug, Clone, Default)]
pub(crate) struct CrossSite {
    /// Host names (lowercase, without port) the daemon is reached by.
    hosts: HashSet<String>,
    /// Origins (`scheme://host[:port]`, lowercase) whose pages may call it.
    origins: HashSet<String>,
}

impl CrossSite {
    pub(crate) fn new(hosts: &[String], origins: &[String]) -> Self {
        CrossSite {
            hosts: hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            origins: origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// CORS answers for the configured origins only (none by default).
    pub(crate) fn cors(&self) -> Option<CorsLayer> {
        if self.origins.is_empty() {
            return None;
        }
        let origins: Vec<HeaderValue> = self
            .origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::HeaderName::from_static("idempotency-key"),
                    header::HeaderName::from_static("last-event-id"),
                ])
                .expose_headers([header::LOCATION, header::RETRY_AFTER]),
        )
    }

    /// Refuse what a foreign page sent; `Ok` lets the request through.
    pub(crate) fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = self.check_host(headers)?;
        self.check_origin(method, headers, host)?;
        check_body_type(headers)
    }

    /// The `Host` header, when it names this daemon in a way no other site
    /// can (None: no header, as from some non-browser clients).
    fn check_host<'h>(&self, headers: &'h HeaderMap) -> Result<Option<&'h str>, ApiError> {
        let Some(value) = headers.get(header::HOST) else {
            return Ok(None);
        };
        let host = value.to_str().unwrap_or_default();
        let name = host_name(host);
        let known = name.parse::<IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || self.hosts.contains(&name.to_ascii_lowercase());
        if known {
            Ok(Some(host))
        } else {
            Err(forbidden(format!(
                "requests addressed to host `{}` are refused: this daemon answers to IP \
                 addresses, `localhost` and the names in `[server] allowed_hosts`",
                value.to_str().unwrap_or("(not text)")
            )))
        }
    }

    fn check_origin(
        &self,
        method: &Method,
        headers: &HeaderMap,
        host: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return check_fetch_site(method, headers);
        };
        let origin = origin.to_str().unwrap_or("(not text)");
        let lower = origin.trim_end_matches('/').to_ascii_lowercase();
        let own = host.is_some_and(|host| {
            let host = host.to_ascii_lowercase();
            lower == format!("http://{host}") || lower == format!("https://{host}")
        });
        if own || self.origins.contains(&lower) {
            Ok(())
        } else {
            Err(forbidden(format!(
                "cross-origin request from `{origin}` refused: add the origin to \
                 `[server] allowed_origins` to let its pages use this daemon"
            )))
        }
    }
}

/// Browsers that send no `Origin` still say where a request comes from.
fn check_fetch_site(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    let site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let navigation = headers
        .get("sec-fetch-mode")
        .is_some_and(|v| v.as_bytes() == b"navigate");
    let reads = matches!(*method, Method::GET | Method::HEAD);
    if site.eq_ignore_ascii_case("cross-site") && !(navigation && reads) {
        return Err(forbidden(
            "cross-site request refused (`Sec-Fetch-Site: cross-site` without an allowed origin)",
        ));
    }
    Ok(())
}

/// A request with a body must say it is JSON: the content types a page can
/// send cross-site without asking (forms, `text/plain`) are refused.
fn check_body_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|n| n.trim() != "0");
    if !has_body {
        return Ok(());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        let shown = if content_type.is_empty() {
            "none".to_string()
        } else {
            format!("`{content_type}`")
        };
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("request bodies must be `Content-Type: application/json` (got {shown})"),
        ))
    }
}

/// `example.com:7878` → `example.com`; `[::1]:7878` → `::1`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, message)
}

/// The middleware: every request passes [`CrossSite::check`] first.
pub(crate) async fn guard(
    State(rules): State<std::sync::Arc<CrossSite>>,
    request: Request,
    next: Next,
) -> Response {
    match rules.check(request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => {
            tracing::warn!(
                status = e.status().as_u16(),
                method = %request.method(),
                path = %request.uri().path(),
                "refused a cross-site request"
            );
            e.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn status(rules: &CrossSite, method: Method, pairs: &[(&'static str, &str)]) -> u16 {
        match rules.check(&method, &headers(pairs)) {
            Ok(()) => 200,
            Err(e) => e.status().as_u16(),
        }
    }

    #[test]
    fn host_names_that_can_be_rebound_are_refused() {
        let rules = CrossSite::new(&["weft.internal".into()], &[]);
        for ok in [
            "127.0.0.1:7878",
            "[::1]:7878",
            "localhost:7878",
            "LOCALHOST",
            "10.0.0.5",
            "weft.internal:80",
        ] {
            assert_eq!(status(&rules, Method::GET, &[("host", ok)]), 200, "{ok}");
        }
        for bad in [
            "evil.example:7878",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
        ] {
            assert_eq!(status(&rules, Method::GET, &[("host", bad)]), 403, "{bad}");
        }
    }

    #[test]
    fn only_the_own_or_configured_origins_pass() {
        let rules = CrossSite::new(&[], &["https://console.example".into()]);
        let host = ("host", "127.0.0.1:7878");
        let with = |origin: &str| status(&rules, Method::GET, &[host, ("origin", origin)]);
        assert_eq!(with("http://127.0.0.1:7878"), 200);
        assert_eq!(with("https://console.example"), 200);
        assert_eq!(with("https://console.example/"), 200);
        assert_eq!(with("http://127.0.0.1:9999"), 403);
        assert_eq!(with("https://evil.example"), 403);
        assert_eq!(with("null"), 403);
    }

    #[test]
    fn cross_site_requests_without_origin_are_refused_unless_navigations() {
        let rules = CrossSite::default();
        let site = ("sec-fetch-site", "cross-site");
        assert_eq!(status(&rules, Method::POST, &[site]), 403);
        assert_eq!(
            status(&rules, Method::GET, &[site, ("sec-fetch-mode", "no-cors")]),
            403
        );
        assert_eq!(
            status(&rules, Method::GET, &[site, ("sec-fetch-mode", "navigate")]),
            200
        );
        assert_eq!(
            status(&rules, Method::POST, &[("sec-fetch-site", "none")]),
            200
        );
    }

    #[test]
    fn bodies_must_be_json() {
        let rules = CrossSite::default();
        let post = |pairs: &[(&'static str, &str)]| status(&rules, Method::POST, pairs);
        assert_eq!(post(&[("content-length", "0")]), 200);
        assert_eq!(post(&[]), 200);
        let json = ("content-type", "application/json; charset=utf-8");
        assert_eq!(post(&[("content-length", "2"), json]), 200);
        for form in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ] {
            let t = ("content-type", form);
            assert_eq!(post(&[("content-length", "2"), t]), 415, "{form}");
        }
        assert_eq!(post(&[("content-length", "2")]), 415);
        assert_eq!(post(&[("transfer-encoding", "chunked")]), 415);
    }
}
