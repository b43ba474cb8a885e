//! The city console and merchant portal at `/console/`: plain files (HTML, CSS, ES modules, no
//! build step) built into the binary, so the server works without internet and what is served
//! is exactly what is in git (`wallet-server/console/`).
//!
//! The page talks to the API like any other client: it keeps the session token in
//! `sessionStorage` and sends it as `Authorization`; no cookie is ever set, so there is nothing
//! for a cross-site request to ride on.
//!
//! Serving must stay cheap, because these requests skip the admission gate (the route table
//! marks `/console/` exempt: a page must load for the city while the server sheds reads, and it
//! must never push a POS payment out). So each file is held in memory as is and gzipped once, on
//! first use, with its ETag; a request is a lookup and a copy of bytes, and a reload is a 304.
//! The pages' API calls are the API's own requests and take their turn there.

use std::io::Write;
use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

/// Where the console lives: every path under it is a console file (or a 404 of one).
pub const PREFIX: &str = "/console";
/// The actix pattern of the console's files; also the `route` label of their request metrics.
pub const FILE_PATTERN: &str = "/console/{file:.*}";

/// The console's own Content-Security-Policy: scripts, styles, images and API calls from this
/// origin only; no inline script or style, no plugins, no framing, no `<base>` rewriting, forms
/// posting nowhere else. (The API's answers keep the stricter `default-src 'none'`.)
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// One file of the console as built into the binary.
struct ConsoleFile {
    /// The path under `/console/`, e.g. `pages/overview.js`.
    name: &'static str,
    bytes: &'static [u8],
}

/// The console's files, each named once: `console_files!["index.html", …]`. A test checks this
/// list against the `console/` directory, both ways, so a file added there is not forgotten here.
macro_rules! console_files {
    ($($name:literal),* $(,)?) => {
        [$(ConsoleFile {
            name: $name,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $name)),
        }),*]
    };
}

static FILES: [ConsoleFile; 23] = console_files![
    "index.html",
    "style.css",
    "icon.svg",
    "app.js",
    "api.js",
    "dom.js",
    "form.js",
    "format.js",
    "i18n.js",
    "chart.js",
    "grant-file.js",
    "pages/overview.js",
    "pages/policy.js",
    "pages/merchants.js",
    "pages/citizens.js",
    "pages/list.js",
    "pages/settlements.js",
    "pages/programs.js",
    "pages/audit.js",
    "pages/handover.js",
    "pages/account.js",
    "pages/sales.js",
    "pages/payouts.js",
];

/// A file ready to serve: its bytes, their gzip form when that is smaller, and its ETag.
struct Served {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    gzipped: Option<Vec<u8>>,
    etag: String,
}

/// Every file prepared once, on the first console request (gzip at level 9: a few milliseconds,
/// once per process).
static SERVED: LazyLock<Vec<Served>> = LazyLock::new(|| FILES.iter().map(prepare).collect());

fn prepare(file: &ConsoleFile) -> Served {
    let digest = Sha256::digest(file.bytes);
    let etag = format!("\"{}\"", hex::encode(&digest[..12]));
    Served {
        name: file.name,
        content_type: content_type_of(file.name),
        bytes: file.bytes,
        gzipped: gzip(file.bytes).filter(|gzipped| gzipped.len() < file.bytes.len()),
        etag,
    }
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 3), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

/// The media type of a console file, from its extension (every file's is known: a test checks).
fn content_type_of(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// Whether a request path is the console's (the admission gate lets these through: see the
/// module doc).
pub fn is_console_path(path: &str) -> bool {
    path == PREFIX || path.starts_with("/console/")
}

/// Registers `/console` (a redirect to `/console/`) and the files under it, `GET` only (actix
/// would answer a `HEAD` with `Content-Length: 0`, which is not the file's).
pub fn register(config: &mut web::ServiceConfig) {
    config
        .service(web::resource(PREFIX).route(web::get().to(redirect_to_index)).default_service(web::to(not_allowed)))
        .service(web::resource(FILE_PATTERN).route(web::get().to(serve)).default_service(web::to(not_allowed)));
}

/// `/console` has relative links beneath it only with the slash.
async fn redirect_to_index() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "/console/")).finish()
}

async fn not_allowed(request: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    let message = format!("{} {} is not served; the console's files take GET", request.method(), request.path());
    let mut response =
        crate::api::ApiError::new(405, crate::api::ErrorCode::MethodNotAllowed, message).error_response();
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
    response
}

/// One console file: gzipped when the client takes it, 304 when its ETag is the client's.
async fn serve(request: HttpRequest, file: web::Path<String>) -> HttpResponse {
    let name = if file.is_empty() { "index.html" } else { file.as_str() };
    let Some(served) = SERVED.iter().find(|served| served.name == name) else {
        let mut response = HttpResponse::NotFound();
        console_headers(&mut response);
        return response.content_type("text/plain; charset=utf-8").body("no such console file\n");
    };
    let mut response = HttpResponse::build(StatusCode::OK);
    console_headers(&mut response);
    response.insert_header((header::ETAG, served.etag.as_str())).insert_header((header::VARY, "Accept-Encoding"));
    if if_none_match(&request, &served.etag) {
        return response.status(StatusCode::NOT_MODIFIED).finish();
    }
    response.insert_header((header::CONTENT_TYPE, served.content_type));
    let body: &[u8] = match &served.gzipped {
        Some(gzipped) if accepts_gzip(&request) => {
            response.insert_header((header::CONTENT_ENCODING, "gzip"));
            gzipped
        }
        _ => served.bytes,
    };
    response.body(body.to_vec())
}

/// The console's headers; the app-wide security headers add the rest (`nosniff`, `DENY`,
/// `no-referrer`) and leave these alone.
fn console_headers(response: &mut actix_web::HttpResponseBuilder) {
    response
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        // Stored, but asked again each time: a new server version is picked up at once, and an
        // unchanged file costs a 304.
        .insert_header((header::CACHE_CONTROL, "no-cache"));
}

fn if_none_match(request: &HttpRequest, etag: &str) -> bool {
    request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == etag || tag.trim() == "*")
}

/// Whether `Accept-Encoding` takes gzip (with no `q=0` on it).
fn accepts_gzip(request: &HttpRequest) -> bool {
    request
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|parameter| {
                parameter.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q == 0.0))
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    fn files_on_disk(root: &Path, under: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(under).expect("the console directory is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                files_on_disk(root, &path, found);
            } else {
                let name = path.strip_prefix(root).expect("under the root").to_string_lossy().replace('\\', "/");
                found.insert(name);
            }
        }
    }

    #[test]
    fn every_file_of_the_console_directory_is_built_in_and_nothing_else() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk = BTreeSet::new();
        files_on_disk(&root, &root, &mut on_disk);
        let built_in: BTreeSet<String> = FILES.iter().map(|file| file.name.to_owned()).collect();
        assert_eq!(built_in.len(), FILES.len(), "a file is listed twice");
        assert_eq!(on_disk, built_in, "console/ and the FILES list differ: add the file to console_files!");
    }

    #[test]
    fn every_file_has_a_known_type_and_a_distinct_etag() {
        let mut etags = BTreeSet::new();
        for served in SERVED.iter() {
            assert_ne!(served.content_type, "application/octet-stream", "{}: add its extension", served.name);
            assert!(etags.insert(served.etag.clone()), "{}: two files with one ETag", served.name);
        }
    }

    #[test]
    fn the_gzipped_form_inflates_to_the_file() {
        use std::io::Read;
        let index = SERVED.iter().find(|served| served.name == "app.js").expect("app.js");
        let gzipped = index.gzipped.as_ref().expect("a script compresses");
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(&gzipped[..]).read_to_end(&mut inflated).expect("valid gzip");
        assert_eq!(inflated, index.bytes);
    }

    #[test]
    fn no_file_has_an_inline_script_or_style_the_policy_would_block() {
        for file in &FILES {
            let text = std::str::from_utf8(file.bytes).expect("the console's files are UTF-8");
            if file.name.ends_with(".html") {
                assert!(!text.contains("<script>") && !text.contains("<style"), "{}", file.name);
                assert!(!text.contains(" style="), "{}: inline style attribute", file.name);
                assert!(!has_event_attribute(text), "{}: inline event handler attribute", file.name);
            }
            if file.name.ends_with(".js") {
                for forbidden in
                    ["innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", "document.write"]
                {
                    assert!(!text.contains(forbidden), "{}: {forbidden} (build nodes with dom.js)", file.name);
                }
            }
        }
    }

    /// Whether HTML text has an attribute like ` onclick=`.
    fn has_event_attribute(text: &str) -> bool {
        text.match_indices(" on").any(|(at, _)| {
            let rest = &text[at + 3..];
            let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            letters > 0 && rest[letters..].starts_with('=')
        })
    }

    #[test]
    fn only_console_paths_are_console_paths() {
        for path in ["/console", "/console/", "/console/app.js", "/console/pages/x.js"] {
            assert!(is_console_path(path), "{path}");
        }
        for path in ["/consoles", "/consolex/a", "/v1/console", "/", "/healthz"] {
            assert!(!is_console_path(path), "{path}");
        }
    }
}
