//! `observer_py`: observer's post-hoc side for Python, pyarrow and Spark
//! (Databricks, Fabric, Synapse), running the same Rust code as the CLI.
//! The native module is `observer_py._native`; the Python package
//! (`python/observer_py`) re-exports it and adds the Spark helpers.
//!
//! | file | owns |
//! |---|---|
//! | `lib.rs` | the module: `Classifier`, `flow_schema`, `import_flow_logs`, `ObserverError`, `SCHEMA_VERSION` |
//! | `classifier.rs` | `Classifier`: state loaded once, batches classified with the GIL released |
//! | `batches.rs` | Arrow in, Arrow out without Python (unit-tested in Rust) |
//! | `import.rs` | `import_flow_logs`: `observer import` of some inputs, its summary as a dict; `hour_prefixes`: the units of a distributed import |
//!
//! Arrow data crosses the boundary through the C Data Interface (the
//! arrow crate's `pyarrow` feature): no copies.

mod batches;
mod classifier;
mod import;

use std::path::PathBuf;

use arrow::pyarrow::ToPyArrow as _;
use pyo3::{create_exception, exceptions::PyValueError, prelude::*};

create_exception!(
    observer_py,
    ObserverError,
    PyValueError,
    "Bad input for observer: a topology, catalog, flow file or column it cannot use; the message says what and where."
);

/// A path or a list of paths (`str` or `os.PathLike`).
fn paths(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<PathBuf>> {
    if let Ok(one) = value.extract::<PathBuf>() {
        return Ok(vec![one]);
    }
    value.extract::<Vec<PathBuf>>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "{what} takes a path or a list of paths, not {}",
            value
                .get_type()
                .name()
                .map_or_else(|_| "this".into(), |n| n.to_string())
        ))
    })
}

/// The flow table's schema (version 3) as a `pyarrow.Schema`.
#[pyfunction]
fn flow_schema(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    observer::files::schema::flow_schema().to_pyarrow(py)
}

#[pymodule(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<classifier::PyClassifier>()?;
    m.add_function(wrap_pyfunction!(flow_schema, m)?)?;
    m.add_function(wrap_pyfunction!(import::import_flow_logs, m)?)?;
    m.add_function(wrap_pyfunction!(import::hour_prefixes, m)?)?;
    m.add("ObserverError", m.py().get_type::<ObserverError>())?;
    m.add("SCHEMA_VERSION", observer::files::schema::SCHEMA_VERSION)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
