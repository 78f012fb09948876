//! Capture: known traffic between two namespaces must come back from the
//! Parquet files exactly, packet for packet and byte for byte.

use std::net::{Ipv4Addr, Ipv6Addr};

use observer_tests::{
    A4, A6, B4, B6, Flow, Observer, Pair, Scratch, counter, frames, link_stats, not_accounted,
    quiet_link_stats, read_flows, sa, summary, total,
    traffic::{self, drain_udp, udp_socket},
};

fn tuple(f: &Flow, direction: &str, protocol: u8, src: &str, dst: &str) -> bool {
    f.direction == direction && f.protocol == protocol && f.src_addr == src && f.dst_addr == dst
}

/// Offloads off, so every skb is one wire packet and the interface's own
/// counters are directly comparable.
#[test]
fn known_traffic_comes_back_exactly() -> anyhow::Result<()> {
    let pair = Pair::addressed(false)?;
    let scratch = Scratch::new("exact");
    let out = scratch.path().join("out");
    let observer = Observer::start(&pair.a, &out, &["--iface", "veth0=test", "--quiet"])?;
    let before = link_stats(&pair.a, "veth0")?;

    let sink4 = udp_socket(&pair.b, sa(B4, 5001))?;
    let sink6 = udp_socket(&pair.b, sa(B6, 5002))?;
    assert_eq!(
        traffic::udp(&pair.a, sa(A4, 40001), sa(B4, 5001), 50, 200)?,
        50
    );
    assert_eq!(
        traffic::udp(&pair.a, sa(A6, 40002), sa(B6, 5002), 30, 300)?,
        30
    );
    assert_eq!(drain_udp(&sink4), (50, 50 * 200));
    assert_eq!(drain_udp(&sink6), (30, 30 * 300));
    let tcp4 = traffic::tcp(&pair.a, &pair.b, sa(B4, 5003), 200_000)?;
    let tcp6 = traffic::tcp(&pair.a, &pair.b, sa(B6, 5004), 100_000)?;
    traffic::ping(&pair.a, B4, 5)?;
    traffic::ping(&pair.a, B6, 5)?;

    let after = quiet_link_stats(&pair.a, "veth0")?;
    observer.stop()?;
    let flows = read_flows(&out)?;
    let run = summary(&out)?;

    // UDP: exactly what was sent, IP bytes = payload + 8 + IP header.
    let udp4 = |f: &Flow| {
        tuple(f, "egress", 17, A4, B4) && f.src_port == Some(40001) && f.dst_port == Some(5001)
    };
    assert_eq!(total(&flows, udp4), (50, 50 * (200 + 28)));
    let udp6 = |f: &Flow| tuple(f, "egress", 17, A6, B6) && f.src_port == Some(40002);
    assert_eq!(total(&flows, udp6), (30, 30 * (300 + 48)));
    assert!(
        flows
            .iter()
            .filter(|f| udp4(f))
            .all(|f| f.iface == "veth0" && f.iface_role.as_deref() == Some("test"))
    );

    // ICMP echo: 56-byte payload, each way.
    let echo = |dir: &str, src: &str, dst: &str, proto: u8, ty: u8| {
        total(&flows, |f| {
            tuple(f, dir, proto, src, dst) && f.icmp_type == Some(ty) && f.icmp_code == Some(0)
        })
    };
    assert_eq!(echo("egress", A4, B4, 1, 8), (5, 5 * 84));
    assert_eq!(echo("ingress", B4, A4, 1, 0), (5, 5 * 84));
    assert_eq!(echo("egress", A6, B6, 58, 128), (5, 5 * 104));
    assert_eq!(echo("ingress", B6, A6, 58, 129), (5, 5 * 104));

    // TCP: the flow's packets are the segments the kernel says it sent.
    for (transfer, (a, b, port)) in [(tcp4, (A4, B4, 5003)), (tcp6, (A6, B6, 5004))] {
        let out_dir = total(&flows, |f| {
            tuple(f, "egress", 6, a, b)
                && f.src_port == Some(transfer.client_port)
                && f.dst_port == Some(port)
        });
        let in_dir = total(&flows, |f| {
            tuple(f, "ingress", 6, b, a) && f.dst_port == Some(transfer.client_port)
        });
        assert_eq!(out_dir.0, transfer.client.segs_out, "client segments ({a})");
        // The SYN-ACK leaves from the listener's request socket, so the
        // server's own segs_out misses it; the client received everything.
        assert_eq!(in_dir.0, transfer.client.segs_in, "server segments ({a})");
        assert_eq!(
            in_dir.0,
            transfer.server.segs_out + 1,
            "server segments + SYN-ACK ({a})"
        );
        assert_eq!(
            transfer.client.bytes_sent,
            if a == A4 { 200_000 } else { 100_000 }
        );
    }
    let syn_fin = flows
        .iter()
        .filter(|f| tuple(f, "egress", 6, A4, B4) && f.dst_port == Some(5003))
        .fold(0, |acc, f| acc | f.tcp_flags);
    assert_eq!(syn_fin & 0x13, 0x13, "SYN, FIN and ACK seen");

    // Everything the interface counted is a flow packet or a counted frame.
    let (flow_packets, flow_bytes) = total(&flows, |_| true);
    let (other_packets, other_bytes) = not_accounted(&run);
    let link_packets = after.tx_packets - before.tx_packets + after.rx_packets - before.rx_packets;
    let link_bytes = after.tx_bytes - before.tx_bytes + after.rx_bytes - before.rx_bytes;
    assert_eq!(
        flow_packets + other_packets,
        link_packets,
        "packets: flows {flow_packets} + other {other_packets}"
    );
    assert_eq!(
        flow_bytes + 14 * flow_packets + other_bytes,
        link_bytes,
        "bytes: IP bytes + Ethernet headers"
    );
    assert_eq!(counter(&run, "flow_events_lost"), (0, 0));
    assert_eq!(run["lost_packets"], 0);
    Ok(())
}

/// With offloads on, the kernel program sees GSO super-packets and must
/// count their wire segments.
#[test]
fn gso_packets_count_their_wire_segments() -> anyhow::Result<()> {
    let pair = Pair::addressed(true)?;
    for ns in [&pair.a, &pair.b] {
        ns.sysctl("net.ipv4.tcp_timestamps", "0")?;
    }
    let scratch = Scratch::new("gso");
    let out = scratch.path().join("out");
    let observer = Observer::start(&pair.a, &out, &["--iface", "veth0", "--quiet"])?;
    let before = link_stats(&pair.a, "veth0")?;
    let transfer = traffic::tcp(&pair.a, &pair.b, sa(B4, 5010), 4_000_000)?;
    let after = link_stats(&pair.a, "veth0")?;
    let sink = udp_socket(&pair.b, sa(B4, 5011))?;
    traffic::udp_gso(&pair.a, sa(A4, 40011), sa(B4, 5011), 10, 1000)?;
    assert_eq!(
        drain_udp(&sink),
        (10, 10_000),
        "the receiver got ten datagrams"
    );
    observer.stop()?;
    let flows = read_flows(&out)?;

    let (packets, bytes) = total(&flows, |f| {
        tuple(f, "egress", 6, A4, B4) && f.src_port == Some(transfer.client_port)
    });
    let link_packets = after.tx_packets - before.tx_packets;
    assert!(
        link_packets < packets / 2,
        "the transfer used GSO: {link_packets} skbs for {packets} segments"
    );
    assert_eq!(packets, transfer.client.segs_out);
    // Without timestamps every segment has a 20-byte TCP header; the SYN
    // adds 12 bytes of options (MSS, SACK permitted, window scale).
    assert_eq!(bytes, transfer.client.bytes_sent + 40 * packets + 12);
    let acks = total(&flows, |f| {
        tuple(f, "ingress", 6, B4, A4) && f.dst_port == Some(transfer.client_port)
    });
    assert_eq!(acks.0, transfer.client.segs_in);

    let udp = total(&flows, |f| {
        tuple(f, "egress", 17, A4, B4) && f.dst_port == Some(5011)
    });
    assert_eq!(udp, (10, 10 * 1028), "one GSO write, ten wire datagrams");
    Ok(())
}

/// VLAN-tagged frames, 802.1Q and QinQ (802.1ad outside 802.1Q), are counted
/// exactly under their outer VLAN id: on the sender's egress, where the
/// tags are in the frame, and on the receiver's ingress, where the kernel
/// has moved the outer tag into skb metadata.
#[test]
fn vlan_tagged_traffic_comes_back_exactly() -> anyhow::Result<()> {
    let pair = Pair::new(false)?;
    let (mac_a, mac_b) = (
        frames::mac(&observer_tests::mac(&pair.a, "veth0")?),
        frames::mac(&observer_tests::mac(&pair.b, "veth0")?),
    );
    let scratch = Scratch::new("vlan");
    let (out_a, out_b) = (scratch.path().join("a"), scratch.path().join("b"));
    let observer_a = Observer::start(&pair.a, &out_a, &["--iface", "veth0", "--quiet"])?;
    let observer_b = Observer::start(&pair.b, &out_b, &["--iface", "veth0", "--quiet"])?;
    let (before_a, before_b) = (link_stats(&pair.a, "veth0")?, link_stats(&pair.b, "veth0")?);

    let (v4a, v4b) = (Ipv4Addr::new(10, 100, 0, 1), Ipv4Addr::new(10, 100, 0, 2));
    let (v6a, v6b): (Ipv6Addr, Ipv6Addr) = ("fd00:100::1".parse()?, "fd00:100::2".parse()?);
    let (q4a, q4b) = (Ipv4Addr::new(10, 200, 0, 1), Ipv4Addr::new(10, 200, 0, 2));
    let dot1q = [(frames::TPID_8021Q, 100)];
    let qinq = [(frames::TPID_8021AD, 200), (frames::TPID_8021Q, 300)];
    let udp4 = frames::ipv4(v4a, v4b, 17, &[], 0, &frames::udp(41000, 6100, &[7; 200]));
    let udp6 = frames::ipv6(v6a, v6b, 17, &frames::udp(41001, 6101, &[6; 100]));
    let echo = frames::ipv4(q4a, q4b, 1, &[], 0, &frames::icmp(8, 0, &[1; 56]));
    let mut sent = Vec::new();
    for (tags, ethertype, packet, count) in [
        (&dot1q[..], frames::IPV4, &udp4, 40),
        (&dot1q[..], frames::IPV6, &udp6, 20),
        (&qinq[..], frames::IPV4, &echo, 10),
    ] {
        let frame = frames::ethernet(mac_b, mac_a, tags, ethertype, packet);
        sent.extend(std::iter::repeat_n(frame, count));
    }
    traffic::send_frames(&pair.a, "veth0", &sent)?;
    let (after_a, after_b) = (
        quiet_link_stats(&pair.a, "veth0")?,
        quiet_link_stats(&pair.b, "veth0")?,
    );
    observer_a.stop()?;
    observer_b.stop()?;

    let sent_bytes: u64 = sent.iter().map(|f| f.len() as u64).sum();
    assert_eq!(after_a.tx_packets - before_a.tx_packets, sent.len() as u64);
    assert_eq!(after_a.tx_bytes - before_a.tx_bytes, sent_bytes);
    assert_eq!(after_b.rx_packets - before_b.rx_packets, sent.len() as u64);
    assert_eq!(after_b.rx_bytes - before_b.rx_bytes, sent_bytes);
    for (out, direction) in [(&out_a, "egress"), (&out_b, "ingress")] {
        let flows = read_flows(out)?;
        let flow = |proto: u8, src: &str, dst: &str, vlan: u16| {
            total(&flows, |f| {
                tuple(f, direction, proto, src, dst) && f.vlan_id == Some(vlan)
            })
        };
        assert_eq!(
            flow(17, "10.100.0.1", "10.100.0.2", 100),
            (40, 40 * 228),
            "{direction}"
        );
        assert_eq!(
            flow(17, "fd00:100::1", "fd00:100::2", 100),
            (20, 20 * 148),
            "{direction}"
        );
        assert_eq!(
            flow(1, "10.200.0.1", "10.200.0.2", 200),
            (10, 10 * 84),
            "{direction}"
        );
        assert_eq!(
            total(&flows, |_| true),
            (70, 40 * 228 + 20 * 148 + 10 * 84),
            "{direction}: nothing else"
        );
        assert_eq!(
            not_accounted(&summary(out)?),
            (0, 0),
            "{direction}: nothing unparsed"
        );
    }
    Ok(())
}

/// Times: a flow's first packet is stamped exactly, later ones by the kernel
/// tick (converted back to nanoseconds in userspace). One drain sees the
/// whole flow here, so its end time comes from ticks alone; both ends must
/// fall within the sender's clock readings around the first and the last
/// send, give or take two ticks (HZ >= 100: 20 ms). Bracketing each send
/// keeps a slow or busy host (the sender preempted between reading the
/// clock and sending) from mattering.
#[test]
fn start_and_end_times_match_the_sender_clock() -> anyhow::Result<()> {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    let pair = Pair::addressed(false)?;
    let scratch = Scratch::new("times");
    let out = scratch.path().join("out");
    let observer = Observer::start(
        &pair.a,
        &out,
        &[
            "--iface",
            "veth0",
            "--quiet",
            "--drain-interval",
            "3600",
            "--flush-interval",
            "3600",
        ],
    )?;
    let sink = udp_socket(&pair.b, sa(B4, 5010))?;
    let unix_ns = |t: SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64);
    // (before, after) each send, as UTC nanoseconds.
    let sends = pair.a.enter(|| -> anyhow::Result<Vec<(i64, i64)>> {
        let socket = std::net::UdpSocket::bind(sa(A4, 40010))?;
        let mut sends = Vec::new();
        for i in 0..11 {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(150));
            }
            let before = SystemTime::now();
            socket.send_to(&[7u8; 32], sa(B4, 5010))?;
            sends.push((unix_ns(before)?, unix_ns(SystemTime::now())?));
        }
        Ok(sends)
    })??;
    assert_eq!(drain_udp(&sink).0, 11);
    observer.stop()?;

    let flows = read_flows(&out)?;
    let flow = flows
        .iter()
        .find(|f| tuple(f, "egress", 17, A4, B4) && f.src_port == Some(40010))
        .expect("the flow was recorded");
    assert_eq!(flow.packets, 11, "one record: a single drain saw the flow");
    let tolerance = Duration::from_millis(20).as_nanos() as i64;
    let (first, last) = (sends[0], sends[10]);
    assert!(
        first.0 - tolerance <= flow.start_ns && flow.start_ns <= first.1 + tolerance,
        "start_time {} ns, the first send was between {} and {} ns",
        flow.start_ns,
        first.0,
        first.1
    );
    let duration = flow.end_ns - flow.start_ns;
    let (shortest, longest) = (last.0 - first.1, last.1 - first.0);
    assert!(
        shortest - tolerance <= duration && duration <= longest + tolerance,
        "end - start = {duration} ns, the sends spanned {shortest} to {longest} ns"
    );
    Ok(())
}
