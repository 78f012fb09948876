//! More concurrent flows than the kernel holds: flows that collide in the
//! per-CPU cache merge exactly in the flow map, flows beyond the map still
//! reach the Parquet files through the overflow ring buffer, and when that
//! ring is full too, the loss counters say exactly what was missed.

use std::{path::PathBuf, time::Duration};

use observer_tests::{
    A4, B4, Flow, LinkStats, Observer, Pair, Scratch, counter, link_stats, quiet_link_stats,
    read_flows, sa, summary, total,
};

/// One 16-byte datagram to each of `ports` (a flow each), paced so the
/// peer's backlog keeps up; returns how many were sent.
fn one_packet_flows(pair: &Pair, ports: std::ops::Range<u16>) -> anyhow::Result<u64> {
    pair.a.enter(|| -> anyhow::Result<u64> {
        let socket = std::net::UdpSocket::bind(sa(A4, 43000))?;
        let mut sent = 0;
        for port in ports {
            socket.send_to(&[7; 16], sa(B4, port))?;
            sent += 1;
            if sent % 500 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(sent)
    })?
}

/// Packets the link carried (or dropped after the egress hook saw them).
fn seen_on_link(before: LinkStats, after: LinkStats) -> u64 {
    (after.tx_packets + after.tx_dropped + after.rx_packets)
        - (before.tx_packets + before.tx_dropped + before.rx_packets)
}

fn udp_flows(flows: &[Flow], ports: &std::ops::Range<u16>) -> Vec<u64> {
    flows
        .iter()
        .filter(|f| {
            f.direction == "egress"
                && f.protocol == 17
                && f.dst_port.is_some_and(|p| ports.contains(&p))
        })
        .map(|f| f.packets)
        .collect()
}

/// A pair and an observer on its first end with `args`.
fn observed(label: &str, args: &[&str]) -> anyhow::Result<(Pair, Scratch, PathBuf, Observer)> {
    let pair = Pair::addressed(false)?;
    let scratch = Scratch::new(label);
    let out = scratch.path().join("out");
    let observer = Observer::start(
        &pair.a,
        &out,
        &[&["--iface", "veth0", "--quiet"], args].concat(),
    )?;
    Ok((pair, scratch, out, observer))
}

/// 300 flows take turns through a 16-slot cache, so nearly every packet
/// evicts another flow's slot into the map, where the records of one flow
/// from several evictions (and CPUs) add up.
#[test]
fn evicted_cache_slots_add_up_in_the_flow_map() -> anyhow::Result<()> {
    let (pair, _scratch, out, observer) = observed(
        "evictions",
        &[
            "--flow-cache-slots",
            "16",
            "--drain-interval",
            "3600",
            "--flush-interval",
            "3600",
        ],
    )?;
    let ports = 21_000..21_300;
    let mut sent = 0;
    for _round in 0..7 {
        sent += one_packet_flows(&pair, ports.clone())?;
    }
    assert_eq!(sent, 7 * 300);
    observer.stop()?;

    let flows = read_flows(&out)?;
    let run = summary(&out)?;
    let udp = udp_flows(&flows, &ports);
    assert_eq!(udp.len(), 300, "one record per flow");
    assert!(
        udp.iter().all(|&p| p == 7),
        "each with its 7 packets: {udp:?}"
    );
    assert_eq!(counter(&run, "flow_map_full"), (0, 0));
    assert_eq!(counter(&run, "flow_events_lost"), (0, 0));
    let one = flows
        .iter()
        .find(|f| f.dst_port == Some(21_000) && f.direction == "egress")
        .expect("the first flow");
    assert!(one.end_ns > one.start_ns, "merged times span the rounds");
    Ok(())
}

#[test]
fn a_full_flow_map_loses_no_flow() -> anyhow::Result<()> {
    // A one-slot cache: every new flow moves the previous one to the map.
    // No periodic drain or flush (a flush drains too), only the final
    // drain, so how many flows the maps held does not depend on how fast
    // this host sends.
    let (pair, _scratch, out, observer) = observed(
        "overflow",
        &[
            "--flow-map-size",
            "256",
            "--flow-cache-slots",
            "1",
            "--drain-interval",
            "3600",
            "--flush-interval",
            "3600",
        ],
    )?;
    let ports = 20_000..25_000;
    assert_eq!(one_packet_flows(&pair, ports.clone())?, 5000);
    observer.stop()?;

    let flows = read_flows(&out)?;
    let run = summary(&out)?;
    let udp = udp_flows(&flows, &ports);
    assert_eq!(udp.len(), 5000, "one record per flow");
    assert!(udp.iter().all(|&p| p == 1), "each with its one packet");
    let diverted = counter(&run, "flow_map_full").0;
    let cpus = std::thread::available_parallelism()?.get() as u64;
    assert!(
        diverted >= 5000 - 2 * 256 - 2 * cpus,
        "{diverted} packets went through the ring"
    );
    assert_eq!(counter(&run, "flow_events_lost"), (0, 0));
    assert_eq!(
        total(&flows, |_| true).0,
        counter(&run, "flow_packets").0,
        "records = flow packets (through cache, map and ring)"
    );
    Ok(())
}

/// The observer is frozen (SIGSTOP) so nobody drains the map or reads the
/// ring: both fill, and every packet beyond them is counted as lost.
#[test]
fn when_the_ring_is_full_too_the_loss_is_counted_exactly() -> anyhow::Result<()> {
    let (pair, _scratch, out, observer) = observed(
        "ring-full",
        &[
            "--flow-map-size",
            "64",
            "--flow-cache-slots",
            "1",
            "--event-ring-mib",
            "1",
        ],
    )?;
    let before = link_stats(&pair.a, "veth0")?;
    observer.signal(libc::SIGSTOP);
    let ports = 30_000..60_000;
    let sent = one_packet_flows(&pair, ports.clone())?;
    // The peer's ICMP errors have come back once the link is quiet.
    let after = quiet_link_stats(&pair.a, "veth0")?;
    observer.signal(libc::SIGCONT);
    observer.stop()?;

    let flows = read_flows(&out)?;
    let run = summary(&out)?;
    let (lost, lost_bytes) = counter(&run, "flow_events_lost");
    let udp = udp_flows(&flows, &ports);
    assert!(udp.iter().all(|&p| p == 1));
    assert!(
        lost > 10_000 && (udp.len() as u64) < sent,
        "the ring (1 MiB, ~8,700 events) overflowed: {} of {sent} recorded, {lost} lost",
        udp.len()
    );
    assert_eq!(
        lost_bytes % 44,
        0,
        "lost bytes are whole 44-byte datagrams or ICMP errors"
    );
    assert_eq!(run["lost_packets"], lost);
    let recorded = total(&flows, |_| true).0;
    assert_eq!(
        recorded + lost,
        seen_on_link(before, after),
        "recorded {recorded} + lost {lost} = every packet the link carried"
    );
    Ok(())
}
