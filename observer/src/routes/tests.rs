use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::topology::Topology;

fn topology(extra: &str) -> Topology {
    let text = format!(
        r#"
name = "t"
environment = "asev2-external"
[vnet]
name = "vnet"
address_space = ["10.0.0.0/16"]
[[vnet.subnet]]
name = "ase"
prefix = "10.0.0.0/24"
role = "ase"
service_endpoints = ["Microsoft.Sql"]
[[service_tag]]
name = "Sql"
prefixes = ["198.51.100.0/24"]
[[service_tag]]
name = "AzureCloud"
prefixes = ["198.51.0.0/16"]
[[service_tag]]
name = "AppServiceManagement"
prefixes = ["203.0.113.0/28"]
{extra}
"#
    );
    Topology::parse(Path::new("t.toml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

const FORCED_TUNNEL: &str = r#"
[onprem]
gateway = "expressroute"
prefixes = ["192.168.0.0/16"]
advertises = ["0.0.0.0/0", "10.0.5.0/24"]
"#;

fn hop(t: &Topology, dst: &str) -> (NextHop, Source, String) {
    let d = EffectiveRoutes::build(t).lookup(dst.parse().unwrap());
    (
        d.chosen.next_hop,
        d.chosen.source,
        d.chosen.prefix.to_string(),
    )
}

#[test]
fn system_routes_follow_the_docs() {
    let t = topology("");
    assert_eq!(hop(&t, "10.0.1.6").0, NextHop::VnetLocal);
    assert_eq!(hop(&t, "8.8.8.8").0, NextHop::Internet);
    // RFC 1918 and 100.64/10 outside the VNet: None.
    assert_eq!(
        hop(&t, "10.9.0.1"),
        (NextHop::None, Source::Default, "10.0.0.0/8".into())
    );
    assert_eq!(hop(&t, "172.16.3.3").0, NextHop::None);
    assert_eq!(hop(&t, "100.64.0.1").0, NextHop::None);
    // The service endpoint on the subnet covers Sql's prefixes.
    assert_eq!(
        hop(&t, "198.51.100.7").0,
        NextHop::VirtualNetworkServiceEndpoint
    );
}

#[test]
fn vnet_ranges_replace_the_none_routes_they_contain() {
    let mut t = topology("");
    t.vnet.address_space = vec!["10.0.0.0/8".parse().unwrap()];
    assert_eq!(hop(&t, "10.9.0.1").0, NextHop::VnetLocal);
    let none_routes = EffectiveRoutes::build(&t)
        .routes()
        .iter()
        .filter(|r| r.next_hop == NextHop::None)
        .count();
    assert_eq!(none_routes, 3);
}

#[test]
fn forced_tunnel_bgp_default_beats_system_default_route() {
    let t = topology(FORCED_TUNNEL);
    assert_eq!(
        hop(&t, "8.8.8.8"),
        (
            NextHop::VirtualNetworkGateway,
            Source::VirtualNetworkGateway,
            "0.0.0.0/0".into()
        )
    );
    assert_eq!(hop(&t, "192.168.1.1").0, NextHop::VirtualNetworkGateway);
}

#[test]
fn udr_default_to_internet_wins_the_equal_prefix_tie() {
    let t = topology(&format!(
        "{FORCED_TUNNEL}\n[[route_table.route]]\nname = \"inet\"\nprefix = \"0.0.0.0/0\"\nnext_hop = \"Internet\"\n"
    ));
    let d = EffectiveRoutes::build(&t).lookup("8.8.8.8".parse().unwrap());
    assert_eq!(
        (d.chosen.next_hop, d.chosen.source),
        (NextHop::Internet, Source::User)
    );
    let whys: Vec<_> = d
        .beaten
        .iter()
        .map(|b| (b.route.source, b.why.clone()))
        .collect();
    assert!(
        whys.contains(&(
            Source::VirtualNetworkGateway,
            "same prefix; User routes beat VirtualNetworkGateway routes".into()
        )),
        "{whys:?}"
    );
    assert!(
        whys.contains(&(
            Source::Default,
            "same prefix; User routes beat Default routes".into()
        )),
        "{whys:?}"
    );
}

#[test]
fn vnet_system_route_beats_more_specific_bgp_route() {
    // 10.0.5.0/24 is advertised over BGP but lies in the VNet's 10.0.0.0/16.
    let t = topology(FORCED_TUNNEL);
    let d = EffectiveRoutes::build(&t).lookup("10.0.5.9".parse().unwrap());
    assert_eq!(d.chosen.next_hop, NextHop::VnetLocal);
    assert!(
        d.beaten
            .iter()
            .any(|b| b.route.prefix.to_string() == "10.0.5.0/24"
                && b.why.contains("BGP routes never override"))
    );
}

#[test]
fn more_specific_bgp_prefix_beats_the_udr_fix() {
    let t = topology(
        "[onprem]\ngateway = \"expressroute\"\nprefixes = [\"192.168.0.0/16\"]\nadvertises = [\"0.0.0.0/0\", \"8.0.0.0/8\"]\n\
         [[route_table.route]]\nname = \"inet\"\nprefix = \"0.0.0.0/0\"\nnext_hop = \"Internet\"\n",
    );
    assert_eq!(hop(&t, "8.8.8.8").0, NextHop::VirtualNetworkGateway);
    assert_eq!(hop(&t, "9.9.9.9").0, NextHop::Internet);
}

#[test]
fn propagation_off_ignores_bgp() {
    let mut t = topology(FORCED_TUNNEL);
    t.route_table.propagation = false;
    assert_eq!(hop(&t, "8.8.8.8").0, NextHop::Internet);
}

#[test]
fn service_tag_udrs_use_azure_tie_break() {
    let t = topology(
        "[[route_table.route]]\nname = \"mgmt\"\nservice_tag = \"AppServiceManagement\"\nnext_hop = \"Internet\"\n\
         [[route_table.route]]\nname = \"all\"\nprefix = \"0.0.0.0/0\"\nnext_hop = \"VirtualAppliance\"\nnext_hop_ip = \"10.0.3.4\"\n\
         [[route_table.route]]\nname = \"cloud\"\nservice_tag = \"AzureCloud\"\nnext_hop = \"None\"\n\
         [[route_table.route]]\nname = \"explicit\"\nprefix = \"198.51.0.0/16\"\nnext_hop = \"VirtualAppliance\"\nnext_hop_ip = \"10.0.3.5\"\n",
    );
    let routes = EffectiveRoutes::build(&t);
    let d = routes.lookup("203.0.113.5".parse().unwrap());
    assert_eq!(
        (d.chosen.next_hop, d.chosen.service_tag.as_deref()),
        (NextHop::Internet, Some("AppServiceManagement"))
    );
    let other = routes.lookup("203.0.114.5".parse().unwrap());
    assert_eq!(other.chosen.next_hop_ip, Some("10.0.3.4".parse().unwrap()));
    // Equal prefix 198.51.0.0/16: the explicit CIDR beats the AzureCloud tag.
    let d = routes.lookup("198.51.7.7".parse().unwrap());
    assert_eq!(d.chosen.next_hop_ip, Some("10.0.3.5".parse().unwrap()));
    assert!(
        d.beaten
            .iter()
            .any(|b| b.why == "same prefix; an explicit prefix beats a service tag")
    );
}

#[test]
fn route_all_off_keeps_public_traffic_out_of_the_vnet() {
    let mut t = topology(FORCED_TUNNEL);
    t.environment = crate::topology::Environment::MultiTenant;
    t.route_all = false;
    let routes = EffectiveRoutes::build(&t);
    let d = routes.lookup("8.8.8.8".parse().unwrap());
    assert!(d.bypasses_vnet);
    assert_eq!(d.chosen.next_hop, NextHop::Internet);
    // RFC 1918 still follows the VNet's table.
    assert_eq!(
        routes
            .lookup("192.168.1.1".parse().unwrap())
            .chosen
            .next_hop,
        NextHop::VirtualNetworkGateway
    );
    t.route_all = true;
    assert_eq!(
        EffectiveRoutes::build(&t)
            .lookup("8.8.8.8".parse().unwrap())
            .chosen
            .next_hop,
        NextHop::VirtualNetworkGateway
    );
}

/// Pairwise "a beats b" written straight from the rules, for the oracle.
fn beats(a: &Route, b: &Route, candidates: &[Route]) -> bool {
    let protected = candidates.iter().any(Route::protects_from_bgp);
    let a_out = protected && a.source == Source::VirtualNetworkGateway;
    let b_out = protected && b.source == Source::VirtualNetworkGateway;
    if a_out != b_out {
        return b_out;
    }
    if a.prefix.prefix_len() != b.prefix.prefix_len() {
        return a.prefix.prefix_len() > b.prefix.prefix_len();
    }
    let rank = |s: Source| match s {
        Source::User => 0,
        Source::VirtualNetworkGateway => 1,
        Source::Default => 2,
    };
    if a.source != b.source {
        return rank(a.source) < rank(b.source);
    }
    a.tag_rank.map_or(0, |r| r + 1) < b.tag_rank.map_or(0, |r| r + 1)
}

fn arb_route() -> impl Strategy<Value = Route> {
    (
        any::<u32>(),
        0u8..=32,
        0usize..3,
        0usize..5,
        proptest::option::of(0u8..4),
    )
        .prop_map(|(addr, len, source, hop, tag)| {
            let source = [Source::User, Source::VirtualNetworkGateway, Source::Default][source];
            let next_hop = [
                NextHop::VnetLocal,
                NextHop::Internet,
                NextHop::VirtualNetworkGateway,
                NextHop::None,
                NextHop::VnetPeering,
            ][hop];
            Route {
                prefix: Ipv4Net::new(Ipv4Addr::from(addr), len).unwrap().trunc(),
                source,
                next_hop,
                next_hop_ip: None,
                service_tag: tag
                    .filter(|_| source == Source::User)
                    .map(|r| format!("tag{r}")),
                tag_rank: tag.filter(|_| source == Source::User),
                origin: String::new(),
            }
        })
}

proptest! {
    #[test]
    fn selection_matches_a_brute_force_oracle(
        mut routes in proptest::collection::vec(arb_route(), 0..40),
        dst in any::<u32>(),
    ) {
        routes.push(Route { prefix: Ipv4Net::default(), source: Source::Default, next_hop: NextHop::Internet,
            next_hop_ip: None, service_tag: None, tag_rank: None, origin: String::new() });
        let dst = Ipv4Addr::from(dst);
        let table = EffectiveRoutes { routes: routes.clone(), route_all: true };
        let decision = table.lookup(dst);
        let candidates: Vec<Route> = routes.iter().filter(|r| r.prefix.contains(&dst)).cloned().collect();
        prop_assert!(decision.chosen.prefix.contains(&dst));
        // Nothing that matches beats the chosen route...
        for other in &candidates {
            prop_assert!(!beats(other, &decision.chosen, &candidates), "{other:?} beats {:?}", decision.chosen);
        }
        // ...and every matching route is either chosen or reported as beaten.
        prop_assert_eq!(decision.beaten.len() + 1, candidates.len());
    }
}
