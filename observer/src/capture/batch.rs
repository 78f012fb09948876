//! The batch map operations of Linux 5.6, which aya 0.14 does not wrap:
//! move every entry of a hash map out, and read or reset a whole per-CPU
//! array, in a few syscalls.

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, BorrowedFd},
};

use aya::Pod;

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_LOOKUP_AND_DELETE_BATCH: libc::c_long = 25;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

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

fn bpf_batch(cmd: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: `attr` is a valid `bpf_attr` batch member whose pointers the
    // callers set to buffers of `count` keys and values.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BatchAttr,
            size_of::<BatchAttr>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Reusable buffers for [`read_per_cpu_array`] and [`zero_per_cpu_array`]:
/// the indexes `0..slots` and one value per slot and possible CPU (`cpus`
/// is 1 for a plain array, whose batch operations carry one value per index).
#[derive(Debug)]
pub(super) struct PerCpuArrayBuffers<V> {
    indexes: Vec<u32>,
    values: Vec<V>,
    cpus: usize,
}

impl<V: Pod> PerCpuArrayBuffers<V> {
    pub(super) fn new(slots: u32, cpus: usize) -> Self {
        // The kernel lays per-CPU values out 8-byte aligned.
        const { assert!(size_of::<V>().is_multiple_of(8)) };
        Self {
            indexes: (0..slots).collect(),
            values: Vec::with_capacity(slots as usize * cpus),
            cpus,
        }
    }
}

/// Reads every slot of the per-CPU array `fd` on every CPU and hands each
/// value to `sink`. The map must not be written concurrently.
pub(super) fn read_per_cpu_array<V: Pod>(
    fd: BorrowedFd<'_>,
    buffers: &mut PerCpuArrayBuffers<V>,
    mut sink: impl FnMut(&V),
) -> io::Result<()> {
    let slots = buffers.indexes.len();
    let mut next: u32 = 0;
    let mut attr = BatchAttr {
        out_batch: (&raw mut next) as u64,
        keys: buffers.indexes.as_mut_ptr() as u64,
        values: buffers.values.as_mut_ptr() as u64,
        count: slots as u32,
        map_fd: fd.as_raw_fd() as u32,
        ..BatchAttr::default()
    };
    match bpf_batch(BPF_MAP_LOOKUP_BATCH, &mut attr) {
        Ok(()) => {}
        // The end of the array; the call still returned its entries.
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {}
        Err(error) => return Err(error),
    }
    if attr.count as usize != slots {
        return Err(io::Error::other(format!(
            "read {} of {slots} slots of a per-CPU array",
            attr.count
        )));
    }
    // SAFETY: the kernel wrote `slots` values for each possible CPU.
    unsafe { buffers.values.set_len(slots * buffers.cpus) };
    buffers.values.iter().for_each(&mut sink);
    // The kernel rewrote the indexes with the same values; keep them.
    buffers.values.clear();
    Ok(())
}

/// Resets every slot of the per-CPU array `fd` on every CPU to zeroes.
pub(super) fn zero_per_cpu_array<V: Pod>(
    fd: BorrowedFd<'_>,
    buffers: &mut PerCpuArrayBuffers<V>,
) -> io::Result<()> {
    let slots = buffers.indexes.len();
    // SAFETY: `V` is plain data, valid all-zero; the buffer holds that many.
    unsafe {
        std::ptr::write_bytes(buffers.values.as_mut_ptr(), 0, slots * buffers.cpus);
        buffers.values.set_len(slots * buffers.cpus);
    }
    let mut attr = BatchAttr {
        keys: buffers.indexes.as_mut_ptr() as u64,
        values: buffers.values.as_mut_ptr() as u64,
        count: slots as u32,
        map_fd: fd.as_raw_fd() as u32,
        ..BatchAttr::default()
    };
    let result = bpf_batch(BPF_MAP_UPDATE_BATCH, &mut attr);
    buffers.values.clear();
    result
}

/// Reusable key and value buffers for [`drain`].
#[derive(Debug)]
pub(super) struct BatchBuffers<K, V> {
    keys: Vec<K>,
    values: Vec<V>,
}

impl<K: Pod, V: Pod> BatchBuffers<K, V> {
    pub(super) fn new(chunk: usize) -> Self {
        Self {
            keys: Vec::with_capacity(chunk),
            values: Vec::with_capacity(chunk),
        }
    }
}

/// Moves every entry of the hash map `fd` into `sink`, deleting it. The map
/// must not be written concurrently for the drain to be complete.
pub(super) fn drain<K: Pod, V: Pod>(
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
        // The kernel fills the buffers and writes back how many in `count`.
        let error = bpf_batch(BPF_MAP_LOOKUP_AND_DELETE_BATCH, &mut attr).err();
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
