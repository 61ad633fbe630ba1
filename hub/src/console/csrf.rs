//! 防跨站请求伪造: the browser sends the client certificate on its own, so a form post must prove
//! it came from a console page. Three checks, all required:
//! 1. the form's `csrf` field equals the session token: HMAC-SHA256 over the identity URI and the
//!    certificate serial, under a key derived from the hub's signing key (deterministic Ed25519
//!    signature of a fixed label, hashed), so it needs no storage and survives restarts;
//! 2. the same token in the `jsj_csrf` cookie (`SameSite=Strict; Secure; HttpOnly`), which a
//!    cross-site request does not carry;
//! 3. `Origin` (or, without it, `Referer`) names this hub.

use axum::http::HeaderMap;
use schemas::Identity;

use crate::keys::HubKeys;

/// The cookie's name.
pub const COOKIE: &str = "jsj_csrf";

/// The session token of `who` (hex).
pub fn token(keys: &HubKeys, who: &Identity) -> String {
    let label = keys.signing.sign(b"jishijiu-hub console csrf key v1");
    let key_bytes = ring::digest::digest(&ring::digest::SHA256, label.as_ref());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key_bytes.as_ref());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(who.uri.as_bytes());
    ctx.update(b"\n");
    ctx.update(who.serial.as_bytes());
    hex::encode(ctx.sign().as_ref())
}

/// The `Set-Cookie` value carrying the token.
pub fn cookie(token: &str) -> String {
    format!("{COOKIE}={token}; Path=/console; Secure; HttpOnly; SameSite=Strict")
}

/// Why a form post was refused (the text goes on the 403 page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfError {
    Origin,
    Cookie,
    Token,
}

impl CsrfError {
    pub fn text(self) -> &'static str {
        match self {
            CsrfError::Origin => {
                "请求来源不是本系统页面 / the request did not come from a console page"
            }
            CsrfError::Cookie => {
                "缺少会话凭据，请刷新页面后重试 / the session cookie is missing; reload the page"
            }
            CsrfError::Token => {
                "表单已失效，请刷新页面后重试 / the form token is not valid; reload the page"
            }
        }
    }
}

/// Equal without an early exit on the first differing byte.
fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The host the browser addressed: `Host` on HTTP/1, the URI's authority (`:authority`) on HTTP/2.
pub fn host_of(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))
}

/// Check a form post: Origin/Referer against the host the browser addressed, the cookie, and
/// the field.
pub fn check(
    headers: &HeaderMap,
    host: Option<&str>,
    expected: &str,
    field: &str,
) -> Result<(), CsrfError> {
    let host = host.ok_or(CsrfError::Origin)?;
    let ours = format!("https://{host}");
    let origin = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    let referer = headers
        .get(axum::http::header::REFERER)
        .and_then(|v| v.to_str().ok());
    let same = match (origin, referer) {
        (Some(o), _) => o == ours,
        (None, Some(r)) => r == ours || r.starts_with(&format!("{ours}/")),
        (None, None) => false,
    };
    if !same {
        return Err(CsrfError::Origin);
    }
    let cookie = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_owned)
        })
        .next()
        .ok_or(CsrfError::Cookie)?;
    if !constant_eq(&cookie, expected) {
        return Err(CsrfError::Cookie);
    }
    if !constant_eq(field, expected) {
        return Err(CsrfError::Token);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn check_h(h: &HeaderMap, expected: &str, field: &str) -> Result<(), CsrfError> {
        check(
            h,
            host_of(h, &axum::http::Uri::from_static("/")).as_deref(),
            expected,
            field,
        )
    }

    #[test]
    fn a_post_needs_our_origin_the_cookie_and_the_field() {
        let tok = "abc123";
        let ok = |extra: &[(&'static str, &str)]| {
            let mut p = vec![
                ("host", "127.0.0.1:8443"),
                ("cookie", "x=1; jsj_csrf=abc123"),
            ];
            p.extend_from_slice(extra);
            headers(&p)
        };
        assert_eq!(
            check_h(&ok(&[("origin", "https://127.0.0.1:8443")]), tok, tok),
            Ok(())
        );
        assert_eq!(
            check_h(
                &ok(&[("referer", "https://127.0.0.1:8443/console/cases/new")]),
                tok,
                tok
            ),
            Ok(())
        );
        assert_eq!(check_h(&ok(&[]), tok, tok), Err(CsrfError::Origin));
        assert_eq!(
            check_h(&ok(&[("origin", "https://evil.example")]), tok, tok),
            Err(CsrfError::Origin)
        );
        assert_eq!(
            check_h(
                &ok(&[("referer", "https://127.0.0.1:8443.evil/")]),
                tok,
                tok
            ),
            Err(CsrfError::Origin)
        );
        assert_eq!(
            check_h(&ok(&[("origin", "https://127.0.0.1:8443")]), tok, "abc124"),
            Err(CsrfError::Token)
        );
        let no_cookie = headers(&[("host", "h"), ("origin", "https://h")]);
        assert_eq!(check_h(&no_cookie, tok, tok), Err(CsrfError::Cookie));
    }
}
