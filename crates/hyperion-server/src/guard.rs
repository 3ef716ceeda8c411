//! Who may ask what: the token, the Host check (DNS rebinding), the same-origin rule for writes,
//! and the security headers every response carries.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::api::{App, error};

/// The cookie a `?token=` visit sets, so that the page's own requests (and its event stream,
/// which cannot send headers) carry the token.
const COOKIE: &str = "hyperion_token";

/// Everything but scripts and styles from this origin, no frames, no plugins, no eval.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: \
                   blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// What a request must show to be served.
#[derive(Clone, Debug)]
pub struct Access {
    token: Option<String>,
    /// Host names (without port) requests may name; `None`: any (bound to every interface with
    /// a token, which is then what protects).
    hosts: Option<Vec<String>>,
}

impl Access {
    pub fn new(options: &crate::Options, addr: SocketAddr) -> Self {
        let public = !addr.ip().is_loopback();
        let token = options
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| public.then(new_token));
        let hosts = if addr.ip().is_unspecified() && token.is_some() {
            None
        } else {
            let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
                .into_iter()
                .map(str::to_owned)
                .collect();
            hosts.push(host_of_ip(addr));
            hosts.extend(options.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()));
            Some(hosts)
        };
        Access { token, hosts }
    }

    /// The URL to open: the token in it, so that the first visit sets the cookie.
    pub fn url(&self, addr: SocketAddr) -> String {
        let host = if addr.ip().is_unspecified() {
            match hyperion_runtime::this_host() {
                "" => "localhost".to_owned(),
                host => host.to_owned(),
            }
        } else {
            host_of_ip(addr)
        };
        match &self.token {
            Some(token) => format!("http://{host}:{}/?token={token}", addr.port()),
            None => format!("http://{host}:{}/", addr.port()),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = strip_port(host).to_ascii_lowercase();
        self.hosts
            .as_ref()
            .is_none_or(|hosts| hosts.contains(&name))
    }
}

fn host_of_ip(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.find(']').map_or(host, |end| &host[..end + 2]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// 256 bits from the kernel's generator, in hex.
fn new_token() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The middleware in front of every route.
pub async fn check(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let mut response = match admit(&app, &request) {
        None => next.run(request).await,
        Some(instead) => instead,
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// `None`: serve it; `Some(r)`: answer `r` instead (a refusal, or the redirect that strips a
/// token from the address bar).
fn admit(app: &App, request: &Request) -> Option<Response> {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !app.access.host_allowed(host) {
        return Some(error(
            StatusCode::FORBIDDEN,
            "host_not_allowed",
            format!(
                "this dashboard is not served as \"{host}\" (a guard against DNS rebinding): \
                 start it with --allowed-host {}",
                strip_port(host)
            ),
        ));
    }
    let path = request.uri().path();
    let writes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(token) = &app.access.token
        && path != "/healthz"
    {
        let query_token = request.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .map(str::to_owned)
        });
        let by_header = bearer.is_some_and(|b| same(b, token));
        let by_cookie = cookie(headers, COOKIE).is_some_and(|c| same(c, token));
        let by_query = query_token.as_deref().is_some_and(|q| same(q, token));
        if !(by_header || by_cookie || by_query) {
            let given = bearer.is_some() || query_token.is_some();
            return Some(error(
                StatusCode::UNAUTHORIZED,
                if given {
                    "wrong_token"
                } else {
                    "token_required"
                },
                if given {
                    "the token does not match this dashboard's".to_owned()
                } else {
                    "this dashboard needs its token: open the URL `hyperion dashboard` printed, \
                     or send `Authorization: Bearer TOKEN`"
                        .to_owned()
                },
            ));
        }
        if by_query && !writes && !path.starts_with("/api/") {
            // Keep the token out of the address bar, history and screenshots: a cookie now.
            let mut redirect = Redirect::to(path).into_response();
            let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                redirect.headers_mut().insert(header::SET_COOKIE, value);
            }
            return Some(redirect);
        }
    }
    if writes {
        if app.read_only {
            return Some(error(
                StatusCode::METHOD_NOT_ALLOWED,
                "read_only",
                "this dashboard was started with --read-only".into(),
            ));
        }
        // A token in a header cannot come from another site's page; a cookie can, so a write
        // without one must come from this origin (browsers send Origin or Sec-Fetch-Site).
        if bearer.is_none() && !same_origin(headers, host) {
            return Some(error(
                StatusCode::FORBIDDEN,
                "cross_origin",
                "a write from another origin is refused (cross-site request forgery guard)".into(),
            ));
        }
    }
    None
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))
}

/// Whether a write comes from the dashboard's own pages, or from no browser at all (a request
/// with neither header: curl, a script; browsers always send one of them on a write).
fn same_origin(headers: &HeaderMap, host: &str) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match (get("sec-fetch-site"), get("origin")) {
        (Some(site), _) => site == "same-origin" || site == "none",
        (None, Some(origin)) => {
            origin
                .strip_prefix("http://")
                .or(origin.strip_prefix("https://"))
                == Some(host)
        }
        (None, None) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_from_host_names_and_addresses() {
        assert_eq!(strip_port("localhost:8080"), "localhost");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("example.org"), "example.org");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert_eq!(new_token().len(), 64);
        assert_ne!(new_token(), new_token());
    }
}
