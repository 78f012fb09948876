//! Traffic generators that know exactly what they sent: UDP datagrams, TCP
//! transfers (with the kernel's own segment counts from TCP_INFO), ICMP
//! echoes, and raw Ethernet frames.

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use observer::lab::netns::Netns;
use pnet::datalink::{self, Channel, Config};

/// Sends `count` datagrams of `payload` bytes from `from` to `to` inside
/// `ns`; returns how many the kernel accepted.
pub fn udp(
    ns: &Netns,
    from: SocketAddr,
    to: SocketAddr,
    count: usize,
    payload: usize,
) -> anyhow::Result<usize> {
    ns.enter(|| -> anyhow::Result<usize> {
        let socket = UdpSocket::bind(from)?;
        let data = vec![0x5a; payload];
        let mut sent = 0;
        for _ in 0..count {
            if socket.send_to(&data, to).is_ok() {
                sent += 1;
            }
        }
        Ok(sent)
    })?
}

/// A UDP socket bound inside `ns`.
pub fn udp_socket(ns: &Netns, addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    let socket = ns.enter(|| UdpSocket::bind(addr))??;
    socket.set_read_timeout(Some(Duration::from_millis(500)))?;
    Ok(socket)
}

/// Receives until the socket stays silent; returns (datagrams, bytes).
pub fn drain_udp(socket: &UdpSocket) -> (usize, usize) {
    let mut buf = vec![0u8; 65536];
    let (mut count, mut bytes) = (0, 0);
    while let Ok(n) = socket.recv(&mut buf) {
        count += 1;
        bytes += n;
    }
    (count, bytes)
}

/// Sends one UDP GSO write (`UDP_SEGMENT`) of `segments` x `segment` bytes.
pub fn udp_gso(
    ns: &Netns,
    from: SocketAddr,
    to: SocketAddr,
    segments: usize,
    segment: u16,
) -> anyhow::Result<()> {
    const UDP_SEGMENT: libc::c_int = 103;
    ns.enter(|| -> anyhow::Result<()> {
        let socket = UdpSocket::bind(from)?;
        socket.connect(to)?;
        let size = libc::c_int::from(segment);
        // SAFETY: a valid socket and option value.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_UDP,
                UDP_SEGMENT,
                (&raw const size).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        ensure!(rc == 0, "UDP_SEGMENT: {}", std::io::Error::last_os_error());
        let data = vec![0x42; segments * usize::from(segment)];
        ensure!(socket.send(&data)? == data.len(), "short GSO send");
        Ok(())
    })?
}

/// What the kernel says a TCP socket sent and received.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpInfo {
    /// `TCP_ESTABLISHED` (1) ... `TCP_CLOSE` (7), as in `include/net/tcp_states.h`.
    pub state: u8,
    pub segs_out: u64,
    pub segs_in: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

fn tcp_info(stream: &TcpStream) -> anyhow::Result<TcpInfo> {
    let mut buf = [0u8; 256];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: the buffer is larger than any struct tcp_info prefix we read.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    ensure!(
        rc == 0 && len >= 216,
        "TCP_INFO: {}",
        std::io::Error::last_os_error()
    );
    let u32_at = |o: usize| u64::from(u32::from_ne_bytes(buf[o..o + 4].try_into().unwrap()));
    let u64_at = |o: usize| u64::from_ne_bytes(buf[o..o + 8].try_into().unwrap());
    // Offsets in struct tcp_info (include/uapi/linux/tcp.h).
    Ok(TcpInfo {
        state: buf[0],
        segs_out: u32_at(136),
        segs_in: u32_at(140),
        bytes_sent: u64_at(200),
        bytes_received: u64_at(128),
    })
}

/// A finished TCP transfer: both ends' TCP_INFO and the client's port.
#[derive(Clone, Copy, Debug)]
pub struct TcpTransfer {
    pub client_port: u16,
    pub client: TcpInfo,
    pub server: TcpInfo,
}

/// Sends `bytes` from a client in `client_ns` to a server in `server_ns`,
/// closes both ways, and reads each side's TCP_INFO once the last ACK has
/// reached the server (its socket is closed), within 10 s.
pub fn tcp(
    client_ns: &Netns,
    server_ns: &Netns,
    server: SocketAddr,
    bytes: usize,
) -> anyhow::Result<TcpTransfer> {
    let listener = server_ns.enter(|| TcpListener::bind(server))??;
    let serve = std::thread::spawn(move || -> anyhow::Result<TcpStream> {
        let (mut stream, _) = listener.accept()?;
        let mut sink = Vec::new();
        stream.read_to_end(&mut sink)?;
        stream.shutdown(Shutdown::Write)?;
        Ok(stream)
    });
    let mut client =
        client_ns.enter(|| TcpStream::connect_timeout(&server, Duration::from_secs(5)))??;
    let client_port = client.local_addr()?.port();
    let chunk = vec![0x33u8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        client.write_all(&chunk[..n])?;
        left -= n;
    }
    client.shutdown(Shutdown::Write)?;
    let mut rest = Vec::new();
    client.read_to_end(&mut rest)?;
    let server_stream = serve.join().expect("server thread")?;
    const TCP_CLOSE: u8 = 7;
    let deadline = Instant::now() + Duration::from_secs(10);
    let server = loop {
        let info = tcp_info(&server_stream)?;
        if info.state == TCP_CLOSE {
            break info;
        }
        ensure!(
            Instant::now() < deadline,
            "the server's socket is still in TCP state {} 10 s after the transfer",
            info.state
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(TcpTransfer {
        client_port,
        client: tcp_info(&client)?,
        server,
    })
}

/// `ping` from inside `ns` (56-byte payload); fails unless every echo is answered.
pub fn ping(ns: &Netns, dst: &str, count: u32) -> anyhow::Result<()> {
    ns.exec(
        "ping",
        ["-q", "-c", &count.to_string(), "-i", "0.05", "-W", "2", dst],
    )
    .context("ping")?;
    Ok(())
}

/// Sends raw Ethernet frames on `iface` inside `ns`.
pub fn send_frames(ns: &Netns, iface: &str, frames: &[Vec<u8>]) -> anyhow::Result<()> {
    ns.enter(|| -> anyhow::Result<()> {
        let interface = datalink::interfaces()
            .into_iter()
            .find(|i| i.name == iface)
            .context("no such interface")?;
        let Channel::Ethernet(mut tx, _rx) = datalink::channel(&interface, Config::default())?
        else {
            anyhow::bail!("not an Ethernet channel");
        };
        for frame in frames {
            tx.send_to(frame, None).context("send_to")??;
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    })?
}

/// Opens a raw capture on `iface` inside `ns`; `collect` then reads every
/// frame that arrives until the link is quiet.
pub struct FrameCapture {
    rx: Box<dyn datalink::DataLinkReceiver>,
}

impl std::fmt::Debug for FrameCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameCapture")
    }
}

impl FrameCapture {
    pub fn open(ns: &Netns, iface: &str) -> anyhow::Result<Self> {
        ns.enter(|| -> anyhow::Result<Self> {
            let interface = datalink::interfaces()
                .into_iter()
                .find(|i| i.name == iface)
                .context("no such interface")?;
            let config = Config {
                read_timeout: Some(Duration::from_millis(500)),
                ..Config::default()
            };
            let Channel::Ethernet(_tx, rx) = datalink::channel(&interface, config)? else {
                anyhow::bail!("not an Ethernet channel");
            };
            Ok(Self { rx })
        })?
    }

    pub fn collect(mut self) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        while let Ok(frame) = self.rx.next() {
            frames.push(frame.to_vec());
        }
        frames
    }
}
