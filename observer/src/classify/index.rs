//! The address index: what each address the topology names is (a backend on
//! its private or public address, a private endpoint on its private or
//! public address, a public endpoint), built once per classifier.

use std::net::Ipv4Addr;

use rustc_hash::FxHashMap;

use crate::topology::Topology;

/// What a known address is in the topology.
#[derive(Clone, Debug)]
pub(super) enum Known {
    Backend {
        name: String,
        private: Ipv4Addr,
        public: bool,
        in_ase_subnet: bool,
    },
    PrivateEndpoint {
        index: usize,
        public: bool,
    },
    Endpoint {
        fqdn: String,
    },
}

impl Known {
    /// The name the topology gives the address.
    pub(super) fn name<'a>(&'a self, topology: &'a Topology) -> &'a str {
        match self {
            Self::Backend { name, .. } => name,
            Self::PrivateEndpoint { index, .. } => &topology.private_endpoints[*index].fqdn,
            Self::Endpoint { fqdn } => fqdn,
        }
    }

    /// A resource of the customer's (a backend, a private endpoint), not a
    /// public endpoint that may be a dependency.
    pub(super) fn is_resource(&self) -> bool {
        matches!(self, Self::Backend { .. } | Self::PrivateEndpoint { .. })
    }
}

/// Every address the topology names; later entries win (a backend's
/// address over an endpoint's).
pub(super) fn known(topology: &Topology) -> FxHashMap<Ipv4Addr, Known> {
    let ase = topology.ase_subnet().prefix;
    let mut known = FxHashMap::default();
    for e in &topology.endpoints {
        known.insert(
            e.address,
            Known::Endpoint {
                fqdn: e.fqdn.clone(),
            },
        );
    }
    for (index, pe) in topology.private_endpoints.iter().enumerate() {
        known.insert(
            pe.private_ip,
            Known::PrivateEndpoint {
                index,
                public: false,
            },
        );
        known.insert(
            pe.public_ip,
            Known::PrivateEndpoint {
                index,
                public: true,
            },
        );
    }
    for b in &topology.backends {
        let name = b.fqdn.clone().unwrap_or_else(|| b.name.clone());
        let entry = |public| Known::Backend {
            name: name.clone(),
            private: b.private_ip,
            public,
            in_ase_subnet: ase.contains(&b.private_ip),
        };
        known.insert(b.private_ip, entry(false));
        if let Some(public) = b.public_ip {
            known.insert(public, entry(true));
        }
    }
    known
}
