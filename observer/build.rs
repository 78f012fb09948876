//! Builds the kernel program (`observer-ebpf`) for the BPF target with
//! aya-build and leaves it in `OUT_DIR/observer` for `include_bytes_aligned!`.
//!
//! The pure pipeline stages (classification, routes, DNS, Parquet) must build
//! without the eBPF toolchain, so when bpf-linker or nightly's rust-src is
//! missing this writes an empty object and warns; `observer run` then says
//! how to get a full build. `cargo xtask` sets `OBSERVER_REQUIRE_EBPF=1`,
//! which turns the missing toolchain into a build error instead.
//!
//! Without the `capture` feature (the Python wheel's build) there is no
//! kernel program to build and this does nothing.

fn main() -> anyhow::Result<()> {
    #[cfg(feature = "capture")]
    return ebpf::build();
    #[cfg(not(feature = "capture"))]
    Ok(())
}

#[cfg(feature = "capture")]
mod ebpf {
    use std::{env, fs, path::PathBuf, process::Command};

    use anyhow::{Context as _, bail};

    const REQUIRE: &str = "OBSERVER_REQUIRE_EBPF";

    pub(super) fn build() -> anyhow::Result<()> {
        println!("cargo:rerun-if-env-changed={REQUIRE}");
        println!("cargo:rerun-if-env-changed=PATH");
        let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
        let ebpf_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../observer-ebpf");

        // `cargo fuzz` (cfg `fuzzing`) drives the parsers only; the kernel
        // program would be built with the sanitizer's flags for nothing.
        if env::var_os("CARGO_CFG_FUZZING").is_some() {
            fs::write(out_dir.join("observer"), [])?;
            return Ok(());
        }

        if let Some(missing) = missing_toolchain() {
            if env::var_os(REQUIRE).is_some_and(|v| v == "1") {
                bail!("cannot build the eBPF program: {missing}; `cargo xtask` installs it");
            }
            println!(
                "cargo:warning=building observer without its eBPF program ({missing}); \
             `observer run` will refuse to start. Run any `cargo xtask` command to install the toolchain."
            );
            fs::write(out_dir.join("observer"), [])?;
            return Ok(());
        }

        let ebpf_dir = ebpf_dir.canonicalize()?;
        let package = aya_build::Package {
            name: "observer-ebpf",
            root_dir: ebpf_dir.to_str().context("non-UTF-8 path")?,
            ..Default::default()
        };
        aya_build::build_ebpf([package], aya_build::Toolchain::default())
    }

    /// Names the missing piece of the eBPF toolchain, if any.
    fn missing_toolchain() -> Option<String> {
        let linker = which::which("bpf-linker");
        if let Ok(path) = &linker {
            println!("cargo:rerun-if-changed={}", path.display());
        }
        if linker.is_err() {
            return Some("bpf-linker is not installed".into());
        }
        let sysroot = Command::new("rustup")
            .args(["run", "nightly", "rustc", "--print", "sysroot"])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        match sysroot {
            None => Some("the nightly toolchain is not installed".into()),
            Some(root) if !root.join("lib/rustlib/src/rust/library/core").is_dir() => {
                Some("nightly's rust-src component is not installed".into())
            }
            Some(_) => None,
        }
    }
}
