//! `observer_py.import_flow_logs` and `observer_py.hour_prefixes`: the
//! import of `observer import` (the library's [`observer::import::run`]),
//! reading and writing local paths or `az://` itself, its outcome as a
//! dict; and the blob-hour prefixes a distributed import schedules. Both
//! run with the GIL released.

use std::path::PathBuf;

use clap::ValueEnum as _;
use observer::{
    files::sink::Partition,
    import::{
        Kind, Window, parse_time,
        run::{self, Options},
    },
    storage::Location,
};
use pyo3::{
    prelude::*,
    types::{PyDict, PyList},
};

use crate::{ObserverError, classifier::error_chain};

fn kind(text: &str) -> PyResult<Kind> {
    Kind::from_str(text, true).map_err(|_| {
        let known: Vec<String> = Kind::value_variants()
            .iter()
            .filter_map(|k| k.to_possible_value().map(|v| v.get_name().to_owned()))
            .collect();
        ObserverError::new_err(format!(
            "unknown import kind `{text}`: use one of {}",
            known.join(", ")
        ))
    })
}

fn window(since: Option<&str>, until: Option<&str>) -> PyResult<Window> {
    let time = |t: Option<&str>, name: &str| {
        t.map(parse_time)
            .transpose()
            .map_err(|e| ObserverError::new_err(format!("{name}: {e}")))
    };
    Ok(Window {
        since_ns: time(since, "since")?,
        until_ns: time(until, "until")?,
    })
}

/// The blob-hour prefixes (`.../y=/m=/d=/h=HH`) of `inputs` that meet
/// `since`/`until`, sorted: one unit of work each (an input with files
/// outside Azure's layout is one unit itself).
#[pyfunction]
#[pyo3(signature = (inputs, kind = "azure-vnet-flow-log", since = None, until = None))]
pub(crate) fn hour_prefixes(
    py: Python<'_>,
    inputs: Vec<String>,
    kind: &str,
    since: Option<&str>,
    until: Option<&str>,
) -> PyResult<Vec<String>> {
    let kind = self::kind(kind)?;
    let window = window(since, until)?;
    py.detach(|| run::hour_prefixes(kind, &inputs, window))
        .map_err(|e| ObserverError::new_err(error_chain(&e)))
}

/// `observer import KIND INPUTS --out OUT`: converts the inputs (local
/// paths or `az://CONTAINER/PREFIX`) to flow records, classified when
/// `topology` is given, and writes them to `out` (local or `az://`),
/// partitioned by `partition` (`none`, `day`, `hour`). `run_id` names the
/// output files (`flows-RUN_ID-N.parquet`): runs writing to one output
/// need distinct ones. Returns a dict: `files`, `records_in`,
/// `records_out`, `skipped`, `problems` (the first ones, located),
/// `problem_count`, `written_rows`, `files_written` (relative to `out`),
/// `verdicts` (per verdict, with a topology).
#[pyfunction]
#[pyo3(signature = (
    inputs, out, kind = "azure-vnet-flow-log", partition = "hour", topology = None,
    catalogs = Vec::new(), since = None, until = None, run_id = None,
))]
#[expect(
    clippy::too_many_arguments,
    reason = "a Python function with keyword arguments"
)]
pub(crate) fn import_flow_logs<'py>(
    py: Python<'py>,
    inputs: Vec<String>,
    out: String,
    kind: &str,
    partition: &str,
    topology: Option<PathBuf>,
    catalogs: Vec<PathBuf>,
    since: Option<&str>,
    until: Option<&str>,
    run_id: Option<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let kind = self::kind(kind)?;
    let window = window(since, until)?;
    let partition: Partition = partition
        .parse()
        .map_err(|e: String| ObserverError::new_err(e))?;
    let outcome = py
        .detach(|| -> Result<run::Outcome, String> {
            let classifier = match &topology {
                Some(path) => Some(
                    observer::classify::Classifier::load(path, &catalogs)
                        .map_err(|e| error_chain(&e))?,
                ),
                None => None,
            };
            let options = Options {
                kind,
                inputs,
                out: Location::parse(&out).map_err(|e| error_chain(&e))?,
                partition,
                window,
                classifier: classifier.as_ref(),
                pcap: Default::default(),
                batch_rows: Options::BATCH_ROWS,
                run_id: run_id.unwrap_or_else(Options::run_id_now),
            };
            run::run(&options).map_err(|e| error_chain(&e))
        })
        .map_err(ObserverError::new_err)?;
    let summary = &outcome.summary;
    let dict = PyDict::new(py);
    dict.set_item("files", summary.files)?;
    dict.set_item("records_in", summary.records_in)?;
    dict.set_item("records_out", summary.records_out)?;
    dict.set_item("skipped", summary.skipped_total())?;
    dict.set_item(
        "problems",
        PyList::new(py, summary.problems.iter().map(ToString::to_string))?,
    )?;
    dict.set_item("problem_count", summary.problem_count)?;
    dict.set_item("written_rows", outcome.written_rows)?;
    dict.set_item("files_written", outcome.files.clone())?;
    let verdicts = PyDict::new(py);
    for (verdict, n) in &outcome.verdicts {
        verdicts.set_item(verdict, n)?;
    }
    dict.set_item("verdicts", verdicts)?;
    Ok(dict)
}
