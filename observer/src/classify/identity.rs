//! Who the remote end is: its [`Category`] (what the ASE talks to) and its
//! Traffic Analytics [`FlowType`] (where the address lives).

use std::net::IpAddr;

use super::{Category, Classifier, FlowType, Known};
use crate::{
    catalog::Dependency,
    protocol::DNS_PORT,
    topology::{AZURE_DNS, is_public},
};

impl Classifier {
    /// A resource the topology names first, then DNS, the subnet itself,
    /// the VNet and on-premises, a dependency, else public or unknown.
    pub(super) fn category(
        &self,
        remote: IpAddr,
        port: Option<u16>,
        known: Option<&Known>,
        dependency: Option<&Dependency>,
    ) -> Category {
        let t = &self.topology;
        let v4 = match remote {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        };
        match known {
            Some(Known::Backend { .. }) => return Category::Vnet,
            Some(Known::PrivateEndpoint { .. }) => return Category::PrivateEndpoint,
            _ => {}
        }
        if port == Some(DNS_PORT) {
            return Category::Dns;
        }
        if let Some(v4) = v4 {
            if t.ase_subnet().prefix.contains(&v4) {
                return Category::AseInternal;
            }
            if dependency.is_none() && (t.in_vnet(v4) || t.in_peering(v4)) {
                return Category::Vnet;
            }
            if dependency.is_none() && t.in_onprem(v4) {
                return Category::Onprem;
            }
        }
        if dependency.is_some() {
            Category::Dependency
        } else if is_public(remote) {
            Category::Internet
        } else {
            Category::Unknown
        }
    }

    pub(super) fn flow_type(
        &self,
        remote: IpAddr,
        category: Category,
        known: Option<&Known>,
        dependency: Option<&Dependency>,
    ) -> FlowType {
        let t = &self.topology;
        if let IpAddr::V4(v4) = remote {
            if t.in_vnet(v4) {
                return FlowType::IntraVNet;
            }
            if t.in_peering(v4) {
                return FlowType::InterVNet;
            }
            if t.in_onprem(v4) {
                return FlowType::S2S;
            }
            if v4 == AZURE_DNS {
                return FlowType::AzurePublic;
            }
        }
        if is_public(remote) {
            let azure = known.is_some_and(Known::is_resource)
                || dependency.is_some()
                || t.service_tags.owner(remote).is_some();
            return if azure {
                FlowType::AzurePublic
            } else {
                FlowType::ExternalPublic
            };
        }
        if category == Category::Unknown {
            FlowType::UnknownPrivate
        } else {
            FlowType::Unknown
        }
    }
}
