//! The metrics endpoint: a socket bound before `--netns` is entered (so it
//! stays in the caller's namespace and a scraper on the host reaches it),
//! and a small HTTP/1.1 server answering `GET /metrics` in the Prometheus
//! text format (version 0.0.4), on the capture's own tokio runtime.

use std::{io, net::SocketAddr, time::Duration};

use prometheus::{Encoder as _, Registry, TextEncoder};
use thiserror::Error;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

#[derive(Debug, Error)]
pub(crate) enum MetricsError {
    #[error(
        "cannot listen on {addr} for --metrics; give a free address such as 127.0.0.1:9464 \
         (port 0 picks one)"
    )]
    Bind { addr: SocketAddr, source: io::Error },
}

/// Binds the metrics socket (call before entering `--netns`: the socket stays
/// in the namespace it was created in).
pub(crate) fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, MetricsError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| MetricsError::Bind { addr, source })?;
    Ok(listener)
}

/// The registry in the Prometheus text format (version 0.0.4).
pub(crate) fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("text encoding into memory cannot fail");
    String::from_utf8(buf).expect("the text format is UTF-8")
}

/// Serves `GET /metrics` until the task is dropped with the runtime.
pub(crate) async fn serve(listener: std::net::TcpListener, registry: Registry) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!("metrics endpoint unavailable: {error}");
            return;
        }
    };
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let registry = registry.clone();
                tokio::spawn(async move {
                    if let Err(error) = answer(stream, &registry).await {
                        tracing::debug!("metrics request failed: {error}");
                    }
                });
            }
            Err(error) => {
                tracing::warn!("metrics endpoint: accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request head (at most 8 KiB, 5 s) and answers it.
async fn answer(mut stream: TcpStream, registry: &Registry) -> io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        io::Result::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request head"))??;
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(registry),
        ),
        ("GET" | "HEAD", "/") => (
            "200 OK",
            "text/plain; charset=utf-8",
            "observer: metrics at /metrics\n".to_owned(),
        ),
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found; metrics are at /metrics\n".to_owned(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "only GET\n".to_owned(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    stream.write_all(&response).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[tokio::test]
    async fn serves_the_text_format_over_http() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::new(
            &[crate::metrics::registry::tests::interface("lo", None, 1)],
            "r2",
            "tc",
        );
        tokio::spawn(serve(listener, metrics.registry()));
        let get = |path: &'static str| async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut text = String::new();
            stream.read_to_string(&mut text).await.unwrap();
            text
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("text/plain; version=0.0.4"), "{ok}");
        assert!(
            ok.contains("observer_interface_up{iface=\"lo\",role=\"\"} 1"),
            "{ok}"
        );
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
    }
}
