//! `BPF_MAP_LOOKUP_AND_DELETE_BATCH` (Linux 5.6), which aya 0.14 does not
//! wrap: moves every entry of a hash map out in a few syscalls.

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, BorrowedFd},
};

use aya::Pod;

const BPF_MAP_LOOKUP_AND_DELETE_BATCH: libc::c_long = 25;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Reusable key and value buffers for [`drain`].
#[derive(Debug)]
pub struct BatchBuffers<K, V> {
    keys: Vec<K>,
    values: Vec<V>,
}

impl<K: Pod, V: Pod> BatchBuffers<K, V> {
    pub fn new(chunk: usize) -> Self {
        Self {
            keys: Vec::with_capacity(chunk),
            values: Vec::with_capacity(chunk),
        }
    }
}

/// Moves every entry of the hash map `fd` into `sink`, deleting it. The map
/// must not be written concurrently for the drain to be complete.
pub fn drain<K: Pod, V: Pod>(
    fd: BorrowedFd<'_>,
    buffers: &mut BatchBuffers<K, V>,
    mut sink: impl FnMut(&K, &V),
) -> io::Result<usize> {
    let mut cursor: u64 = 0;
    let mut next: u64 = 0;
    let mut started = false;
    let mut total = 0;
    loop {
        let chunk = buffers.keys.capacity().min(buffers.values.capacity());
        let mut attr = BatchAttr {
            in_batch: if started {
                (&raw const cursor) as u64
            } else {
                0
            },
            out_batch: (&raw mut next) as u64,
            keys: buffers.keys.as_mut_ptr() as u64,
            values: buffers.values.as_mut_ptr() as u64,
            count: u32::try_from(chunk).unwrap_or(u32::MAX),
            map_fd: fd.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` points at buffers of `count` keys and values, which
        // the kernel fills; it writes back how many in `count`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_AND_DELETE_BATCH,
                &raw mut attr,
                size_of::<BatchAttr>(),
            )
        };
        let error = (rc < 0).then(io::Error::last_os_error);
        let returned = (attr.count as usize).min(chunk);
        // SAFETY: the kernel initialised the first `returned` elements.
        unsafe {
            buffers.keys.set_len(returned);
            buffers.values.set_len(returned);
        }
        for (key, value) in buffers.keys.iter().zip(&buffers.values) {
            sink(key, value);
        }
        total += returned;
        buffers.keys.clear();
        buffers.values.clear();
        match error.as_ref().and_then(io::Error::raw_os_error) {
            None => {
                started = true;
                cursor = next;
            }
            // Done; the last call may still have returned entries.
            Some(libc::ENOENT) => return Ok(total),
            // One hash bucket holds more entries than fit: grow and retry.
            Some(libc::ENOSPC) => {
                buffers.keys.reserve(chunk * 2);
                buffers.values.reserve(chunk * 2);
            }
            Some(_) => return Err(error.expect("error set")),
        }
    }
}
