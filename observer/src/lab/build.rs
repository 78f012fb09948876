//! A topology file built into network namespaces, one per role, joined by
//! veth pairs: the ASE subnet is a real L2 segment; every other link is a
//! /30 transit in 169.254.0.0/16 (link-local, never routed anywhere else).
//!
//! [`Lab`] owns the lifecycle: it removes stale labs of killed runs, reads
//! the [`Plan`], starts the lab's [`Guard`] (ephemeral labs), creates the
//! namespaces ([`Fabric`]) and the runtime directory, runs the build steps
//! in order (each a module of its own that reads the plan and acts on the
//! fabric), keeps the helpers ([`Helpers`]) and tears everything down on
//! drop, also after a failed step. A new role adds its variant in
//! [`Role`], its namespace in [`Plan::new`] and its step in
//! [`Lab::create`].
//!
//! A lab is live while it exists: every app instance has a resolver
//! configuration naming the topology's DNS servers, and every backend,
//! private endpoint, public endpoint and on-premises host is served for
//! the lab's whole life.

use std::{net::Ipv4Addr, path::PathBuf};

use anyhow::Context as _;

use crate::{
    lab::{
        appliance, azure_dns, custom_dns, edges,
        fabric::Fabric,
        helpers::{Helpers, LabOptions},
        inbound,
        netns::{self, Netns},
        plan::{EPHEMERAL_PREFIX, Plan, Role},
        routing, servers,
        teardown::Guard,
        wiring,
    },
    topology::Topology,
};

/// A built lab. Dropping it tears everything down: processes first, then
/// the runtime directory, the namespaces, and last the guard (fields drop
/// in this order after [`Lab`]'s own `drop`).
#[derive(Debug)]
pub(crate) struct Lab {
    plan: Plan,
    /// dnsmasq and the servers.
    helpers: Helpers,
    /// The runtime directory, removed on drop unless the lab is kept.
    run_dir: Option<PathBuf>,
    fabric: Fabric,
    /// Removes the lab should this process die without dropping it.
    guard: Option<Guard>,
}

/// A step run once every interface of a lab exists, before its routes,
/// NAT, ACLs, DNS and servers: observers attach there, so their start-up
/// (BPF verification) overlaps the rest of the build.
pub(crate) type AfterLinks<'a> = &'a mut dyn FnMut(&Lab) -> anyhow::Result<()>;

impl Lab {
    /// Builds `topology` as an ephemeral lab with a unique name, running
    /// `after_links` once the interfaces exist.
    pub(crate) fn up_with(
        topology: &Topology,
        options: &LabOptions,
        after_links: AfterLinks<'_>,
    ) -> anyhow::Result<Self> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::build_with(
            topology,
            format!("{EPHEMERAL_PREFIX}-{}-{n}", std::process::id()),
            options,
            after_links,
        )
    }

    /// Builds `topology` under an exact base name (`lab up`).
    pub(crate) fn build(
        topology: &Topology,
        base: String,
        options: &LabOptions,
    ) -> anyhow::Result<Self> {
        Self::build_with(topology, base, options, &mut |_| Ok(()))
    }

    /// [`Lab::build`], running `after_links` once the interfaces exist.
    pub(crate) fn build_with(
        topology: &Topology,
        base: String,
        options: &LabOptions,
        after_links: AfterLinks<'_>,
    ) -> anyhow::Result<Self> {
        check_supported(topology)?;
        for name in netns::sweep_stale(EPHEMERAL_PREFIX) {
            tracing::info!("removed {name}, left by a killed lab");
        }
        let plan = Plan::new(topology.clone(), base);
        let context = || format!("building lab {}", plan.base);
        // First, so that nothing made below outlives a kill of this process.
        let guard = (!options.persistent)
            .then(|| Guard::start(&options.helper, &plan.base))
            .transpose()
            .with_context(context)?;
        let run_dir = plan.run_dir();
        std::fs::create_dir_all(&run_dir)
            .with_context(|| format!("creating {}", run_dir.display()))
            .with_context(context)?;
        let helpers = Helpers::new(options.clone(), run_dir.clone());
        let fabric = match Fabric::create(&plan) {
            Ok(fabric) => fabric,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&run_dir);
                return Err(anyhow::Error::new(error).context(context()));
            }
        };
        let mut lab = Self {
            plan,
            helpers,
            run_dir: Some(run_dir),
            fabric,
            guard,
        };
        // On error, `lab` drops here and removes what was made.
        lab.create(after_links)
            .with_context(|| format!("building lab {}", lab.plan.base))?;
        Ok(lab)
    }

    /// The steps, in order: links, then (after `after_links`) routes,
    /// NAT, ACLs, DNS, resolvers and servers.
    fn create(&mut self, after_links: AfterLinks<'_>) -> anyhow::Result<()> {
        let (plan, fabric) = (&self.plan, &self.fabric);
        wiring::ase_subnet(plan, fabric)?;
        wiring::router_legs(plan, fabric)?;
        appliance::wire(plan, fabric)?;
        after_links(self)?;

        let (plan, fabric, helpers) = (&self.plan, &self.fabric, &mut self.helpers);
        routing::router_table(plan, fabric)?;
        wiring::hosts(plan, fabric)?;
        edges::nat(plan, fabric)?;
        inbound::setup(plan, fabric)?;
        edges::acls(plan, fabric)?;
        azure_dns::start(plan, fabric, helpers)?;
        // Custom DNS servers before the resolvers that name them.
        custom_dns::start(plan, fabric, helpers)?;
        azure_dns::resolvers(plan, fabric)?;
        servers::start(plan, fabric, helpers)?;
        inbound::start_listener(plan, fabric, helpers)?;
        Ok(())
    }

    /// Keeps the namespaces, resolvers and helpers after this value is gone
    /// (`lab up`; `lab down` removes them).
    pub(crate) fn persist(mut self) {
        self.helpers.persist();
        self.fabric.persist();
        self.run_dir = None;
        if let Some(guard) = self.guard.take() {
            guard.disarm();
        }
    }

    pub(crate) fn topology(&self) -> &Topology {
        &self.plan.topology
    }

    /// The lab's name; its namespaces are `BASE-ROLE`.
    pub(crate) fn base(&self) -> &str {
        &self.plan.base
    }

    /// The namespaces of the app instances (the first runs `lab exec`'s
    /// command and the scenario traffic).
    pub(crate) fn workloads(&self) -> Vec<&Netns> {
        self.plan.apps().map(|r| self.ns(r)).collect()
    }

    /// Azure's internal DNS suffix as the lab hands it out (the search path).
    pub(crate) fn search_domain(&self) -> String {
        self.plan.search_domain()
    }

    pub(crate) fn ns(&self, role: Role) -> &Netns {
        self.fabric.ns(role)
    }

    pub(crate) fn has(&self, role: Role) -> bool {
        self.fabric.has(role)
    }

    pub(crate) fn namespace_names(&self) -> Vec<String> {
        self.fabric.names()
    }

    /// The address the internet edge SNATs to (the ASE's outbound VIP).
    pub(crate) fn vip(&self) -> Ipv4Addr {
        self.plan.vip()
    }

    /// Whether the app's public traffic bypasses the VNet (Route All off).
    pub(crate) fn bypasses_vnet(&self) -> bool {
        self.plan.bypasses_vnet()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.helpers.stop();
        // What the user's command left running in an app instance.
        let apps: Vec<String> = self
            .plan
            .apps()
            .filter(|&a| self.fabric.has(a))
            .map(|a| self.fabric.ns(a).name().to_string())
            .collect();
        netns::stop_processes_in(&apps, std::time::Duration::ZERO);
        if let Some(dir) = self.run_dir.take()
            && let Err(error) = std::fs::remove_dir_all(&dir)
        {
            eprintln!("lab: could not remove {}: {error}", dir.display());
        }
        // Then the fabric (namespaces, resolvers) and the guard drop.
    }
}

/// The lab supports what its namespaces can build.
fn check_supported(t: &Topology) -> anyhow::Result<()> {
    appliance::check_supported(t)?;
    custom_dns::check_supported(t)?;
    inbound::check_supported(t)?;
    Ok(())
}
