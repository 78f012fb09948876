//! The Parquet files observer writes and reads back: the flow schema (a
//! contract), a writer whose files are complete or absent, a streaming
//! partitioned sink (local or Blob), and a reader of any codec and
//! directory tree that names whatever is missing or mistyped.
//!
//! | file | owns |
//! |---|---|
//! | [`schema`] | the flow table's columns (schema 3) and records to and from Arrow batches |
//! | `conform` | a column of any compatible type (older schemas, Spark, pyarrow, DuckDB) read as the type its rows are read from |
//! | [`writer`] | complete-or-absent files of one table (`ParquetFiles`), the writer settings |
//! | [`sink`] | the streaming partitioned flow output of `import` (local or Blob, encoder thread) |
//! | [`reader`] | files, trees and blob prefixes read back, the `dns` tables found beside them |
//! | [`metadata`] | the files' key/value metadata as one typed struct |

pub(crate) mod conform;
pub mod metadata;
pub mod reader;
pub mod schema;
pub mod sink;
pub mod writer;

pub use self::{
    metadata::FileMetadata,
    reader::{ReadError, read_flows},
    writer::{ParquetFiles, Rows, WriteError, check_writable},
};
