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

pub(crate) mod audit;
pub(crate) mod capture;
pub mod catalog;
pub mod classify;
pub mod cli;
pub mod dns;
pub mod files;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod import;
pub mod lab;
pub(crate) mod metrics;
pub(crate) mod pipeline;
pub(crate) mod protocol;
pub mod report;
pub(crate) mod routes;
pub mod security;
pub mod storage;
pub mod topology;
pub mod verdict;
pub(crate) mod vocabulary;
