//! Arrow in, Arrow out, without Python: the flow columns of record batches
//! (of any type observer's reader accepts: its own schemas 1 to 3, what
//! Spark hands `mapInArrow`, pyarrow's choices) read as flow records,
//! classified together with one [`Recorded`] classifier, and written as
//! flow schema 3; the columns the flow table does not have (Spark's Hive
//! partition columns, a user's own) pass through unchanged, after the flow
//! columns. Rows keep their order.

use std::{collections::HashSet, sync::Arc};

use arrow::{
    array::RecordBatch,
    datatypes::{Schema, SchemaRef},
    error::ArrowError,
};
use observer::{
    classify::Recorded,
    files::schema::{self, SchemaError},
    flow::FlowRecord,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub(crate) enum BatchError {
    #[error("batch {batch}: {source}")]
    Schema { batch: usize, source: SchemaError },
    #[error("building the output: {0}")]
    Arrow(#[from] ArrowError),
}

/// The output schema for input `schema`: the flow columns, then the
/// input's other columns.
pub(crate) fn output_schema(schema: &Schema) -> SchemaRef {
    let flow = schema::flow_schema();
    let mut fields: Vec<_> = flow.fields().iter().cloned().collect();
    fields.extend(
        schema
            .fields()
            .iter()
            .filter(|f| flow.field_with_name(f.name()).is_err())
            .cloned(),
    );
    Arc::new(Schema::new(fields))
}

/// Classifies the rows of `batches` (all of `schema`) as one set, pairing
/// the directions among them and on the interfaces in `both_ways` (see
/// `Classifier::classify_part`); one output batch per input batch.
pub(crate) fn classify(
    recorded: &Recorded,
    schema: &Schema,
    batches: &[RecordBatch],
    both_ways: &HashSet<String>,
) -> Result<(SchemaRef, Vec<RecordBatch>), BatchError> {
    let out_schema = output_schema(schema);
    let flow_columns = schema::flow_schema().fields().len();
    let mut records: Vec<FlowRecord> =
        Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for (index, batch) in batches.iter().enumerate() {
        records.extend(
            schema::from_batch(batch).map_err(|source| BatchError::Schema {
                batch: index,
                source,
            })?,
        );
    }
    recorded.classify(&mut records, both_ways);
    let mut out = Vec::with_capacity(batches.len());
    let mut offset = 0;
    for batch in batches {
        let rows = &records[offset..offset + batch.num_rows()];
        offset += batch.num_rows();
        let mut columns = schema::to_batch(rows).columns().to_vec();
        for field in &out_schema.fields()[flow_columns..] {
            columns.push(
                batch
                    .column_by_name(field.name())
                    .expect("a column of the input")
                    .clone(),
            );
        }
        out.push(RecordBatch::try_new(out_schema.clone(), columns)?);
    }
    Ok((out_schema, out))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use arrow::{
        array::{Array, AsArray, Int32Array},
        compute::cast,
        datatypes::{DataType, Field, TimeUnit},
    };
    use observer::classify::Classifier;

    use super::*;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn verdicts_of(batches: &[RecordBatch]) -> Vec<Option<String>> {
        batches
            .iter()
            .flat_map(|b| {
                b.column_by_name("verdict")
                    .unwrap()
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn read(path: &str) -> (SchemaRef, Vec<RecordBatch>) {
        let file = std::fs::File::open(root().join(path)).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let schema = arrow::array::RecordBatchReader::schema(&reader);
        (schema, reader.map(Result::unwrap).collect())
    }

    fn recorded() -> Recorded {
        let classifier =
            Classifier::load(&root().join("lab/topologies/default.toml"), &[]).unwrap();
        Recorded::new(classifier, Vec::new())
    }

    /// A schema-2 capture (classified live by the lab) classified again
    /// gives the verdicts it was written with; a passed-through column keeps
    /// its rows.
    #[test]
    fn the_verdicts_of_the_live_capture_come_back() {
        let (schema, batches) = read(
            "observer/testdata/parquet/schema-2/capture/flows-20261203T132852Z-22214-000002.parquet",
        );
        let recorded_verdicts = verdicts_of(&batches);
        // Add a column of the caller's own.
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| (**f).clone()).collect();
        fields.push(Field::new("row_id", DataType::Int32, false));
        let extended = Arc::new(Schema::new(fields));
        let mut next = 0;
        let batches: Vec<RecordBatch> = batches
            .iter()
            .map(|b| {
                let ids: Int32Array = (next..next + b.num_rows() as i32).collect();
                next += b.num_rows() as i32;
                let mut columns = b.columns().to_vec();
                columns.push(Arc::new(ids));
                RecordBatch::try_new(extended.clone(), columns).unwrap()
            })
            .collect();

        let (out_schema, out) =
            classify(&recorded(), &extended, &batches, &HashSet::new()).unwrap();
        assert_eq!(
            out_schema.field(out_schema.fields().len() - 1).name(),
            "row_id"
        );
        assert_eq!(
            out_schema
                .field_with_name("start_time")
                .unwrap()
                .data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        let verdicts = verdicts_of(&out);
        assert_eq!(verdicts, recorded_verdicts);
        assert!(verdicts.iter().all(Option::is_some));
        let ids: Vec<i32> = out
            .iter()
            .flat_map(|b| {
                b.column_by_name("row_id")
                    .unwrap()
                    .as_primitive::<arrow::datatypes::Int32Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(ids, (0..next).collect::<Vec<_>>());
    }

    /// What Spark hands a Python function (short, int, long) is read; a
    /// bad row is named with its batch.
    #[test]
    fn spark_types_are_read_and_bad_rows_named() {
        let (_, batches) = read(
            "observer/testdata/parquet/schema-2/capture/flows-20261203T132852Z-22214-000002.parquet",
        );
        let widen = |batch: &RecordBatch, name: &str, to: DataType| -> RecordBatch {
            let index = batch.schema().index_of(name).unwrap();
            let mut columns = batch.columns().to_vec();
            columns[index] = cast(&columns[index], &to).unwrap();
            let mut fields: Vec<Field> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| (**f).clone())
                .collect();
            fields[index] = Field::new(name, to, true);
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
        };
        let batch = widen(&batches[0], "protocol", DataType::Int16);
        let batch = widen(&batch, "dst_port", DataType::Int32);
        let batch = widen(&batch, "bytes", DataType::Int64);
        let (_, out) = classify(
            &recorded(),
            &batch.schema(),
            std::slice::from_ref(&batch),
            &HashSet::new(),
        )
        .unwrap();
        assert_eq!(out[0].num_rows(), batches[0].num_rows());
        assert_eq!(
            out[0].column_by_name("protocol").unwrap().data_type(),
            &DataType::UInt8
        );

        let index = batch.schema().index_of("dst_port").unwrap();
        let mut columns = batch.columns().to_vec();
        let mut ports: Vec<Option<i32>> = columns[index]
            .as_primitive::<arrow::datatypes::Int32Type>()
            .iter()
            .collect();
        ports[2] = Some(70_000);
        columns[index] = Arc::new(Int32Array::from(ports));
        let bad = RecordBatch::try_new(batch.schema(), columns).unwrap();
        let err = classify(
            &recorded(),
            &bad.schema(),
            &[batch.clone(), bad.clone()],
            &HashSet::new(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "batch 1: column `dst_port`, row 2: 70000 is not an integer from 0 to 65535"
        );
        assert_eq!(out[0].column_by_name("verdict").unwrap().null_count(), 0);
    }
}
