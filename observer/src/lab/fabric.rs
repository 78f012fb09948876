//! The lab's namespaces by role, and the primitives every build step uses
//! on them: a veth link with its transit addresses, an address, a route,
//! an nftables ruleset. Dropping the fabric deletes the namespaces in
//! reverse order (veths and routes go with them) and their resolver
//! configuration, also when a build stops half-way.

use crate::lab::{
    cmd,
    netns::{Netns, NetnsError, remove_netns_etc, veth},
    plan::{Plan, Role},
};

/// One namespace per role of a plan.
#[derive(Debug)]
pub(crate) struct Fabric {
    namespaces: Vec<(Role, Netns)>,
}

impl Fabric {
    /// Creates the namespace of every role of `plan`, in parallel; on
    /// error the ones made are deleted.
    pub(crate) fn create(plan: &Plan) -> Result<Self, NetnsError> {
        // One thread per namespace: each is a few `ip`/`sysctl` process
        // starts that do not depend on the others. A namespace whose
        // setting failed is deleted by its own drop; the made ones drop
        // with `made` when another failed.
        let made: Vec<Result<(Role, Netns), NetnsError>> = std::thread::scope(|scope| {
            let threads: Vec<_> = plan
                .roles()
                .iter()
                .map(|&role| {
                    scope.spawn(move || {
                        let ns = Netns::create(plan.namespace(role))?;
                        if role.forwards() {
                            ns.sysctl("net.ipv4.ip_forward", "1")?;
                        }
                        Ok((role, ns))
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("a namespace thread panicked"))
                .collect()
        });
        let mut fabric = Self {
            namespaces: Vec::with_capacity(made.len()),
        };
        let mut error = None;
        for result in made {
            match result {
                Ok(pair) => fabric.namespaces.push(pair),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        match error {
            // `fabric` drops: the namespaces made are deleted.
            Some(e) => Err(e),
            None => Ok(fabric),
        }
    }

    /// The namespace of `role`; the plan decides which roles exist, so a
    /// missing one is a bug in a build step.
    pub(crate) fn ns(&self, role: Role) -> &Netns {
        &self
            .namespaces
            .iter()
            .find(|(r, _)| *r == role)
            .unwrap_or_else(|| panic!("lab has no {role} namespace"))
            .1
    }

    pub(crate) fn has(&self, role: Role) -> bool {
        self.namespaces.iter().any(|(r, _)| *r == role)
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .map(|(_, n)| n.name().to_string())
            .collect()
    }

    /// A veth `a:a_if` <-> `b:b_if` with the transit pair (`near` on `a`);
    /// with `default`, `b` routes everything back through `near`.
    pub(crate) fn link(
        &self,
        (a, a_if): (Role, &str),
        (b, b_if): (Role, &str),
        (near, far): (&str, &str),
        default: bool,
    ) -> Result<(), NetnsError> {
        veth(self.ns(a), a_if, self.ns(b), b_if)?;
        self.addr(a, a_if, &format!("{near}/30"))?;
        self.addr(b, b_if, &format!("{far}/30"))?;
        if default {
            self.route(b, &["default", "via", near])?;
        }
        Ok(())
    }

    /// Adds `cidr` to `iface` of `role` and sets the interface up.
    pub(crate) fn addr(&self, role: Role, iface: &str, cidr: &str) -> Result<(), NetnsError> {
        let ns = self.ns(role);
        ns.ip(["addr", "add", cidr, "dev", iface])?;
        ns.ip(["link", "set", iface, "up"])?;
        Ok(())
    }

    /// `ip route replace ARGS...` in `role`.
    pub(crate) fn route(&self, role: Role, args: &[&str]) -> Result<(), NetnsError> {
        let mut full = vec!["route", "replace"];
        full.extend_from_slice(args);
        self.ns(role).ip(full)?;
        Ok(())
    }

    /// Loads an nftables ruleset in `role`.
    pub(crate) fn nft(&self, role: Role, script: &str) -> Result<(), NetnsError> {
        Ok(cmd::nft_script(self.ns(role).name(), script)?)
    }

    /// Leaves the namespaces in place after this value is gone (a kept lab).
    pub(crate) fn persist(&mut self) {
        for (_, ns) in self.namespaces.drain(..) {
            std::mem::forget(ns);
        }
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        // Reverse order; veths and routes go with the namespaces.
        while let Some((_, ns)) = self.namespaces.pop() {
            remove_netns_etc(ns.name());
            drop(ns);
        }
    }
}
