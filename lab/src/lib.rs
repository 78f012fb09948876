//! Lab: network-namespace fixtures and ASE topologies.
