//! Outgoing HTTP for plugins (`wasi:http/outgoing-handler`): each request is
//! checked by the host against the plugin's grants (`[grants] http`, origins
//! such as `https://api.example.com`) before anything leaves; the host
//! resolves and connects (the plugin resolves nothing itself), under the
//! host's time, size and concurrency limits, and counts what passes. Owns the
//! grants' form and their check, the limits and the counts; the HTTP client
//! itself is wasmtime-wasi-http's.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Scheme, Uri};
use http_body::{Body, Frame};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

pub mod public;

/// One granted origin: a scheme, a host (or `*`: any public host) and a
/// port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGrant {
    https: bool,
    host: String,
    port: u16,
}

/// The host of a grant for any public host.
const ANY_PUBLIC: &str = "*";

impl HttpGrant {
    /// Parse `http://HOST[:PORT]` or `https://HOST[:PORT]` (no path); HOST
    /// `*` is any host whose addresses are all public.
    pub fn parse(text: &str) -> Result<HttpGrant, String> {
        if let Some((scheme, rest)) = text.split_once("://")
            && (rest == ANY_PUBLIC || rest.starts_with("*:"))
        {
            let https = match scheme {
                "https" => true,
                "http" => false,
                _ => return Err("the scheme must be http or https".into()),
            };
            let port = match rest.strip_prefix("*:") {
                Some(p) => p.parse().map_err(|_| format!("`{p}` is not a port"))?,
                None if https => 443,
                None => 80,
            };
            return Ok(HttpGrant {
                https,
                host: ANY_PUBLIC.into(),
                port,
            });
        }
        let uri: Uri = text
            .parse()
            .map_err(|_| "expected an origin such as https://api.example.com".to_string())?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("the scheme must be http or https".into()),
        };
        let Some(authority) = uri.authority() else {
            return Err("expected an origin such as https://api.example.com".into());
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err("an origin has no path: write scheme://host[:port]".into());
        }
        if authority.as_str().contains('@') {
            return Err("an origin has no user name or password".into());
        }
        Ok(HttpGrant {
            https,
            host: authority
                .host()
                .trim_matches(['[', ']'])
                .to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
        })
    }

    /// Whether a request to `uri` goes to this origin.
    pub fn allows(&self, uri: &Uri) -> bool {
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return false,
        };
        let Some(authority) = uri.authority() else {
            return false;
        };
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        https == self.https
            && port == self.port
            && (self.is_any_public()
                || authority
                    .host()
                    .trim_matches(['[', ']'])
                    .eq_ignore_ascii_case(&self.host))
    }

    /// Whether it grants any public host (checked when connecting).
    pub fn is_any_public(&self) -> bool {
        self.host == ANY_PUBLIC
    }
}

/// The host's limits on a plugin's outgoing HTTP.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// The longest wait to connect, for the first byte, and between bytes.
    pub timeout: Duration,
    /// The largest response body.
    pub max_response_bytes: u64,
    /// Requests of one plugin in flight at once (across its instances).
    pub concurrency: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            timeout: Duration::from_secs(30),
            max_response_bytes: 16 << 20,
            concurrency: 8,
        }
    }
}

/// What plugins' outgoing HTTP did, since the host started.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Requests sent.
    pub sent: AtomicU64,
    /// Requests refused: no grant for their origin.
    pub refused: AtomicU64,
    /// Requests that failed (connection, timeout, body too large).
    pub failed: AtomicU64,
    /// Response body bytes read.
    pub response_bytes: AtomicU64,
}

/// What one instance's outgoing HTTP may do.
pub(crate) struct HttpHooks {
    pub plugin: String,
    pub grants: Arc<[HttpGrant]>,
    pub limits: HttpLimits,
    /// The plugin's requests in flight.
    pub permits: Arc<tokio::sync::Semaphore>,
    pub stats: Arc<HttpStats>,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let uri = request.uri().clone();
        let matching: Vec<&HttpGrant> = self.grants.iter().filter(|g| g.allows(&uri)).collect();
        // Named origins are the operator's choice, private or not; a `*`
        // grant reaches public addresses only.
        let public_only = !matching.is_empty() && matching.iter().all(|g| g.is_any_public());
        if matching.is_empty() {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::info!(plugin = %self.plugin, host = ?uri.host(), "outgoing HTTP refused: no grant for its origin");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let limit = self.limits.timeout;
        let cap = |asked: Option<Duration>| Some(asked.map_or(limit, |a| a.min(limit)));
        let asked = options.unwrap_or_default();
        let options = RequestOptions {
            connect_timeout: cap(asked.connect_timeout),
            first_byte_timeout: cap(asked.first_byte_timeout),
            between_bytes_timeout: cap(asked.between_bytes_timeout),
        };
        let (permits, stats, max) = (
            self.permits.clone(),
            self.stats.clone(),
            self.limits.max_response_bytes,
        );
        Box::new(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .map_err(|_| Error::ConnectionLimitReached)?;
            stats.sent.fetch_add(1, Ordering::Relaxed);
            let sent = match public_only {
                true => public::send(request, limit).await,
                false => wasmtime_wasi_http::default_send_request(request, Some(options))
                    .await
                    .map(|(r, io)| {
                        let r = r.map(http_body_util::BodyExt::boxed_unsync);
                        (r, Box::new(io) as Box<dyn Future<Output = _> + Send>)
                    }),
            };
            let (response, io) = sent.inspect_err(|_| {
                stats.failed.fetch_add(1, Ordering::Relaxed);
            })?;
            // A body announced over the limit is refused at once; one that
            // is not announced is cut off where it passes it.
            let announced = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if announced.is_some_and(|n| n > max) {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                return Err(Error::HttpResponseBodySize(announced));
            }
            let response = response.map(|body| {
                let limited = Limited {
                    inner: Box::pin(body),
                    read: 0,
                    max,
                    stats,
                };
                http_body_util::BodyExt::boxed_unsync(limited)
            });
            Ok((response, io))
        })
    }
}

/// A response body cut off past `max` bytes, counting what it reads.
struct Limited<B> {
    inner: Pin<Box<B>>,
    read: u64,
    max: u64,
    stats: Arc<HttpStats>,
}

impl<B: Body<Data = Bytes, Error = Error>> Body for Limited<B> {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let n = data.len() as u64;
            self.read += n;
            self.stats.response_bytes.fetch_add(n, Ordering::Relaxed);
            if self.read > self.max {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(self.max)))));
            }
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_origins_matched_by_scheme_host_and_port() {
        let g = HttpGrant::parse("https://API.example.com").unwrap();
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert!(g.allows(&uri("https://api.example.com/v1/x?y=1")));
        assert!(g.allows(&uri("https://api.example.com:443/")));
        assert!(!g.allows(&uri("http://api.example.com/")), "another scheme");
        assert!(
            !g.allows(&uri("https://api.example.com:8443/")),
            "another port"
        );
        assert!(!g.allows(&uri("https://evil.example.com/")));
        assert!(!g.allows(&uri("https://api.example.com.evil.net/")));
        let local = HttpGrant::parse("http://127.0.0.1:8080").unwrap();
        assert!(local.allows(&uri("http://127.0.0.1:8080/x")));
        assert!(!local.allows(&uri("http://127.0.0.1:8081/x")));
        let any = HttpGrant::parse("https://*").unwrap();
        assert!(any.is_any_public());
        assert!(any.allows(&uri("https://anything.example.org/x")));
        assert!(
            !any.allows(&uri("http://anything.example.org/x")),
            "another scheme"
        );
        assert!(
            !any.allows(&uri("https://anything.example.org:8443/x")),
            "another port"
        );
        assert!(
            HttpGrant::parse("http://*:8080")
                .unwrap()
                .allows(&uri("http://a.b:8080/"))
        );
        for bad in [
            "ftp://*",
            "https://*:x",
            "api.example.com",
            "ftp://x",
            "https://x/path",
            "https://u:p@x",
        ] {
            assert!(HttpGrant::parse(bad).is_err(), "{bad}");
        }
    }
}
