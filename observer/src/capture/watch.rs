//! Watching for watched interfaces that disappear (veth deleted, container
//! stopped, device moved to another namespace): an rtnetlink socket
//! subscribed to link events of the capture's namespace reports each
//! `RTM_DELLINK` at once. When the kernel drops events (the socket buffer
//! overflowed), the caller checks every interface by index instead.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
};

/// `RTM_DELLINK` from linux/rtnetlink.h.
const RTM_DELLINK: u16 = 17;
/// `nlmsghdr` (16 bytes) then `ifinfomsg` (16 bytes; index at offset 4).
const NLMSG_HDR: usize = 16;
const IFINFO_INDEX: usize = NLMSG_HDR + 4;

/// What one read of the link socket found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct LinkEvents {
    /// Interface indexes deleted from the namespace.
    pub deleted: Vec<u32>,
    /// Events were dropped: check every interface with [`exists`].
    pub overflowed: bool,
}

/// A netlink socket receiving the namespace's link events (created in the
/// namespace the calling thread is in).
#[derive(Debug)]
pub(crate) struct LinkWatch {
    fd: OwnedFd,
}

impl LinkWatch {
    pub(crate) fn open() -> io::Result<Self> {
        // SAFETY: plain socket call; the fd is owned below.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = libc::RTMGRP_LINK as u32;
        // SAFETY: a valid address of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd })
    }

    /// Reads every pending message (non-blocking) and returns the deletions.
    pub(crate) fn read(&mut self) -> io::Result<LinkEvents> {
        let mut events = LinkEvents::default();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: a valid buffer of the given length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let error = io::Error::last_os_error();
                match error.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(events),
                    Some(libc::ENOBUFS) => events.overflowed = true,
                    Some(libc::EINTR) => {}
                    _ => return Err(error),
                }
                continue;
            }
            parse(&buf[..n as usize], &mut events.deleted);
        }
    }
}

/// Collects the indexes of `RTM_DELLINK` messages in one datagram.
fn parse(mut data: &[u8], deleted: &mut Vec<u32>) {
    while data.len() >= NLMSG_HDR {
        let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes(data[4..6].try_into().expect("2 bytes"));
        if len < NLMSG_HDR || len > data.len() {
            return;
        }
        if kind == RTM_DELLINK && len >= IFINFO_INDEX + 4 {
            let index = i32::from_ne_bytes(
                data[IFINFO_INDEX..IFINFO_INDEX + 4]
                    .try_into()
                    .expect("4 bytes"),
            );
            if let Ok(index) = u32::try_from(index) {
                deleted.push(index);
            }
        }
        // Messages are 4-byte aligned.
        let next = (len + 3) & !3;
        data = &data[next.min(data.len())..];
    }
}

impl AsRawFd for LinkWatch {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for LinkWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Whether an interface with this index exists in the current namespace.
pub(crate) fn exists(ifindex: u32) -> bool {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: a buffer of IF_NAMESIZE bytes, as if_indextoname requires.
    !unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr()) }.is_null()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, index: i32, extra: usize) -> Vec<u8> {
        let len = NLMSG_HDR + 16 + extra;
        let mut m = vec![0u8; (len + 3) & !3];
        m[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        m[4..6].copy_from_slice(&kind.to_ne_bytes());
        m[IFINFO_INDEX..IFINFO_INDEX + 4].copy_from_slice(&index.to_ne_bytes());
        m
    }

    #[test]
    fn finds_deletions_among_other_link_messages() {
        let mut data = message(16, 3, 5); // RTM_NEWLINK, unaligned length
        data.extend(message(RTM_DELLINK, 7, 0));
        data.extend(message(RTM_DELLINK, 9, 21));
        let mut deleted = Vec::new();
        parse(&data, &mut deleted);
        assert_eq!(deleted, [7, 9]);
        // A cut message ends the parse without panicking.
        let mut cut = message(RTM_DELLINK, 4, 0);
        cut.truncate(10);
        parse(&cut, &mut deleted);
        assert_eq!(deleted, [7, 9]);
    }

    #[test]
    fn loopback_exists_and_the_socket_opens() {
        assert!(exists(1));
        assert!(!exists(u32::MAX));
        let mut watch = LinkWatch::open().unwrap();
        assert_eq!(watch.read().unwrap(), LinkEvents::default());
    }
}
