//! The local HTTP server of the review page (docs/review.md): the page, each case's volume layout,
//! slices, node state, and edits. Every request needs the access token; cases are found by id in
//! the list given at start, never by a path taken from the request; one case is held in memory at
//! a time (a cohort is opened case by case).
use crate::case::{Case, CaseFolder};
use crate::edit::Edit;
use crate::frame::View;
use crate::ReviewError;
use serde::Serialize;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tiny_http::{Header, Method, Request, Response};

/// The page, embedded in the binary.
const PAGE: &str = include_str!("page.html");
/// Largest request body, bytes.
const MAX_BODY_BYTES: u64 = 4 << 20;
/// Worker threads: three views fetch slices at once while an edit is saved.
const WORKERS: usize = 4;

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// `host:port`; port 0 picks a free one.
    pub bind: String,
    /// Allow a non-loopback address.
    pub allow_remote: bool,
    /// Recorded with every edit.
    pub reviewer: String,
    /// The CT of a single case, instead of the one its records name.
    pub ct: Option<PathBuf>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            bind: "127.0.0.1:0".into(),
            allow_remote: false,
            reviewer: "reviewer".into(),
            ct: None,
        }
    }
}

/// The state every worker shares.
struct App {
    cases: Vec<CaseFolder>,
    /// The case in memory; edits and reads of it are serialised (edits are short and saved
    /// before the answer, so a reader never sees a state that is not on disk).
    current: Mutex<Option<Case>>,
    token: String,
    opts: ServeOptions,
    /// The page's Content-Security-Policy: its one script by hash, nothing from elsewhere.
    csp: String,
}

/// A started server.
pub struct Server {
    http: Arc<tiny_http::Server>,
    app: Arc<App>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

/// A fresh access token: 128 random bits, hex.
fn new_token() -> Result<String, ReviewError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| ReviewError::Bind { addr: String::new(), reason: format!("no random token: {e}") })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The page's Content-Security-Policy. Its inline script is allowed by its sha256 alone, so no
/// other script (an injected one, an inline event handler) would run; it reaches only this server.
fn page_csp() -> String {
    use base64::Engine;
    use sha2::Digest;
    let script =
        PAGE.split_once("<script>").and_then(|(_, rest)| rest.split_once("</script>")).map_or("", |(s, _)| s);
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script.as_bytes()));
    format!(
        "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; img-src 'self' data: blob:; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// Compares without an early exit, so the time taken says nothing of how much of a guess matched.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A listening socket on `addr` whose connections send small writes at once (TCP_NODELAY):
/// the page asks for three slices at a time, and Nagle's algorithm with delayed acknowledgements
/// held some answers back by 40 ms.
fn listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}

/// Starts serving `cases` (nothing is read until the page asks for a case).
pub fn serve(cases: Vec<CaseFolder>, opts: ServeOptions) -> Result<Server, ReviewError> {
    let bind_err = |reason: String| ReviewError::Bind { addr: opts.bind.clone(), reason };
    let addr = opts
        .bind
        .to_socket_addrs()
        .map_err(|e| bind_err(e.to_string()))?
        .next()
        .ok_or_else(|| bind_err("no such address".into()))?;
    if !addr.ip().is_loopback() && !opts.allow_remote {
        return Err(bind_err(
            "not a loopback address: the page shows patient images and edits files; add --allow-remote to serve \
             other machines"
                .into(),
        ));
    }
    let http = tiny_http::Server::from_listener(listener(addr).map_err(|e| bind_err(e.to_string()))?, None)
        .map_err(|e| bind_err(e.to_string()))?;
    let addr = http.server_addr().to_ip().ok_or_else(|| bind_err("not an IP address".into()))?;
    let app = App { cases, current: Mutex::new(None), token: new_token()?, opts, csp: page_csp() };
    Ok(Server { http: Arc::new(http), app: Arc::new(app), addr })
}

impl Server {
    /// The page's address with the token.
    pub fn url(&self) -> String {
        let host = match self.addr.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        format!("http://{host}:{}/?token={}", self.addr.port(), self.app.token)
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers requests until the process ends.
    pub fn run(&self) {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (http, app) = (Arc::clone(&self.http), Arc::clone(&self.app));
                std::thread::spawn(move || {
                    while let Ok(req) = http.recv() {
                        app.handle(req);
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
    }

    /// Stops answering: [`Server::run`] returns.
    pub fn stop(&self) {
        self.http.unblock();
        for _ in 1..WORKERS {
            self.http.unblock();
        }
    }
}

/// An answer: status, content type, body.
struct Answer {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Answer {
    fn json(status: u16, value: &impl Serialize) -> Answer {
        let body =
            serde_json::to_vec(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes());
        Answer { status, content_type: "application/json", body }
    }

    fn error(status: u16, msg: impl std::fmt::Display) -> Answer {
        #[derive(Serialize)]
        struct E {
            error: String,
        }
        Answer::json(status, &E { error: msg.to_string() })
    }
}

/// Percent-decoding of one path segment or query value (no `+` for space: the page never sends it).
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

impl App {
    fn handle(&self, mut req: Request) {
        // Compressing costs more than sending on this machine; worth it across a network.
        let remote = req.remote_addr().is_some_and(|a| !a.ip().is_loopback());
        let gzip = remote && header(&req, "Accept-Encoding").is_some_and(|v| v.contains("gzip"));
        let answer = self.route(&mut req);
        let mut body = answer.body;
        let mut headers = vec![
            ("Content-Type", answer.content_type),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            // The token is in the page's address: never send it on.
            ("Referrer-Policy", "no-referrer"),
        ];
        if answer.content_type == "text/html; charset=utf-8" {
            headers.push(("Content-Security-Policy", &self.csp));
        }
        if gzip && body.len() > 1024 {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 2),
                flate2::Compression::fast(),
            );
            if enc.write_all(&body).is_ok() {
                if let Ok(z) = enc.finish() {
                    body = z;
                    headers.push(("Content-Encoding", "gzip"));
                }
            }
        }
        let mut response = Response::from_data(body).with_status_code(answer.status);
        for (k, v) in headers {
            if let Ok(h) = Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                response.add_header(h);
            }
        }
        // The page may have gone away; nothing to do about it.
        let _ = req.respond(response);
    }

    fn route(&self, req: &mut Request) -> Answer {
        let url = req.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let params: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                Some((decode(k)?, decode(v)?))
            })
            .collect();
        let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let token = header(req, "X-Nodal-Token").or_else(|| param("token"));
        if !token.is_some_and(|t| same_token(t, &self.token)) {
            return Answer::error(
                401,
                "the access token is missing or wrong: open the address nodal review printed",
            );
        }
        let segments: Option<Vec<String>> = path.split('/').filter(|s| !s.is_empty()).map(decode).collect();
        let Some(segments) = segments else {
            return Answer::error(400, "the path is not valid percent-encoded UTF-8");
        };
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = req.method().clone();
        match (&method, segs.as_slice()) {
            (Method::Get, []) => Answer {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: PAGE.as_bytes().to_vec(),
            },
            (Method::Get, ["api", "cases"]) => self.list(),
            (Method::Get, ["api", "cases", id, what]) => {
                let what = *what;
                self.with_case(id, |case| match what {
                    "volume" => Ok(Answer::json(200, &case.volume_view())),
                    "nodes" => Ok(Answer::json(200, &case.state())),
                    "slice" => {
                        let view = param("view")
                            .and_then(View::parse)
                            .ok_or_else(|| ReviewError::BadEdit("view: axial, coronal or sagittal".into()))?;
                        let index = param("index")
                            .and_then(|s| s.parse::<usize>().ok())
                            .ok_or_else(|| ReviewError::BadEdit("index: a slice number".into()))?;
                        let body = case.slice(view, index)?;
                        Ok(Answer { status: 200, content_type: "application/octet-stream", body })
                    }
                    _ => Ok(Answer::error(404, "no such resource")),
                })
            }
            (Method::Post, ["api", "cases", id, "edit"]) => {
                let mut body = Vec::new();
                let read = req.as_reader().take(MAX_BODY_BYTES + 1).read_to_end(&mut body);
                if let Err(e) = read {
                    return Answer::error(400, format!("reading the request: {e}"));
                }
                if body.len() as u64 > MAX_BODY_BYTES {
                    return Answer::error(413, format!("an edit is at most {MAX_BODY_BYTES} bytes"));
                }
                let edit: Edit = match serde_json::from_slice(&body) {
                    Ok(e) => e,
                    Err(e) => return Answer::error(400, format!("not an edit: {e}")),
                };
                let reviewer = self.opts.reviewer.clone();
                self.with_case(id, |case| {
                    case.apply(&edit, &reviewer)?;
                    Ok(Answer::json(200, &case.state()))
                })
            }
            _ => Answer::error(404, "no such resource"),
        }
    }

    fn list(&self) -> Answer {
        #[derive(Serialize)]
        struct Item<'a> {
            case_id: &'a str,
            /// From the folder's nodes.json (null when it cannot be read).
            n_nodes: Option<usize>,
            reviewed: bool,
        }
        #[derive(Serialize)]
        struct List<'a> {
            cases: Vec<Item<'a>>,
            reviewer: &'a str,
        }
        let cases = self
            .cases
            .iter()
            .map(|c| Item { case_id: &c.case_id, n_nodes: c.n_nodes(), reviewed: c.is_reviewed() })
            .collect();
        Answer::json(200, &List { cases, reviewer: &self.opts.reviewer })
    }

    /// Runs `f` on case `id`, opening it first when another case is in memory.
    fn with_case(&self, id: &str, f: impl FnOnce(&mut Case) -> Result<Answer, ReviewError>) -> Answer {
        let Some(folder) = self.cases.iter().find(|c| c.case_id == id) else {
            return Answer::error(404, "no such case");
        };
        let mut current = match self.current.lock() {
            Ok(c) => c,
            // A worker panicked while holding the case: drop it and read it again from disk.
            Err(poisoned) => {
                let mut c = poisoned.into_inner();
                *c = None;
                c
            }
        };
        if current.as_ref().is_none_or(|c| c.folder.case_id != id) {
            *current = None;
            let ct = if self.cases.len() == 1 { self.opts.ct.as_deref() } else { None };
            match Case::open(folder, ct) {
                Ok(c) => *current = Some(c),
                Err(e) => {
                    tracing::error!("{}: {e}", folder.folder.display());
                    return Answer::error(500, format!("opening case {id}: {e}"));
                }
            }
        }
        let Some(case) = current.as_mut() else { return Answer::error(500, "no case") };
        match f(case) {
            Ok(a) => a,
            Err(e @ ReviewError::BadEdit(_)) => Answer::error(400, e),
            Err(e) => {
                tracing::error!("{}: {e}", folder.folder.display());
                // What is in memory may be ahead of the files: read the case again next time.
                *current = None;
                Answer::error(500, e)
            }
        }
    }
}
