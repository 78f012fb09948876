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
//!
//! The common packet (a known flow, a plain IPv4/IPv6 TCP/UDP/ICMP frame)
//! runs inlined code only: no helper or function call. What is rare (an
//! unusual frame, a flow taking a cache slot, a DNS message) is a global
//! function, which the verifier checks once instead of once per path
//! leading to it.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
#![cfg_attr(
    target_arch = "bpf",
    expect(
        unreachable_pub,
        reason = "a BPF program has no public surface: `pub` says what its modules share"
    )
)]
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
    use core::mem::MaybeUninit;

    use aya_ebpf::{
        bindings::TC_ACT_UNSPEC, helpers::bpf_jiffies64, macros::classifier, programs::TcContext,
    };
    use observer_common::{DIRECTION_EGRESS, DIRECTION_INGRESS};

    use crate::{
        account::{account_flow, count},
        dns::copy_dns,
        parse::{LinkKind, PARSED, Packet, observer_parse, parse_fast},
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
        let mut slot = MaybeUninit::<Packet>::uninit();
        let packet: &Packet = match parse_fast(ctx, link, direction) {
            Some(packet) => slot.write(packet),
            None => {
                let packet = zeroed(&mut slot);
                let verdict =
                    observer_parse(ctx.skb.skb, link as u32, u32::from(direction), packet);
                if verdict != PARSED {
                    // SAFETY: the context pointer is valid for the program's run.
                    let skb = unsafe { &*ctx.skb.skb };
                    count(verdict, u64::from(skb.gso_segs.max(1)), u64::from(skb.len));
                    return TC_ACT_UNSPEC;
                }
                // SAFETY: zeroed above (all-zero is a valid `Packet`), and
                // written whole by the parser.
                unsafe { slot.assume_init_ref() }
            }
        };
        account_flow(packet, jiffies);
        copy_dns(ctx, packet);
        TC_ACT_UNSPEC
    }

    /// Zeroes `slot` word by word, as the verifier wants the stack a global
    /// function may read initialised. `Default` (or any by-value zeroed
    /// packet) compiles to calls of a byte-at-a-time memset subprogram.
    #[inline(always)]
    fn zeroed(slot: &mut MaybeUninit<Packet>) -> *mut Packet {
        const WORDS: usize = size_of::<Packet>() / 8;
        const { assert!(size_of::<Packet>() % 8 == 0 && align_of::<Packet>() == 8) };
        let words = slot.as_mut_ptr().cast::<u64>();
        for i in 0..WORDS {
            // SAFETY: word `i` lies inside the 8-byte aligned slot; volatile
            // keeps LLVM from turning the stores back into a memset call.
            unsafe { words.add(i).write_volatile(0) };
        }
        slot.as_mut_ptr()
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
