//! observer: an eBPF flow observer for Azure App Service Environment network
//! labs. It captures every flow on the interfaces it watches, classifies it
//! by the ASE's documented dependencies and Azure's routing rules, flags
//! traffic that leaks to the internet, and writes Parquet.
//!
//! The pipeline, one module per stage:
//!
//! | stage | module |
//! |---|---|
//! | load, attach, drain the kernel program | [`capture`] |
//! | per-flow accumulation and end reasons | [`flow`] |
//! | the live loop of `observer run` | [`pipeline`] |
//! | live Prometheus metrics of a run | [`metrics`] |
//! | DNS answers to names per flow | [`dns`] |
//! | the customer's network, from its TOML file | [`topology`] |
//! | Azure route selection | `routes` |
//! | NSG evaluation (IP flow verify, effective rules) | [`security`] |
//! | the static audit of `observer check` | `audit` |
//! | documented ASE dependencies (data) | [`catalog`] |
//! | category, expected/observed path, verdict | [`classify`] |
//! | the verdict vocabulary (below topology and classify) | [`verdict`] |
//! | IP protocols and shared ports (a leaf below every stage) | `protocol` |
//! | the parse error of the name vocabularies (strum) | `vocabulary` |
//! | Parquet schema, writer, reader | [`files`] |
//! | local or `az://` paths | [`storage`] |
//! | Azure flow logs and pcaps into flow records | [`import`] |
//! | summaries for people and CI | [`report`] |
//! | topologies in network namespaces, scenario traffic | [`lab`] |
//! | command line | [`cli`] |
//!
//! `capture`, `pipeline`, `metrics`, `lab` and `cli` (and the binary) are
//! the capture side, behind the default `capture` feature; without it the
//! library builds with stable Rust alone (no kernel program), as the
//! Python wheel (`observer-py`) uses it.

#![cfg_attr(
    not(feature = "capture"),
    expect(
        dead_code,
        reason = "without the capture side, what only the command line uses (the audit of \
                  `check`, the tables of `route` and `nsg`) has no caller"
    )
)]
#![cfg_attr(
    all(not(feature = "capture"), not(test)),
    expect(
        unused_imports,
        reason = "without the capture side (and its tests), re-exports only the command line \
                  uses have no user"
    )
)]

pub(crate) mod audit;
#[cfg(feature = "capture")]
pub(crate) mod capture;
pub mod catalog;
pub mod classify;
#[cfg(feature = "capture")]
pub mod cli;
pub mod dns;
pub mod files;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod import;
#[cfg(feature = "capture")]
pub mod lab;
#[cfg(feature = "capture")]
pub(crate) mod metrics;
#[cfg(feature = "capture")]
pub(crate) mod pipeline;
pub(crate) mod protocol;
pub mod report;
pub(crate) mod routes;
pub mod security;
pub mod storage;
pub mod topology;
pub mod verdict;
pub(crate) mod vocabulary;
