//! Lab: builds customer ASE topologies in network namespaces.
//!
//! | module | owns |
//! |---|---|
//! | [`cmd`] | the one checked way to run `ip`, `nft`, `sysctl` |
//! | [`netns`] | RAII namespaces, veth pairs, background processes |

pub mod cmd;
pub mod netns;
