//! What `observer run` was asked to do, and how a run fails.

use std::{io, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use thiserror::Error;

use crate::{
    capture::{
        CaptureConfig, CaptureError, InterfaceSpec, iface::InterfaceError, netns::NetnsError,
        privileges::PrivilegeError,
    },
    classify::Classifier,
    files::WriteError,
    flow::TableConfig,
    metrics::MetricsError,
};

/// Everything `observer run` was asked to do.
#[derive(Clone, Debug)]
pub(crate) struct RunOptions {
    pub interfaces: Vec<InterfaceSpec>,
    pub netns: Option<String>,
    pub out: PathBuf,
    pub duration: Option<Duration>,
    pub table: TableConfig,
    pub capture: CaptureConfig,
    pub drain_interval: Duration,
    pub flush_interval: Duration,
    /// `None` with `--quiet`.
    pub status_interval: Option<Duration>,
    /// Written once every interface is attached (for scripts and tests).
    pub ready_file: Option<PathBuf>,
    /// Classifies records before they are written (`--topology`).
    pub classifier: Option<Arc<Classifier>>,
    /// (client, address) pairs the DNS tracker keeps.
    pub dns_capacity: usize,
    /// Serve Prometheus metrics on this address (`--metrics`).
    pub metrics: Option<SocketAddr>,
}

#[derive(Debug, Error)]
pub(crate) enum RunError {
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Interface(#[from] InterfaceError),
    #[error(transparent)]
    Output(#[from] WriteError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("cannot {what}")]
    Io {
        what: &'static str,
        source: io::Error,
    },
}
