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
//! | Parquet schema, writer, reader | [`files`] |
//! | command line | [`cli`] |

pub mod capture;
pub mod cli;
pub mod files;
pub mod flow;
pub mod pipeline;
