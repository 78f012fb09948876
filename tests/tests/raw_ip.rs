//! A device without a link header (a tun device, as WireGuard or a VPN
//! client has): the observer attaches its raw-IP programs, and what crosses
//! the device comes back exactly, both directions, IPv4 and IPv6.

use std::{
    fs::File,
    io::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd as _,
    time::Duration,
};

use anyhow::{Context as _, ensure};
use observer::lab::netns::Netns;
use observer_tests::{NS_PREFIX, Observer, Scratch, frames, read_flows, total, traffic};

const LOCAL4: Ipv4Addr = Ipv4Addr::new(10, 66, 0, 1);
const PEER4: Ipv4Addr = Ipv4Addr::new(10, 66, 0, 2);
const LOCAL6: &str = "fd66::1";
const PEER6: &str = "fd66::2";

/// Creates tun device `name` in the calling thread's namespace; it lives
/// while the returned file is open.
fn open_tun(name: &str) -> anyhow::Result<File> {
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    const IFF_TUN: libc::c_short = 0x0001;
    const IFF_NO_PI: libc::c_short = 0x1000;
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _rest: [u8; 22],
    }
    let file = File::options()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .context("/dev/net/tun")?;
    let mut request = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TUN | IFF_NO_PI,
        _rest: [0; 22],
    };
    request.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes an `ifreq`, which `IfReq` lays out.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &raw mut request) };
    ensure!(rc == 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
    Ok(file)
}

#[test]
fn tun_traffic_comes_back_exactly() -> anyhow::Result<()> {
    let ns = Netns::new(NS_PREFIX)?;
    let mut tun = ns.enter(|| open_tun("tun0"))??;
    ns.ip(["link", "set", "tun0", "addrgenmode", "none"])?;
    ns.ip(["addr", "add", &format!("{LOCAL4}/24"), "dev", "tun0"])?;
    ns.ip([
        "addr",
        "add",
        &format!("{LOCAL6}/64"),
        "dev",
        "tun0",
        "nodad",
    ])?;
    ns.ip(["link", "set", "tun0", "up"])?;
    // Multicast listener reports for the new address go out within a second.
    std::thread::sleep(Duration::from_millis(2500));

    let scratch = Scratch::new("raw-ip");
    let out = scratch.path().join("out");
    let observer = Observer::start(&ns, &out, &["--iface", "tun0=vpn", "--quiet"])?;

    // Egress: datagrams routed out of the tun device (nobody reads them
    // back; the device drops what its queue cannot hold, after the hook).
    let sa = |ip: &str, port: u16| observer_tests::sa(ip, port);
    let sent4 = traffic::udp(&ns, sa("10.66.0.1", 41000), sa("10.66.0.2", 7000), 40, 100)?;
    let sent6 = traffic::udp(&ns, sa(LOCAL6, 41001), sa(PEER6, 7001), 30, 200)?;
    ensure!(sent4 == 40 && sent6 == 30, "sent {sent4} and {sent6}");

    // Ingress: packets written into the device arrive on it from the peer.
    let (peer6, local6): (Ipv6Addr, Ipv6Addr) = (PEER6.parse()?, LOCAL6.parse()?);
    let in4 = frames::ipv4(
        PEER4,
        LOCAL4,
        17,
        &[],
        0,
        &frames::udp(7002, 42000, &[4; 60]),
    );
    let in6 = frames::ipv6(peer6, local6, 17, &frames::udp(7003, 42001, &[6; 90]));
    let echo4 = frames::ipv4(PEER4, LOCAL4, 1, &[], 0, &frames::icmp(8, 0, &[1; 56]));
    for (packet, count) in [(&in4, 25), (&in6, 15), (&echo4, 5)] {
        for _ in 0..count {
            tun.write_all(packet)?;
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    observer.stop()?;
    let flows = read_flows(&out)?;

    let flow = |direction: &str, protocol: u8, src: &str, dst: &str, port: u16| {
        total(&flows, |f| {
            f.direction == direction
                && f.protocol == protocol
                && f.src_addr == src
                && f.dst_addr == dst
                && (f.src_port == Some(port) || f.icmp_type == Some(port as u8))
        })
    };
    assert_eq!(
        flow("egress", 17, "10.66.0.1", "10.66.0.2", 41000),
        (40, 40 * (100 + 28))
    );
    assert_eq!(
        flow("egress", 17, LOCAL6, PEER6, 41001),
        (30, 30 * (200 + 48))
    );
    assert_eq!(
        flow("ingress", 17, "10.66.0.2", "10.66.0.1", 7002),
        (25, 25 * (60 + 28))
    );
    assert_eq!(
        flow("ingress", 17, PEER6, LOCAL6, 7003),
        (15, 15 * (90 + 48))
    );
    assert_eq!(
        flow("ingress", 1, "10.66.0.2", "10.66.0.1", 8),
        (5, 5 * (56 + 8 + 20))
    );
    assert!(flows.iter().all(|f| f.iface == "tun0"
        && f.iface_role.as_deref() == Some("vpn")
        && f.vlan_id.unwrap_or(0) == 0));
    Ok(())
}
