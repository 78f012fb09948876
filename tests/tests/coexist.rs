//! Two observers on one interface, with clsact filters and with TCX links:
//! each records all the traffic, neither removes the other's programs, and
//! the last one out leaves nothing behind.

use observer_tests::{A4, B4, Observer, Pair, Scratch, bpf_attachments, read_flows, sa, total};

fn udp_to(dir: &std::path::Path, port: u16) -> anyhow::Result<(u64, u64)> {
    Ok(total(&read_flows(dir)?, |f| {
        f.direction == "egress" && f.protocol == 17 && f.dst_port == Some(port)
    }))
}

fn clsact_present(pair: &Pair) -> anyhow::Result<bool> {
    Ok(pair
        .a
        .exec("tc", ["qdisc", "show", "dev", "veth0"])?
        .contains("clsact"))
}

#[test]
fn two_observers_on_one_interface_each_record_everything() -> anyhow::Result<()> {
    let pair = Pair::addressed(false)?;
    for mode in ["tc", "tcx"] {
        let scratch = Scratch::new("coexist");
        let (first_out, second_out) = (scratch.path().join("first"), scratch.path().join("second"));
        let args = ["--iface", "veth0", "--attach", mode, "--quiet"];
        let first = Observer::start(&pair.a, &first_out, &args)?;
        let second = Observer::start(&pair.a, &second_out, &args)?;
        let attached = bpf_attachments(&pair.a)?;
        assert_eq!(
            attached.lines().count(),
            4,
            "{mode}: both observers' ingress and egress programs:\n{attached}"
        );
        assert!(
            !second.log().contains("stale"),
            "{mode}: the first observer's filters are not stale:\n{}",
            second.log()
        );

        let both = pair.b.enter(|| std::net::UdpSocket::bind(sa(B4, 7200)))??;
        assert_eq!(
            observer_tests::traffic::udp(&pair.a, sa(A4, 42200), sa(B4, 7200), 500, 100)?,
            500
        );
        first.stop()?;
        let left = bpf_attachments(&pair.a)?;
        assert_eq!(
            left.lines().count(),
            2,
            "{mode}: stopping the first leaves the second's programs:\n{left}"
        );
        assert_eq!(
            clsact_present(&pair)?,
            mode == "tc",
            "{mode}: the qdisc stays while a filter hangs on it"
        );
        assert_eq!(
            observer_tests::traffic::udp(&pair.a, sa(A4, 42201), sa(B4, 7201), 300, 100)?,
            300
        );
        second.stop()?;
        drop(both);
        assert_eq!(bpf_attachments(&pair.a)?, "", "{mode}: nothing attached");
        assert!(
            !clsact_present(&pair)?,
            "{mode}: the last one out removed the qdisc"
        );

        assert_eq!(udp_to(&first_out, 7200)?, (500, 500 * 128), "{mode}: first");
        assert_eq!(
            udp_to(&first_out, 7201)?,
            (0, 0),
            "{mode}: first, after it stopped"
        );
        assert_eq!(
            udp_to(&second_out, 7200)?,
            (500, 500 * 128),
            "{mode}: second"
        );
        assert_eq!(
            udp_to(&second_out, 7201)?,
            (300, 300 * 128),
            "{mode}: second, alone"
        );
    }
    Ok(())
}
