//! Empty on purpose: `observer` lists this crate as a build-dependency so
//! cargo rebuilds the userspace when the kernel program changes. The program
//! itself is the `observer` binary target (`src/main.rs`), built for the BPF
//! target by `observer/build.rs`.
#![no_std]
