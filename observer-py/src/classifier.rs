//! `observer_py.Classifier`: one topology, its catalogs and the recorded
//! DNS answers, loaded once and reused for every batch it classifies; the
//! work runs with the GIL released (Spark's Python workers, or threads of
//! one process, classify in parallel).

use std::{collections::HashSet, path::PathBuf};

use arrow::{
    array::RecordBatch,
    pyarrow::{FromPyArrow as _, PyArrowType, Table},
};
use observer::classify::Recorded;
use pyo3::{exceptions::PyTypeError, prelude::*};

use crate::{ObserverError, batches, paths};

/// Classifies flow records (pyarrow) against a topology, as `observer
/// classify` does.
///
/// `topology_path`: the topology TOML file. `catalogs`: extra dependency
/// catalog files, tried before the built-in one. `dns`: a path (file,
/// directory or `az://CONTAINER/PREFIX`) or a list of them whose
/// `dns-*.parquet` tables name the flows' destinations (as `observer
/// classify` uses the capture's `dns` table).
#[pyclass(name = "Classifier", module = "observer_py", frozen)]
#[derive(Debug)]
pub struct PyClassifier {
    recorded: Recorded,
    files: Vec<(String, PathBuf)>,
}

#[pymethods]
impl PyClassifier {
    #[new]
    #[pyo3(signature = (topology_path, catalogs = Vec::new(), dns = None))]
    fn new(
        py: Python<'_>,
        topology_path: PathBuf,
        catalogs: Vec<PathBuf>,
        dns: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let dns = match dns {
            None => Vec::new(),
            Some(value) => paths(value, "dns")?,
        };
        let (recorded, files) = py
            .detach(|| {
                let recorded = Recorded::load(&topology_path, &catalogs, &dns)?;
                let files = recorded
                    .classifier()
                    .source_files(&topology_path, &catalogs);
                Ok::<_, observer::classify::LoadError>((recorded, files))
            })
            .map_err(|e| ObserverError::new_err(error_chain(&e)))?;
        Ok(Self { recorded, files })
    }

    /// Classifies `data` (a `pyarrow.RecordBatch` or `pyarrow.Table`, or
    /// anything with `__arrow_c_stream__`) and returns a `pyarrow.Table`:
    /// the flow columns (schema 3) with the classification filled, then
    /// the input's other columns unchanged, rows in input order.
    ///
    /// The rows are classified as one set: both directions of a
    /// connection must be in the same call to be paired (TCP answers).
    /// `both_ways`: interfaces on which the whole data set, of which `data`
    /// is a part, has records of both directions (Spark computes it once
    /// for all its groups); by default, judged from `data` alone.
    #[pyo3(signature = (data, both_ways = None))]
    fn classify(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        both_ways: Option<Vec<String>>,
    ) -> PyResult<PyArrowType<Table>> {
        let (batches, schema) = if data.hasattr("__arrow_c_stream__")? {
            Table::from_pyarrow_bound(data)?.into_inner()
        } else if data.hasattr("__arrow_c_array__")? {
            let batch = RecordBatch::from_pyarrow_bound(data)?;
            let schema = batch.schema();
            (vec![batch], schema)
        } else {
            return Err(PyTypeError::new_err(format!(
                "classify takes a pyarrow.RecordBatch or pyarrow.Table, not {}",
                data.get_type().name()?
            )));
        };
        let both_ways: HashSet<String> = both_ways.unwrap_or_default().into_iter().collect();
        let (schema, batches) = py
            .detach(|| batches::classify(&self.recorded, &schema, &batches, &both_ways))
            .map_err(|e| ObserverError::new_err(e.to_string()))?;
        Ok(PyArrowType(
            Table::try_new(batches, schema).map_err(|e| ObserverError::new_err(e.to_string()))?,
        ))
    }

    /// The topology's name.
    #[getter]
    fn topology_name(&self) -> &str {
        self.recorded.classifier().topology_name()
    }

    /// The DNS answers read from `dns`.
    #[getter]
    fn dns_answers(&self) -> usize {
        self.recorded.answers().len()
    }

    /// The files the classifier was built from, as `(name, path)`: the
    /// topology (`name` is its file name), the service tags file it names
    /// (`name` as the topology writes it, relative to the topology), the
    /// catalogs (`name` is `catalog-N-FILE`). The Spark helpers ship their
    /// bytes to the workers.
    #[getter]
    fn files(&self) -> Vec<(String, PathBuf)> {
        self.files.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "Classifier(topology={:?}, dns_answers={})",
            self.recorded.classifier().topology_name(),
            self.recorded.answers().len()
        )
    }
}

/// An error and its causes, one after another (each said once).
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}
