//! The `dns` table: one row per answer, written beside the flow files
//! (`dns-*.parquet`) and read back for post-hoc classification and reports.
//! `files` finds and reads the tables' record batches; the rows are made
//! and parsed here, so `files` never learns what a DNS answer is.
//!
//! Typed fields are written as text (`rcode` as `dig` names it, `verdict`
//! in the [`DnsVerdict`] vocabulary) and parsed back; a missing or
//! mistyped column, or a value outside its vocabulary, is named.

use std::{
    net::IpAddr,
    path::PathBuf,
    sync::{Arc, LazyLock},
};

use arrow::{
    array::{
        Array, ArrayRef, AsArray, ListBuilder, RecordBatch, StringArray, StringBuilder,
        TimestampNanosecondArray, UInt32Array,
    },
    datatypes::{
        DataType, Field, Schema, SchemaRef, TimeUnit, TimestampNanosecondType, UInt32Type,
    },
};
use thiserror::Error;

use super::{DnsAnswer, DnsVerdict, Rcode};
use crate::files::{ReadError, Rows, reader};

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("iface", DataType::Utf8, false),
        Field::new("client", DataType::Utf8, false),
        Field::new("server", DataType::Utf8, false),
        Field::new("query", DataType::Utf8, false),
        Field::new("query_type", DataType::Utf8, false),
        Field::new("rcode", DataType::Utf8, false),
        Field::new("chain", list.clone(), false),
        Field::new("addresses", list, false),
        Field::new("ttl", DataType::UInt32, false),
        Field::new("verdict", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, true),
    ]))
});

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(values.map(Some).collect::<StringArray>())
}

fn lists(rows: impl Iterator<Item = Vec<String>>) -> ArrayRef {
    let mut builder = ListBuilder::new(StringBuilder::new());
    for row in rows {
        for item in row {
            builder.values().append_value(item);
        }
        builder.append(true);
    }
    Arc::new(builder.finish())
}

impl Rows for DnsAnswer {
    const KIND: &'static str = "dns";

    fn schema() -> SchemaRef {
        SCHEMA.clone()
    }

    fn to_batch(rows: &[Self]) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampNanosecondArray::from_iter_values(rows.iter().map(|r| r.time_ns))
                    .with_timezone("UTC"),
            ),
            strings(rows.iter().map(|r| &*r.iface)),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.client.to_string()))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.server.to_string()))
                    .collect::<StringArray>(),
            ),
            strings(rows.iter().map(|r| r.query.as_str())),
            strings(rows.iter().map(|r| r.query_type.as_str())),
            Arc::new(
                rows.iter()
                    .map(|r| Some(r.rcode.to_string()))
                    .collect::<StringArray>(),
            ),
            lists(rows.iter().map(|r| r.chain.clone())),
            lists(
                rows.iter()
                    .map(|r| r.addresses.iter().map(|a| a.to_string()).collect()),
            ),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.ttl))),
            Arc::new(
                rows.iter()
                    .map(|r| r.verdict.map(DnsVerdict::as_str))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                rows.iter()
                    .map(|r| r.reason.as_deref())
                    .collect::<StringArray>(),
            ),
        ];
        RecordBatch::try_new(SCHEMA.clone(), columns).expect("columns match the dns schema")
    }
}

/// Why a batch is not a `dns` table.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum TableError {
    #[error("dns table: column `{column}` is missing")]
    Missing { column: String },
    #[error("dns table: column `{column}` is not {expected}")]
    Type {
        column: String,
        expected: &'static str,
    },
    #[error("dns table: `{value}` is not an address")]
    Address { value: String },
    /// A value outside its vocabulary (`rcode`, `verdict`).
    #[error("dns table: column `{column}`: {message}")]
    Value {
        column: &'static str,
        message: String,
    },
}

/// The DNS answers recorded next to `inputs` (none is fine), in time order:
/// the `dns-*.parquet` files below each input directory, or beside each
/// input file (see [`crate::files::reader::dns_paths`]).
pub fn read_recorded(inputs: &[PathBuf]) -> Result<Vec<DnsAnswer>, ReadError> {
    let mut answers = reader::read_dns_tables(inputs, from_batch)?;
    answers.sort_by_key(|a| a.time_ns);
    Ok(answers)
}

/// Reads a `dns` table batch back; a missing or mistyped column is named.
pub(super) fn from_batch(batch: &RecordBatch) -> Result<Vec<DnsAnswer>, TableError> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| TableError::Missing {
                column: name.into(),
            })
    };
    let mistyped = |name: &str, expected| TableError::Type {
        column: name.into(),
        expected,
    };
    let text = |name: &str| -> Result<&StringArray, TableError> {
        column(name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| mistyped(name, "text"))
    };
    let list = |name: &str| -> Result<Vec<Vec<String>>, TableError> {
        let array = column(name)?
            .as_list_opt::<i32>()
            .ok_or_else(|| mistyped(name, "a list"))?;
        Ok((0..array.len())
            .map(|i| {
                let values = array.value(i);
                let values = values.as_string::<i32>();
                (0..values.len())
                    .map(|j| values.value(j).to_string())
                    .collect()
            })
            .collect())
    };
    let time = column("time")?
        .as_primitive_opt::<TimestampNanosecondType>()
        .ok_or_else(|| mistyped("time", "a timestamp"))?;
    let ttl = column("ttl")?
        .as_primitive_opt::<UInt32Type>()
        .ok_or_else(|| mistyped("ttl", "UInt32"))?;
    let (iface, client, server, query, query_type, rcode) = (
        text("iface")?,
        text("client")?,
        text("server")?,
        text("query")?,
        text("query_type")?,
        text("rcode")?,
    );
    let (chain, addresses) = (list("chain")?, list("addresses")?);
    let verdict = text("verdict").ok();
    let reason = text("reason").ok();
    let addr = |s: &str| {
        s.parse::<IpAddr>().map_err(|_| TableError::Address {
            value: s.to_owned(),
        })
    };
    let value = |column: &'static str| move |message| TableError::Value { column, message };
    (0..batch.num_rows())
        .map(|i| {
            Ok(DnsAnswer {
                time_ns: time.value(i),
                iface: iface.value(i).into(),
                client: addr(client.value(i))?,
                server: addr(server.value(i))?,
                query: query.value(i).into(),
                query_type: query_type.value(i).into(),
                rcode: rcode.value(i).parse::<Rcode>().map_err(value("rcode"))?,
                chain: chain[i].clone(),
                addresses: addresses[i]
                    .iter()
                    .map(|a| addr(a))
                    .collect::<Result<_, _>>()?,
                ttl: ttl.value(i),
                verdict: verdict
                    .filter(|v| v.is_valid(i))
                    .map(|v| v.value(i).parse::<DnsVerdict>())
                    .transpose()
                    .map_err(value("verdict"))?,
                reason: reason
                    .filter(|v| v.is_valid(i))
                    .map(|v| v.value(i).to_string()),
            })
        })
        .collect()
}
