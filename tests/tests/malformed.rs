//! Malformed and unusual frames sent raw: the observer passes every one
//! through untouched, keeps running, and its counters say what each was.

use std::net::{Ipv4Addr, Ipv6Addr};

use observer_tests::{
    Observer, Pair, Scratch, counter, frames, link_stats, not_accounted, read_flows, summary,
    total,
    traffic::{self, FrameCapture},
};

const A4: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
const B4: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);

/// One frame to send and how the observer must account for it.
struct Case {
    what: &'static str,
    frame: Vec<u8>,
    /// The "not accounted" counter it lands in, or `None` for a flow packet.
    counter: Option<&'static str>,
}

#[expect(clippy::too_many_lines)]
fn cases(a: pnet::util::MacAddr, b: pnet::util::MacAddr) -> Vec<Case> {
    let (a6, b6): (Ipv6Addr, Ipv6Addr) = ("fd88::1".parse().unwrap(), "fd88::2".parse().unwrap());
    let eth = |ethertype: u16, payload: &[u8]| frames::ethernet(b, a, &[], ethertype, payload);
    let udp4 = |ports: (u16, u16)| {
        frames::ipv4(A4, B4, 17, &[], 0, &frames::udp(ports.0, ports.1, &[1; 20]))
    };
    let patched = |mut packet: Vec<u8>, at: usize, value: u8| {
        packet[at] = value;
        packet
    };
    let dest_opts = |next| frames::ipv6_extension(next, 0);
    let chain = |headers: &[Vec<u8>], tail: &[u8]| [headers.concat(), tail.to_vec()].concat();
    let udp_tail = frames::udp(5001, 7002, &[2; 16]);
    let mut too_long = Vec::new();
    for _ in 0..8 {
        too_long.push(dest_opts(60));
    }
    too_long.push(dest_opts(17));
    let mut ah = vec![17, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1];
    ah.extend_from_slice(&frames::udp(5004, 7004, &[2; 16]));
    let mut tcp_short_offset = vec![0u8; 20];
    tcp_short_offset[12] = 0x20;
    let mut ipv6_wrong_version = frames::ipv6(a6, b6, 17, &udp_tail);
    ipv6_wrong_version[0] = 0x45;
    let mut ipv6_long_payload = frames::ipv6(a6, b6, 17, &udp_tail);
    ipv6_long_payload[5] += 40;
    let mut ipv4_long_total = udp4((5000, 7000));
    ipv4_long_total[3] += 100;

    vec![
        Case {
            what: "unknown ethertype",
            frame: frames::ethernet(b, a, &[], frames::EXPERIMENTAL.0, &[0x42; 46]),
            counter: Some("non_ip"),
        },
        Case {
            what: "VLAN tag cut short",
            frame: frames::ethernet(b, a, &[], frames::TPID_8021Q, &[0, 100]),
            counter: Some("eth_truncated"),
        },
        Case {
            what: "three VLAN tags",
            frame: frames::ethernet(
                b,
                a,
                &[
                    (frames::TPID_8021AD, 10),
                    (frames::TPID_8021Q, 20),
                    (frames::TPID_8021Q, 30),
                ],
                frames::IPV4,
                &udp4((5000, 7000)),
            ),
            counter: Some("vlan_too_deep"),
        },
        Case {
            what: "IPv4 header cut short",
            frame: eth(frames::IPV4, &udp4((5000, 7000))[..12]),
            counter: Some("ipv4_truncated"),
        },
        Case {
            what: "IPv4 IHL 3",
            frame: eth(frames::IPV4, &patched(udp4((5000, 7000)), 0, 0x43)),
            counter: Some("ipv4_bad_header"),
        },
        Case {
            what: "IPv4 version 5",
            frame: eth(frames::IPV4, &patched(udp4((5000, 7000)), 0, 0x55)),
            counter: Some("ipv4_bad_header"),
        },
        Case {
            what: "IPv4 IHL 15 in a 30-byte packet",
            frame: eth(frames::IPV4, &patched(udp4((5000, 7000)), 0, 0x4f)[..30]),
            counter: Some("ipv4_truncated"),
        },
        Case {
            what: "IPv4 total length past the frame",
            frame: eth(frames::IPV4, &ipv4_long_total),
            counter: Some("ipv4_truncated"),
        },
        Case {
            what: "TCP header cut short",
            frame: eth(frames::IPV4, &frames::ipv4(A4, B4, 6, &[], 0, &[0; 10])),
            counter: Some("l4_truncated"),
        },
        Case {
            what: "TCP data offset 2",
            frame: eth(
                frames::IPV4,
                &frames::ipv4(A4, B4, 6, &[], 0, &tcp_short_offset),
            ),
            counter: Some("l4_truncated"),
        },
        Case {
            what: "IPv6 header cut short",
            frame: eth(frames::IPV6, &frames::ipv6(a6, b6, 17, &udp_tail)[..20]),
            counter: Some("ipv6_truncated"),
        },
        Case {
            what: "IPv6 ethertype, version 4 inside",
            frame: eth(frames::IPV6, &ipv6_wrong_version),
            counter: Some("ipv6_bad_header"),
        },
        Case {
            what: "IPv6 payload length past the frame",
            frame: eth(frames::IPV6, &ipv6_long_payload),
            counter: Some("ipv6_truncated"),
        },
        Case {
            what: "nine IPv6 extension headers",
            frame: eth(
                frames::IPV6,
                &frames::ipv6(a6, b6, 60, &chain(&too_long, &udp_tail)),
            ),
            counter: Some("ipv6_ext_chain"),
        },
        Case {
            what: "IPv6 hop-by-hop header cut short",
            frame: eth(frames::IPV6, &frames::ipv6(a6, b6, 0, &[17])),
            counter: Some("ipv6_ext_chain"),
        },
        Case {
            what: "IPv4 with 12 bytes of options",
            frame: eth(
                frames::IPV4,
                &frames::ipv4(
                    A4,
                    B4,
                    17,
                    &[0x94, 4, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0],
                    0,
                    &frames::udp(5353, 7000, &[3; 20]),
                ),
            ),
            counter: None,
        },
        Case {
            what: "IPv4 first fragment",
            frame: eth(
                frames::IPV4,
                &frames::ipv4(A4, B4, 17, &[], 0x2000, &frames::udp(5000, 7001, &[4; 24])),
            ),
            counter: None,
        },
        Case {
            what: "IPv4 non-first fragment",
            frame: eth(frames::IPV4, &frames::ipv4(A4, B4, 17, &[], 4, &[4; 16])),
            counter: None,
        },
        Case {
            what: "IPv4 unknown protocol 253",
            frame: eth(frames::IPV4, &frames::ipv4(A4, B4, 253, &[], 0, &[5; 30])),
            counter: None,
        },
        Case {
            what: "IPv6 hop-by-hop, destination options, routing, then UDP",
            frame: eth(
                frames::IPV6,
                &frames::ipv6(
                    a6,
                    b6,
                    0,
                    &chain(
                        &[
                            frames::ipv6_extension(60, 0),
                            frames::ipv6_extension(43, 1),
                            frames::ipv6_extension(17, 0),
                        ],
                        &udp_tail,
                    ),
                ),
            ),
            counter: None,
        },
        Case {
            what: "IPv6 authentication header, then UDP",
            frame: eth(frames::IPV6, &frames::ipv6(a6, b6, 51, &ah)),
            counter: None,
        },
        Case {
            what: "IPv6 first fragment",
            frame: eth(
                frames::IPV6,
                &frames::ipv6(
                    a6,
                    b6,
                    44,
                    &chain(
                        &[frames::ipv6_fragment(17, 0, true)],
                        &frames::udp(5002, 7003, &[6; 24]),
                    ),
                ),
            ),
            counter: None,
        },
        Case {
            what: "IPv6 non-first fragment",
            frame: eth(
                frames::IPV6,
                &frames::ipv6(
                    a6,
                    b6,
                    44,
                    &chain(&[frames::ipv6_fragment(17, 32, false)], &[6; 16]),
                ),
            ),
            counter: None,
        },
        Case {
            what: "IPv6 no next header",
            frame: eth(frames::IPV6, &frames::ipv6(a6, b6, 59, &[])),
            counter: None,
        },
    ]
}

#[test]
fn malformed_frames_pass_untouched_and_are_counted() -> anyhow::Result<()> {
    let pair = Pair::new(false)?;
    let mac = |ns| -> anyhow::Result<_> { Ok(frames::mac(&observer_tests::mac(ns, "veth0")?)) };
    let cases = cases(mac(&pair.a)?, mac(&pair.b)?);
    let scratch = Scratch::new("malformed");
    let out = scratch.path().join("out");
    let observer = Observer::start(&pair.a, &out, &["--iface", "veth0", "--quiet"])?;
    let capture = FrameCapture::open(&pair.b, "veth0")?;
    let before = link_stats(&pair.b, "veth0")?;
    let sent: Vec<Vec<u8>> = cases.iter().map(|c| c.frame.clone()).collect();
    traffic::send_frames(&pair.a, "veth0", &sent)?;
    let received = capture.collect();
    let after = link_stats(&pair.b, "veth0")?;
    observer.stop()?;

    // Every frame reached the peer. Its kernel moves the outer VLAN tag into
    // skb metadata before packet sockets see the frame (and drops a frame
    // whose tag is cut short), so that is what the capture must show.
    let sent_bytes: u64 = sent.iter().map(|f| f.len() as u64).sum();
    assert_eq!(
        (
            after.rx_packets - before.rx_packets,
            after.rx_bytes - before.rx_bytes
        ),
        (sent.len() as u64, sent_bytes),
        "the peer's link counters"
    );
    let expected: Vec<(&str, Vec<u8>)> = cases
        .iter()
        .filter_map(|case| {
            let f = &case.frame;
            if ![[0x81, 0x00], [0x88, 0xa8]].contains(&[f[12], f[13]]) {
                Some((case.what, f.clone()))
            } else if f.len() >= 18 {
                Some((case.what, [&f[..12], &f[16..]].concat()))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(received.len(), expected.len(), "frames received");
    for ((what, frame), got) in expected.iter().zip(&received) {
        assert_eq!(got, frame, "{what}: arrives byte for byte as sent");
    }

    let run = summary(&out)?;
    let mut expected: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for case in &cases {
        if let Some(name) = case.counter {
            let entry = expected.entry(name).or_default();
            *entry = (entry.0 + 1, entry.1 + case.frame.len() as u64);
        }
    }
    for (name, value) in &expected {
        assert_eq!(counter(&run, name), *value, "{name}");
    }
    let unaccounted = expected
        .values()
        .fold((0, 0), |(p, b), v| (p + v.0, b + v.1));
    assert_eq!(not_accounted(&run), unaccounted, "no other reason counted");
    assert_eq!(
        counter(&run, "fragments").0,
        2,
        "one IPv4 and one IPv6 non-first fragment"
    );

    let flows = read_flows(&out)?;
    let parsed = cases.iter().filter(|c| c.counter.is_none()).count() as u64;
    assert_eq!(
        total(&flows, |_| true).0,
        parsed,
        "every parsed frame is a flow packet"
    );
    let find = |protocol: u8, src_port: Option<u16>, dst_port: Option<u16>| {
        flows
            .iter()
            .filter(|f| f.protocol == protocol && f.src_port == src_port && f.dst_port == dst_port)
            .map(|f| (f.src_addr.as_str(), f.packets, f.bytes))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    };
    /// (what, protocol, source port, destination port, [(source, packets, bytes)]).
    type Expected = (
        &'static str,
        u8,
        Option<u16>,
        Option<u16>,
        &'static [(&'static str, u64, u64)],
    );
    let expected: [Expected; 8] = [
        (
            "IPv4 options",
            17,
            Some(5353),
            Some(7000),
            &[("10.88.0.1", 1, 32 + 8 + 20)],
        ),
        (
            "first fragment",
            17,
            Some(5000),
            Some(7001),
            &[("10.88.0.1", 1, 20 + 8 + 24)],
        ),
        (
            "non-first fragments have no ports",
            17,
            None,
            None,
            &[("10.88.0.1", 1, 20 + 16), ("fd88::1", 1, 40 + 8 + 16)],
        ),
        ("unknown protocol", 253, None, None, &[("10.88.0.1", 1, 50)]),
        (
            "an extension-header chain leads to UDP",
            17,
            Some(5001),
            Some(7002),
            &[("fd88::1", 1, 40 + (8 + 16 + 8) + 8 + 16)],
        ),
        (
            "AH, then UDP",
            17,
            Some(5004),
            Some(7004),
            &[("fd88::1", 1, 40 + 12 + 24)],
        ),
        (
            "IPv6 first fragment",
            17,
            Some(5002),
            Some(7003),
            &[("fd88::1", 1, 40 + 8 + 32)],
        ),
        ("no next header", 59, None, None, &[("fd88::1", 1, 40)]),
    ];
    for (what, protocol, src_port, dst_port, rows) in expected {
        assert_eq!(find(protocol, src_port, dst_port), rows, "{what}");
    }
    Ok(())
}
