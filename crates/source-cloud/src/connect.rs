//! `healthanalyzer connect`: the OAuth2 authorisation-code flow with PKCE and a loopback
//! redirect (RFC 8252 §7.3).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use reqwest::{Client, Url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Error;
use crate::oauth::{OAuthApp, Pkce, TokenFailure, random_text};
use crate::token::{Grant, GrantKey, TokenStore};

/// How long `connect` waits for the browser to come back: 10 minutes.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(600);

/// The largest request head the loopback listener reads.
const MAX_HEAD: usize = 16 * 1024;

/// Runs the authorisation of one citizen and keeps the grant in `store` under `key`.
///
/// 1. Listens on the loopback address of `app.redirect_uri` (`http://127.0.0.1:8765/callback`;
///    port 0 takes a free port, for vendors that accept any loopback port, and the redirect
///    URI sent says which).
/// 2. Hands the authorisation URL to `announce` (print it: the citizen, or staff with them,
///    opens it in a browser and logs in at the vendor).
/// 3. Waits for the browser's redirect with the code and the same `state`; anything else at
///    the address (a favicon request, a wrong `state`) is answered and ignored. A refusal at
///    the vendor (`error=access_denied`) ends the flow with an error that says so.
/// 4. Exchanges the code with the PKCE verifier, saves the grant, and tells the browser it
///    may close the window.
///
/// # Errors
/// [`Error::Authorization`] for a refusal, a timeout or a redirect URI that is not a loopback
/// address; the token endpoint's and the store's errors.
pub async fn connect(
    app: &OAuthApp,
    http: &Client,
    store: &dyn TokenStore,
    key: &GrantKey,
    timeout: Duration,
    announce: impl FnOnce(&Url),
) -> Result<Grant, Error> {
    let (listener, app) = listen(app).await?;
    let pkce = Pkce::new()?;
    let state = random_text(16)?;
    announce(&app.authorization_url(&state, &pkce));
    let code = tokio::time::timeout(timeout, wait_for_code(&listener, &app, &state))
        .await
        .map_err(|_| {
            Error::Authorization(format!(
                "no answer from the browser within {} s; run connect again",
                timeout.as_secs()
            ))
        })??;
    let (code, stream) = code;
    let grant = match app.exchange(http, &code, &pkce).await {
        Ok(g) => g,
        Err(e) => {
            page(
                stream,
                502,
                "The authorisation could not be completed: see the terminal.",
            )
            .await;
            return Err(match e {
                TokenFailure::Refused => Error::Authorization(format!(
                    "{} refused the authorisation code (it may have expired): run connect again",
                    app.vendor
                )),
                TokenFailure::Failed(e) => e,
            });
        }
    };
    store.save(key, &grant)?;
    page(
        stream,
        200,
        "Connected. You can close this window and return to the terminal.",
    )
    .await;
    Ok(grant)
}

/// Whether `uri` is a loopback address `connect` can listen on.
pub fn is_loopback(uri: &Url) -> bool {
    loopback_ip(uri).is_some() && uri.scheme() == "http"
}

fn loopback_ip(uri: &Url) -> Option<IpAddr> {
    match uri.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback().then_some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback().then_some(IpAddr::V6(ip)),
        Some(url::Host::Domain("localhost")) => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        _ => None,
    }
}

/// The authorisation for a vendor that does not accept a loopback redirect URI (Withings
/// accepts neither `localhost` nor IP addresses): the redirect URI is a page of yours (it
/// need not exist), and the citizen's browser ends there with the code in its address.
///
/// Hands the authorisation URL to `announce`, then reads the address the browser ended on
/// with `answer` (the command line reads a line the user pastes), checks its `state`,
/// exchanges the code with the PKCE verifier and saves the grant. Some vendors' codes expire
/// within 30 seconds: paste promptly.
///
/// # Errors
/// [`Error::Authorization`] for an answer that is not one (no code, another `state`, a
/// refusal), the token endpoint's and the store's errors.
pub async fn connect_pasted(
    app: &OAuthApp,
    http: &Client,
    store: &dyn TokenStore,
    key: &GrantKey,
    announce: impl FnOnce(&Url),
    answer: impl FnOnce() -> std::io::Result<String>,
) -> Result<Grant, Error> {
    let pkce = Pkce::new()?;
    let state = random_text(16)?;
    announce(&app.authorization_url(&state, &pkce));
    let pasted =
        answer().map_err(|e| Error::Authorization(format!("reading the address pasted: {e}")))?;
    let url = app
        .redirect_uri
        .join(pasted.trim())
        .ok()
        .filter(|u| u.query().is_some())
        .ok_or_else(|| {
            Error::Authorization(
                "what was pasted is not the address the browser ended on (it has `code=` and `state=` in it)"
                    .into(),
            )
        })?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if param("state").as_deref() != Some(state.as_str()) {
        return Err(Error::Authorization(
            "the pasted address is not the answer to this authorisation (its state differs): run connect again"
                .into(),
        ));
    }
    if let Some(error) = param("error") {
        return Err(refused(app, &error));
    }
    let code = param("code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::Authorization("the pasted address has no code".into()))?;
    let grant = app
        .exchange(http, &code, &pkce)
        .await
        .map_err(|e| exchange_failed(app, e))?;
    store.save(key, &grant)?;
    Ok(grant)
}

fn refused(app: &OAuthApp, error: &str) -> Error {
    let error: String = error
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect();
    Error::Authorization(format!(
        "{} answered {error}: the citizen refused, or the app registration does not allow what was asked",
        app.vendor
    ))
}

fn exchange_failed(app: &OAuthApp, e: TokenFailure) -> Error {
    match e {
        TokenFailure::Refused => Error::Authorization(format!(
            "{} refused the authorisation code (it may have expired): run connect again",
            app.vendor
        )),
        TokenFailure::Failed(e) => e,
    }
}

/// Binds the redirect URI's loopback address; with port 0, the app with the port taken.
async fn listen(app: &OAuthApp) -> Result<(TcpListener, OAuthApp), Error> {
    let uri = &app.redirect_uri;
    let (Some(ip), "http") = (loopback_ip(uri), uri.scheme()) else {
        return Err(Error::Authorization(format!(
            "the redirect URI {uri} is not a loopback address (http://127.0.0.1:PORT/…): connect_pasted takes the answer from the browser's address bar instead"
        )));
    };
    let port = uri.port().unwrap_or(80);
    let listener = TcpListener::bind(SocketAddr::new(ip, port))
        .await
        .map_err(|e| {
            Error::Authorization(format!(
                "cannot listen on {ip}:{port} for the redirect ({e}): is another connect running?"
            ))
        })?;
    let mut app = app.clone();
    if port == 0 {
        let taken = listener
            .local_addr()
            .map_err(|e| Error::Authorization(format!("the loopback listener: {e}")))?
            .port();
        let _ = app.redirect_uri.set_port(Some(taken));
    }
    Ok((listener, app))
}

/// The first redirect to the callback path with our `state`: its code and the connection to
/// answer on.
async fn wait_for_code(
    listener: &TcpListener,
    app: &OAuthApp,
    state: &str,
) -> Result<(String, TcpStream), Error> {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let Some(target) = read_target(&mut stream).await else {
            page(stream, 400, "Not an HTTP request.").await;
            continue;
        };
        let Ok(url) = app.redirect_uri.join(&target) else {
            page(stream, 400, "Not a URL.").await;
            continue;
        };
        if url.path() != app.redirect_uri.path() {
            page(stream, 404, "Not here.").await;
            continue;
        }
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if param("state").as_deref() != Some(state) {
            page(
                stream,
                400,
                "This answer is not for the authorisation that is running.",
            )
            .await;
            continue;
        }
        if let Some(error) = param("error") {
            page(
                stream,
                200,
                "The authorisation was refused. You can close this window.",
            )
            .await;
            let error: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(40)
                .collect();
            return Err(Error::Authorization(format!(
                "{} answered {error}: the citizen refused, or the app registration does not allow what was asked",
                app.vendor
            )));
        }
        match param("code") {
            Some(code) if !code.is_empty() => return Ok((code, stream)),
            _ => page(stream, 400, "The answer has no code.").await,
        }
    }
}

/// The request target of an HTTP/1 request head (`/callback?code=…`), or `None`.
async fn read_target(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Some(())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()??;
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split(' ');
    let (Some("GET"), Some(target)) = (parts.next(), parts.next()) else {
        return None;
    };
    Some(target.to_string())
}

/// Answers with a short HTML page and closes the connection.
async fn page(mut stream: TcpStream, status: u16, text: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Bad Gateway",
    };
    let body =
        format!("<!doctype html><meta charset=utf-8><title>Health Analyzer</title><p>{text}</p>\n");
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\ncache-control: no-store\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
