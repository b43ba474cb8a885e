//! The target check: this tool only ever sends traffic to a server on this machine.
//!
//! Load tests on this workplace may target loopback addresses only, so the base URL is checked
//! before any request is built, `localhost` is resolved and every address it resolves to must be
//! loopback too, and the HTTP client follows no redirects and uses no proxy (see `client.rs`).

use std::net::IpAddr;

use reqwest::Url;

/// A base URL that passed [`parse_loopback_base`]: `http`, a loopback host, no path, query,
/// fragment or credentials. Its string form has no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopbackBase {
    /// `http://host:port`, without a trailing slash.
    pub base: String,
    /// The host needs a name lookup (`localhost`) that must be checked with [`ensure_resolves_to_loopback`].
    pub needs_lookup: bool,
    /// `host:port` for the lookup.
    pub host_port: String,
}

/// Parses `--url` and refuses anything that is not plain `http` to a loopback host: an IPv4
/// address in 127.0.0.0/8 (127.0.0.1 in practice), `[::1]`, or the name `localhost`.
pub fn parse_loopback_base(text: &str) -> Result<LoopbackBase, String> {
    let url = Url::parse(text)
        .map_err(|error| format!("--url {text:?} is not a URL ({error}); use http://127.0.0.1:PORT"))?;
    if url.scheme() != "http" {
        return Err(format!("--url {text:?}: only http:// is supported (the server under test is on loopback)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("--url {text:?}: credentials in the URL are not supported"));
    }
    if url.query().is_some() || url.fragment().is_some() || !(url.path().is_empty() || url.path() == "/") {
        return Err(format!("--url {text:?}: give the server's base URL only, without a path, query or fragment"));
    }
    let host = url.host().ok_or_else(|| format!("--url {text:?} has no host; use http://127.0.0.1:PORT"))?;
    let needs_lookup = match host {
        url::Host::Ipv4(address) if address.is_loopback() => false,
        url::Host::Ipv6(address) if address.is_loopback() => false,
        url::Host::Domain(name) if name.eq_ignore_ascii_case("localhost") => true,
        other => {
            return Err(format!(
                "--url {text:?}: host {other} is not loopback; this tool only targets 127.0.0.1, localhost or [::1]"
            ))
        }
    };
    let port = url.port_or_known_default().ok_or_else(|| format!("--url {text:?} has no port"))?;
    let host_text = match host {
        url::Host::Ipv6(address) => format!("[{address}]"),
        url::Host::Ipv4(address) => address.to_string(),
        url::Host::Domain(name) => name.to_ascii_lowercase(),
    };
    Ok(LoopbackBase {
        base: format!("http://{host_text}:{port}"),
        needs_lookup,
        host_port: format!("{host_text}:{port}"),
    })
}

/// Resolves a named host (`localhost`) and refuses it unless every address is loopback, so a
/// hosts file that maps `localhost` elsewhere cannot send load off this machine.
pub async fn ensure_resolves_to_loopback(base: &LoopbackBase) -> Result<(), String> {
    if !base.needs_lookup {
        return Ok(());
    }
    let addresses: Vec<_> = tokio::net::lookup_host(&base.host_port)
        .await
        .map_err(|error| format!("cannot resolve {}: {error}", base.host_port))?
        .collect();
    if addresses.is_empty() {
        return Err(format!("{} resolves to no address", base.host_port));
    }
    if let Some(address) = addresses.iter().find(|address| !is_loopback(address.ip())) {
        return Err(format!(
            "{} resolves to {address}, which is not loopback; use http://127.0.0.1:PORT",
            base.host_port
        ));
    }
    Ok(())
}

fn is_loopback(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(address) => address.is_loopback(),
        IpAddr::V6(address) => address.is_loopback() || address.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_hosts() {
        let base = parse_loopback_base("http://127.0.0.1:18090").expect("loopback");
        assert_eq!(base.base, "http://127.0.0.1:18090");
        assert!(!base.needs_lookup);
        assert_eq!(parse_loopback_base("http://127.0.0.1:18090/").expect("slash").base, "http://127.0.0.1:18090");
        let named = parse_loopback_base("http://LocalHost:8080").expect("localhost");
        assert_eq!(named.base, "http://localhost:8080");
        assert!(named.needs_lookup);
        assert_eq!(parse_loopback_base("http://[::1]:9000").expect("v6").base, "http://[::1]:9000");
        assert_eq!(parse_loopback_base("http://127.0.0.1").expect("default port").base, "http://127.0.0.1:80");
    }

    #[test]
    fn refuses_everything_else() {
        for url in [
            "http://10.0.0.5:8080",
            "http://192.168.1.2:8080",
            "http://172.16.0.1",
            "http://8.8.8.8",
            "http://0.0.0.0:8080",
            "http://example.com",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "http://[::ffff:10.0.0.1]:80",
            "http://[fe80::1]:80",
            "https://127.0.0.1:8443",
            "http://user:pw@127.0.0.1:8080",
            "http://127.0.0.1:8080/v1",
            "http://127.0.0.1:8080/?a=b",
            "127.0.0.1:8080",
            "not a url",
        ] {
            assert!(parse_loopback_base(url).is_err(), "{url} must be refused");
        }
    }
}
