//! The lab's long-lived servers (`observer lab serve`, run by the lab in
//! its `back`, `pub` and `onprem` namespaces for the lab's whole life):
//! every TCP port accepts; a request that looks like HTTP gets a small
//! `200 OK` naming the endpoint (so `curl` and HTTP client libraries
//! succeed), anything else gets one line naming it; UDP datagrams are
//! echoed. The process prints `ready` once every socket is bound and dies
//! with the lab (parent-death signal, or `lab down`).
//!
//! The public address of a resource whose public network access is
//! disabled ([`Refusal`], `--refuse ADDR=KIND`) answers every TCP request
//! as Azure's front end does: `403 Forbidden` with the service's error
//! body (Key Vault: `ForbiddenByConnection`).

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use thiserror::Error;

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes of a request read before answering.
const MAX_REQUEST: usize = 16 * 1024;

#[derive(Debug, Error)]
pub(crate) enum ServeError {
    #[error("cannot listen on {protocol}/{port}")]
    Bind {
        protocol: &'static str,
        port: u16,
        source: std::io::Error,
    },
}

/// What one server process answers.
#[derive(Clone, Debug)]
pub(crate) struct ServeConfig {
    /// The address to listen on (the lab: every address of the namespace).
    pub bind: Ipv4Addr,
    pub tcp: Vec<u16>,
    pub udp: Vec<u16>,
    /// The endpoint name of each local address (used in answers).
    pub names: BTreeMap<IpAddr, String>,
    /// Local addresses whose resource has public network access disabled.
    pub refused: BTreeMap<IpAddr, Refusal>,
}

/// The service behind a public address that refuses requests because its
/// public network access is disabled; each answers with its own 403 body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::Display, strum::EnumString)]
#[strum(serialize_all = "kebab-case")]
pub(crate) enum Refusal {
    /// Key Vault: `403 Forbidden`, inner error `ForbiddenByConnection`
    /// (learn.microsoft.com, "Troubleshoot Azure Key Vault private links").
    KeyVault,
    /// Cognitive Services / Azure OpenAI: `403`, code `AccessDenied`, "Public access is
    /// disabled. Please configure private endpoint."
    CognitiveServices,
    /// Any other resource: a plain `403 Forbidden`.
    Other,
}

impl Refusal {
    /// The service of a private endpoint's name
    /// (`contoso-kv.vault.azure.net`: Key Vault).
    pub(crate) fn for_fqdn(fqdn: &str) -> Self {
        let fqdn = fqdn.trim_end_matches('.').to_ascii_lowercase();
        if fqdn.contains(".vault.") || fqdn.contains(".vaultcore.") {
            Self::KeyVault
        } else if fqdn.contains(".cognitiveservices.") || fqdn.contains(".openai.") {
            Self::CognitiveServices
        } else {
            Self::Other
        }
    }

    /// The JSON error body Azure sends.
    fn body(self) -> &'static str {
        match self {
            Self::KeyVault => {
                r#"{"error":{"code":"Forbidden","message":"Connection is not an approved private link and caller was ignored because bypass is not set to 'AzureServices' and PublicNetworkAccess is set to 'Disabled'.","innererror":{"code":"ForbiddenByConnection"}}}"#
            }
            Self::CognitiveServices => {
                r#"{"error":{"code":"AccessDenied","message":"Public access is disabled. Please configure private endpoint."}}"#
            }
            Self::Other => {
                r#"{"error":{"code":"Forbidden","message":"Public network access is disabled."}}"#
            }
        }
    }

    /// The whole answer: `403 Forbidden` with the body, to any request
    /// (a client that does not speak HTTP gets it too, and sees it refused).
    pub(crate) fn response(self, request: &[u8]) -> Vec<u8> {
        let body = self.body();
        let head = format!(
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nServer: observer-lab\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let mut out = head.into_bytes();
        if !request.starts_with(b"HEAD ") {
            out.extend_from_slice(body.as_bytes());
        }
        out
    }
}

/// Binds every socket, then calls `ready`, then serves until the process
/// is killed.
pub(crate) fn serve(config: &ServeConfig, ready: impl FnOnce()) -> Result<(), ServeError> {
    let names = Arc::new(config.names.clone());
    let refused = Arc::new(config.refused.clone());
    let mut listeners = Vec::new();
    for &port in &config.tcp {
        let listener =
            TcpListener::bind(SocketAddr::from((config.bind, port))).map_err(|source| {
                ServeError::Bind {
                    protocol: "tcp",
                    port,
                    source,
                }
            })?;
        listeners.push(listener);
    }
    // UDP answers must leave from the address the client sent to (NAT on
    // the way back matches it), so one socket per named address.
    let mut udp_addrs: Vec<IpAddr> = config.names.keys().copied().collect();
    if udp_addrs.is_empty() {
        udp_addrs.push(IpAddr::V4(config.bind));
    }
    let mut sockets = Vec::new();
    for &port in &config.udp {
        for &addr in &udp_addrs {
            let socket = UdpSocket::bind(SocketAddr::new(addr, port)).map_err(|source| {
                ServeError::Bind {
                    protocol: "udp",
                    port,
                    source,
                }
            })?;
            sockets.push(socket);
        }
    }
    ready();
    let busy = Arc::new(AtomicUsize::new(0));
    for listener in listeners {
        let names = names.clone();
        let refused = refused.clone();
        let busy = busy.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if busy.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    answer(stream, &names, &refused);
                    busy.fetch_sub(1, Ordering::AcqRel);
                    continue;
                }
                let names = names.clone();
                let refused = refused.clone();
                let busy = busy.clone();
                std::thread::spawn(move || {
                    answer(stream, &names, &refused);
                    busy.fetch_sub(1, Ordering::AcqRel);
                });
            }
        });
    }
    for socket in sockets {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&buf[..n], from);
                }
            }
        });
    }
    loop {
        std::thread::park();
    }
}

/// The name an answer gives for `local` (the address the client reached).
fn name_of(names: &BTreeMap<IpAddr, String>, local: SocketAddr) -> String {
    let name = names
        .get(&local.ip())
        .map_or("observer lab host", String::as_str);
    format!("{name} ({local})")
}

/// Whether `request` starts like an HTTP/1.x request line.
fn is_http(request: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"HEAD ",
        b"POST ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    METHODS.iter().any(|m| request.starts_with(m))
}

/// The bytes sent back for `request` received at `name`.
pub(crate) fn response(request: &[u8], name: &str) -> Vec<u8> {
    if !is_http(request) {
        return format!("observer-lab: {name}\n").into_bytes();
    }
    let body = format!("observer lab: {name}\n");
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nServer: observer-lab\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut out = head.into_bytes();
    if !request.starts_with(b"HEAD ") {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

fn answer(
    mut stream: TcpStream,
    names: &BTreeMap<IpAddr, String>,
    refused: &BTreeMap<IpAddr, Refusal>,
) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let refusal = stream
        .local_addr()
        .ok()
        .and_then(|l| refused.get(&l.ip()).copied());
    let name = stream
        .local_addr()
        .map_or_else(|_| "observer lab host".into(), |l| name_of(names, l));
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    // Read the request head (HTTP), or the first chunk of anything else.
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                request.extend_from_slice(&buf[..n]);
                if !is_http(&request)
                    || request.windows(4).any(|w| w == b"\r\n\r\n")
                    || request.len() >= MAX_REQUEST
                {
                    break;
                }
            }
        }
    }
    if request.is_empty() {
        return;
    }
    let reply = match refusal {
        Some(r) => r.response(&request),
        None => response(&request, &name),
    };
    let _ = stream.write_all(&reply);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Let the client read the answer before the close (no RST on unread data).
    let _ = stream.read(&mut buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_gets_a_200_naming_the_endpoint_anything_else_a_line() {
        let r =
            String::from_utf8(response(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "keyvault")).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\nobserver lab: keyvault\n"), "{r}");
        assert!(r.contains("Content-Length: 23\r\n"), "{r}");
        let r = response(b"HEAD / HTTP/1.1\r\n\r\n", "k");
        assert!(String::from_utf8(r).unwrap().ends_with("\r\n\r\n"));
        assert_eq!(response(b"hello\n", "sql"), b"observer-lab: sql\n");
    }

    #[test]
    fn serves_tcp_and_udp_on_loopback() {
        // Free ports picked by the kernel, then served.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let uport = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = ServeConfig {
            bind: Ipv4Addr::LOCALHOST,
            tcp: vec![port],
            udp: vec![uport],
            names: [("127.0.0.1".parse().unwrap(), "loop".to_string())].into(),
            refused: BTreeMap::new(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || serve(&config, move || tx.send(()).unwrap()));
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(
            reply.contains(&format!("observer lab: loop (127.0.0.1:{port})")),
            "{reply}"
        );
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        u.send_to(b"ping", ("127.0.0.1", uport)).unwrap();
        let mut buf = [0u8; 8];
        let (n, _) = u.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
    }

    #[test]
    fn a_refusing_address_answers_403_on_the_wire() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = ServeConfig {
            bind: Ipv4Addr::LOCALHOST,
            tcp: vec![port],
            udp: vec![],
            names: [("127.0.0.1".parse().unwrap(), "kv".to_string())].into(),
            refused: [("127.0.0.1".parse().unwrap(), Refusal::KeyVault)].into(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || serve(&config, move || tx.send(()).unwrap()));
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"hello from the workload\n").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{reply}");
        assert!(reply.contains("ForbiddenByConnection"), "{reply}");
    }

    #[test]
    fn a_resource_with_public_access_disabled_answers_403_like_azure() {
        assert_eq!(
            Refusal::for_fqdn("contoso-kv.vault.azure.net"),
            Refusal::KeyVault
        );
        assert_eq!(
            Refusal::for_fqdn("contoso-ai.cognitiveservices.azure.com."),
            Refusal::CognitiveServices
        );
        assert_eq!(Refusal::for_fqdn("x.blob.core.windows.net"), Refusal::Other);
        assert_eq!("key-vault".parse::<Refusal>(), Ok(Refusal::KeyVault));
        let r = String::from_utf8(Refusal::KeyVault.response(b"GET /secrets HTTP/1.1\r\n\r\n"))
            .unwrap();
        assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{r}");
        assert!(
            r.ends_with(r#""innererror":{"code":"ForbiddenByConnection"}}}"#),
            "{r}"
        );
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        assert!(
            r.contains(&format!("Content-Length: {}\r\n", body.len())),
            "{r}"
        );
        // A client that does not speak HTTP is refused the same way.
        let r = String::from_utf8(Refusal::CognitiveServices.response(b"hello\n")).unwrap();
        assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{r}");
        assert!(r.contains("Public access is disabled. Please configure private endpoint."));
    }
}
