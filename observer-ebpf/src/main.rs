//! The observer's kernel program: a TC classifier that accounts every packet
//! of the interfaces it is attached to into per-flow counters, and copies DNS
//! answers to userspace.
//!
//! It never changes a packet's fate: every path returns `TC_ACT_UNSPEC`
//! (TCX_NEXT), which hands the packet on as if the program were not there.
//! Frames it cannot parse are counted by reason and passed through untouched.
//!
//! Entry points: one per attach direction and link kind. A loaded program
//! attached to both ingress and egress cannot tell which hook ran it, and a
//! link-layer-less device (WireGuard, tun, ipip) has no Ethernet header, so
//! four thin entries feed one inlined body (`observe`) with constants.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
// The BPF target has no compare-and-swap, so `Atomic*::fetch_*` is missing;
// the intrinsics lower to BPF atomic instructions directly.
#![cfg_attr(
    target_arch = "bpf",
    feature(core_intrinsics),
    expect(internal_features, reason = "atomic intrinsics")
)]

#[cfg(target_arch = "bpf")]
mod account;
#[cfg(target_arch = "bpf")]
mod dns;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod parse;

#[cfg(target_arch = "bpf")]
mod entry {
    use aya_ebpf::{
        bindings::TC_ACT_UNSPEC, helpers::bpf_jiffies64, macros::classifier, programs::TcContext,
    };
    use observer_common::{DIRECTION_EGRESS, DIRECTION_INGRESS};

    use crate::{
        account::{account_flow, count},
        dns::copy_dns,
        parse::{LinkKind, Packet, parse},
    };

    #[classifier]
    pub fn observe_ingress(ctx: TcContext) -> i32 {
        observe(&ctx, DIRECTION_INGRESS, LinkKind::Ethernet)
    }

    #[classifier]
    pub fn observe_egress(ctx: TcContext) -> i32 {
        observe(&ctx, DIRECTION_EGRESS, LinkKind::Ethernet)
    }

    #[classifier]
    pub fn observe_ingress_ip(ctx: TcContext) -> i32 {
        observe(&ctx, DIRECTION_INGRESS, LinkKind::RawIp)
    }

    #[classifier]
    pub fn observe_egress_ip(ctx: TcContext) -> i32 {
        observe(&ctx, DIRECTION_EGRESS, LinkKind::RawIp)
    }

    #[inline(always)]
    fn observe(ctx: &TcContext, direction: u8, link: LinkKind) -> i32 {
        // The tick counter: the JIT inlines this helper as one load, where
        // the exact clock is a call (see `FlowCounters` for the timing).
        // SAFETY: a helper without arguments.
        let jiffies = unsafe { bpf_jiffies64() };
        let mut slot = core::mem::MaybeUninit::uninit();
        let packet = Packet::zeroed_in(&mut slot);
        // SAFETY: the context pointer is valid for the program's run.
        packet.key.ifindex = unsafe { (*ctx.skb.skb).ifindex };
        packet.key.direction = direction;
        match parse(ctx, link, packet) {
            Ok(()) => {
                account_flow(packet, jiffies);
                copy_dns(ctx, packet);
            }
            Err(unaccounted) => count(
                unaccounted.reason,
                unaccounted.segments,
                unaccounted.frame_bytes,
            ),
        }
        TC_ACT_UNSPEC
    }
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // Unreachable in a verified program: the verifier rejects the infinite
    // loop, so any panic path left in the code fails the load instead of
    // running.
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
