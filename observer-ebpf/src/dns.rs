//! DNS answers to userspace: a bounded copy of every message sent from port
//! 53 (UDP, or TCP with its 2-byte length prefix at the start of the segment)
//! through `DNS_EVENTS`, when userspace enabled `CAPTURE_DNS`.

use aya_ebpf::{
    bindings::__sk_buff,
    helpers::{bpf_ktime_get_ns, bpf_skb_load_bytes},
    programs::TcContext,
};
use observer_common::{DNS_PAYLOAD_MAX, DNS_PORT, DnsEvent, counter, proto};

use crate::{
    account::count,
    maps::{CAPTURE_DNS, DNS_EVENTS, global},
    parse::Packet,
};

/// Copies the message `packet` carries when DNS capture is on and it comes
/// from port 53; the check is inlined, the copy is a call.
#[inline(always)]
pub fn copy_dns(ctx: &TcContext, packet: &Packet) {
    if global(&CAPTURE_DNS) != 0 && packet.key.src_port == DNS_PORT {
        observer_copy_dns(ctx.skb.skb, packet);
    }
}

/// Copies the DNS message in `packet`'s payload to `DNS_EVENTS`. A global
/// function: verified once, whatever the packet's path through the parser.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn observer_copy_dns(skb: *mut __sk_buff, packet: *const Packet) -> i32 {
    // The verifier passes a global function's pointer arguments as possibly null.
    if packet.is_null() {
        return 0;
    }
    let ctx = &TcContext::new(skb);
    // SAFETY: a valid packet, per the caller.
    let packet = unsafe { &*packet };
    let key = &packet.key;
    if packet.non_first_fragment != 0
        || packet.payload_len == 0
        || (key.protocol != proto::UDP && key.protocol != proto::TCP)
    {
        return 0;
    }
    let (offset, message_len) = if key.protocol == proto::UDP {
        (packet.payload_offset, packet.payload_len)
    } else {
        let Ok(prefix) = ctx.load::<u16>(packet.payload_offset as usize) else {
            return 0;
        };
        let announced = u32::from(u16::from_be(prefix));
        if announced == 0 || packet.payload_len <= 2 {
            return 0;
        }
        (packet.payload_offset + 2, announced)
    };
    let in_segment = if key.protocol == proto::UDP {
        message_len
    } else {
        packet.payload_len - 2
    };
    let captured = message_len.min(in_segment);
    count(counter::DNS_MESSAGES, 1, u64::from(message_len));
    if captured == 0 {
        return 0;
    }
    if captured > DNS_PAYLOAD_MAX as u32 {
        count(counter::DNS_TRUNCATED, 1, u64::from(message_len));
    }
    // Clamp to [1, DNS_PAYLOAD_MAX] with a mask on an opaque value, so the
    // verifier sees the bound on the very register passed to the helper.
    let captured = (core::hint::black_box(captured.min(DNS_PAYLOAD_MAX as u32) - 1)
        & (DNS_PAYLOAD_MAX as u32 - 1))
        + 1;
    let Some(mut entry) = DNS_EVENTS.reserve(0) else {
        count(counter::DNS_EVENTS_LOST, 1, u64::from(message_len));
        return 0;
    };
    let event: *mut DnsEvent = entry.as_mut_ptr();
    // SAFETY: `event` points at a reserved ring-buffer record of
    // `size_of::<DnsEvent>()` bytes; the copy length is at most DNS_PAYLOAD_MAX.
    let copied = unsafe {
        let header = &raw mut (*event).header;
        (*header).timestamp_ns = bpf_ktime_get_ns();
        (*header).src_addr = key.src_addr;
        (*header).dst_addr = key.dst_addr;
        (*header).ifindex = key.ifindex;
        (*header).src_port = key.src_port;
        (*header).dst_port = key.dst_port;
        (*header).message_len = message_len.min(u32::from(u16::MAX)) as u16;
        (*header).captured_len = captured as u16;
        (*header).direction = key.direction;
        (*header).ip_version = key.ip_version;
        (*header).protocol = key.protocol;
        (*header)._pad = 0;
        bpf_skb_load_bytes(
            ctx.skb.skb.cast(),
            offset,
            (&raw mut (*event).payload).cast(),
            captured,
        )
    };
    if copied == 0 {
        entry.submit(0);
    } else {
        entry.discard(0);
        count(counter::DNS_EVENTS_LOST, 1, u64::from(message_len));
    }
    0
}
