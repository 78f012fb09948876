//! The parse error shared by the crate's name vocabularies: enums whose
//! names are derived by strum (`EnumString`, `IntoStaticStr`,
//! `VariantNames`) name themselves here once ([`Vocabulary::WHAT`]) and get
//! one error text that says what was given and lists every valid name.
//!
//! ```text
//! #[derive(strum::EnumString, strum::IntoStaticStr, strum::VariantNames)]
//! #[strum(parse_err_ty = String, parse_err_fn = crate::vocabulary::unknown::<Self>)]
//! ```

/// An enum of names (`direction`, `next hop`) for [`unknown`].
pub(crate) trait Vocabulary: strum::VariantNames {
    /// What one value is, in words: `direction`, `next hop`.
    const WHAT: &'static str;
}

/// ``unknown direction `x` (ingress or egress)``: the error of parsing a
/// name of `T`.
pub(crate) fn unknown<T: Vocabulary>(given: &str) -> String {
    format!("unknown {} `{given}` ({})", T::WHAT, one_of(T::VARIANTS))
}

/// `a`, `a or b`, `a, b or c`.
pub(crate) fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use strum::VariantArray;

    use super::*;
    use crate::{
        audit::Check,
        classify::{Category, FlowType},
        dns::DnsVerdict,
        files::sink::Partition,
        routes,
        topology::{Access, Cloud, Environment, NextHop, RuleDirection, RuleProtocol},
    };

    /// Every variant's name, in declaration order.
    fn names<T: VariantArray + Copy + Into<&'static str>>() -> Vec<&'static str> {
        T::VARIANTS.iter().map(|&v| v.into()).collect()
    }

    /// The names files, reports and error messages hold are the ones they
    /// held before the names were derived (the `flow` enums are pinned in
    /// `flow`'s tests).
    #[test]
    fn every_vocabulary_keeps_its_names() {
        assert_eq!(
            names::<Category>(),
            [
                "vnet",
                "ase-internal",
                "private-endpoint",
                "onprem",
                "dependency",
                "dns",
                "internet",
                "unknown"
            ]
        );
        assert_eq!(
            names::<FlowType>(),
            [
                "IntraVNet",
                "InterVNet",
                "S2S",
                "AzurePublic",
                "ExternalPublic",
                "UnknownPrivate",
                "Unknown"
            ]
        );
        assert_eq!(
            names::<DnsVerdict>(),
            [
                "ok",
                "unexpected-server",
                "privatelink-public",
                "nxdomain-dependency"
            ]
        );
        assert_eq!(
            names::<NextHop>(),
            [
                "VnetLocal",
                "VnetPeering",
                "VirtualNetworkServiceEndpoint",
                "VirtualNetworkGateway",
                "VirtualAppliance",
                "Internet",
                "None"
            ]
        );
        assert_eq!(names::<Cloud>(), ["public", "china", "usgov"]);
        assert_eq!(
            names::<Environment>(),
            [
                "asev1",
                "asev2-external",
                "asev2-ilb",
                "asev3",
                "multi-tenant"
            ]
        );
        assert_eq!(names::<RuleDirection>(), ["Inbound", "Outbound"]);
        assert_eq!(names::<Access>(), ["Allow", "Deny"]);
        assert_eq!(names::<RuleProtocol>(), ["Tcp", "Udp", "Icmp", "*"]);
        assert_eq!(
            names::<routes::Source>(),
            ["User", "VirtualNetworkGateway", "Default"]
        );
        assert_eq!(
            names::<Check>(),
            [
                "outbound",
                "inbound",
                "asymmetric-route",
                "udr-beaten-by-bgp",
                "private-endpoint-dns",
                "custom-dns"
            ]
        );
        assert_eq!(
            Partition::VARIANTS,
            [Partition::None, Partition::Day, Partition::Hour]
        );
    }

    /// Display, serde and the derived names agree where a type has several.
    #[test]
    fn display_and_serde_say_the_same_names() {
        for &h in NextHop::VARIANTS {
            assert_eq!(h.to_string(), h.as_str());
            assert_eq!(h.as_str().parse::<NextHop>(), Ok(h));
            assert_eq!(serde_json::to_value(h).unwrap(), h.as_str());
        }
        for &c in Check::VARIANTS {
            let name: &str = c.into();
            assert_eq!(c.to_string(), name);
            assert_eq!(serde_json::to_value(c).unwrap(), name);
        }
        for &d in RuleDirection::VARIANTS {
            assert_eq!(d.to_string(), d.as_str());
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        }
        for &a in Access::VARIANTS {
            assert_eq!(a.to_string(), a.as_str());
        }
        for &v in DnsVerdict::VARIANTS {
            assert_eq!(v.to_string(), v.as_str());
            assert_eq!(v.as_str().parse::<DnsVerdict>(), Ok(v));
        }
        for &c in Category::VARIANTS {
            assert_eq!(c.as_str().parse::<Category>(), Ok(c));
        }
        for &t in FlowType::VARIANTS {
            assert_eq!(t.as_str().parse::<FlowType>(), Ok(t));
        }
        // The TOML names of clouds and environments (serde) are the derived ones.
        #[derive(serde::Deserialize)]
        struct Names {
            cloud: Cloud,
            environment: Environment,
        }
        for &c in Cloud::VARIANTS {
            for &e in Environment::VARIANTS {
                let text = format!(
                    "cloud = \"{}\"\nenvironment = \"{}\"",
                    c.as_str(),
                    e.as_str()
                );
                let n: Names = toml::from_str(&text).unwrap();
                assert_eq!((n.cloud, n.environment), (c, e));
            }
        }
    }

    #[test]
    fn unknown_names_say_what_is_valid() {
        assert_eq!(
            "Moon".parse::<NextHop>().unwrap_err(),
            "unknown next hop `Moon` (VnetLocal, VnetPeering, VirtualNetworkServiceEndpoint, VirtualNetworkGateway, VirtualAppliance, Internet or None)"
        );
        assert_eq!(
            "leaky".parse::<DnsVerdict>().unwrap_err(),
            "unknown DNS verdict `leaky` (ok, unexpected-server, privatelink-public or nxdomain-dependency)"
        );
    }

    #[test]
    fn lists_read_as_prose() {
        assert_eq!(one_of(&[]), "");
        assert_eq!(one_of(&["a"]), "a");
        assert_eq!(one_of(&["a", "b"]), "a or b");
        assert_eq!(one_of(&["a", "b", "c"]), "a, b or c");
    }
}
