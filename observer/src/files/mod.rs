//! The Parquet files observer writes and reads back: the flow schema (a
//! contract), a writer whose files are complete or absent, a streaming
//! partitioned sink (local or Blob), and a reader of any codec and
//! directory tree that names whatever is missing or mistyped.

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
