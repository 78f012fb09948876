//! Rebuild the kernel program when bpf-linker changes (it does the codegen),
//! and let its codegen load unaligned words: the parser reads the IP
//! addresses and ports as whole words straight from the packet, where the
//! kernel allows unaligned loads (the stack and the context it does not, so
//! the program keeps its stack buffers in aligned words).
fn main() {
    println!("cargo:rustc-link-arg=--cpu-features=+allows-misaligned-mem-access");
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
