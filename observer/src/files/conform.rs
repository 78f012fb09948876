//! Reading a column written by any Parquet writer: observer's own layouts
//! (schemas 1 to 3), Spark (TimestampType, INT96, short/int/long), pyarrow,
//! pandas and DuckDB. A column is accepted when its values can mean what
//! the table says (a timestamp of any unit, with or without a zone; an
//! integer of any width or sign; text or a list of text in any Arrow
//! encoding) and converted to the one type the rows are read from; a value
//! that does not fit, or a null where a value is required, is an error
//! naming its row.

use std::sync::Arc;

use arrow::{
    array::{Array, ArrayRef},
    compute::{CastOptions, cast_with_options},
    datatypes::{DataType, Field, TimeUnit},
    util::display::array_value_to_string,
};

/// What a column holds, and so what it may be written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// An instant; read as nanoseconds since the epoch, UTC. A timestamp
    /// without a zone (Spark's INT96, `TimestampNTZ`) is taken as UTC.
    Time,
    /// An unsigned integer of this width (`UInt8`, `UInt16`, `UInt32` or
    /// `UInt64`), written as any integer type whose values fit.
    Unsigned(UnsignedWidth),
    /// Text (`Utf8`, `LargeUtf8`, `Utf8View`, dictionary-encoded).
    Text,
    /// A list of text (any list encoding, any item name).
    TextList,
}

/// The width of an unsigned column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnsignedWidth {
    U8,
    U16,
    U32,
    U64,
}

impl Want {
    /// The type the rows are read from.
    pub(crate) fn read_type(self) -> DataType {
        match self {
            Self::Time => DataType::Timestamp(TimeUnit::Nanosecond, None),
            Self::Unsigned(UnsignedWidth::U8) => DataType::UInt8,
            Self::Unsigned(UnsignedWidth::U16) => DataType::UInt16,
            Self::Unsigned(UnsignedWidth::U32) => DataType::UInt32,
            Self::Unsigned(UnsignedWidth::U64) => DataType::UInt64,
            Self::Text => DataType::Utf8,
            Self::TextList => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        }
    }

    /// The accepted types in words, for errors.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Time => "a timestamp (any unit; UTC)",
            Self::Unsigned(UnsignedWidth::U8) => "an integer from 0 to 255",
            Self::Unsigned(UnsignedWidth::U16) => "an integer from 0 to 65535",
            Self::Unsigned(UnsignedWidth::U32) => "an integer from 0 to 4294967295",
            Self::Unsigned(UnsignedWidth::U64) => "a non-negative integer",
            Self::Text => "text",
            Self::TextList => "a list of text",
        }
    }

    fn accepts(self, found: &DataType) -> bool {
        let text =
            |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        match self {
            Self::Time => matches!(found, DataType::Timestamp(_, _)),
            Self::Unsigned(_) => {
                found.is_integer()
                    || matches!(
                        found,
                        DataType::Decimal128(_, 0) | DataType::Decimal256(_, 0)
                    )
            }
            Self::Text => {
                text(found) || matches!(found, DataType::Dictionary(_, value) if text(value))
            }
            Self::TextList => match found {
                DataType::List(item) | DataType::LargeList(item) | DataType::ListView(item) => {
                    text(item.data_type())
                }
                _ => false,
            },
        }
    }
}

/// Why a column cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// The column's type cannot hold what the table says.
    Type { found: DataType },
    /// One value does not fit, or is null where a value is required.
    Value { row: usize, message: String },
}

/// `array` as [`Want::read_type`]; `required`: no nulls allowed.
pub(crate) fn conform(array: &ArrayRef, want: Want, required: bool) -> Result<ArrayRef, Mismatch> {
    let found = array.data_type();
    if !want.accepts(found) {
        return Err(Mismatch::Type {
            found: found.clone(),
        });
    }
    if required && array.null_count() > 0 {
        let row = (0..array.len())
            .find(|&i| array.is_null(i))
            .expect("a null is counted");
        return Err(Mismatch::Value {
            row,
            message: "null where a value is required".into(),
        });
    }
    let target = match (want, found) {
        // Keep the zone: a cast between zones would shift naive values.
        (Want::Time, DataType::Timestamp(_, zone)) => {
            DataType::Timestamp(TimeUnit::Nanosecond, zone.clone())
        }
        _ => want.read_type(),
    };
    if *found == target {
        return Ok(array.clone());
    }
    let describe = |row: usize| {
        let value = array_value_to_string(array, row).unwrap_or_else(|_| "the value".into());
        Mismatch::Value {
            row,
            message: format!("{value} is not {}", want.describe()),
        }
    };
    // Safe casts turn what does not fit into nulls: the first new null is
    // the row to name.
    let options = CastOptions::default();
    let cast = cast_with_options(array, &target, &options).map_err(|_| {
        // A kernel that fails outright (not one null per bad value): find
        // the value it fails on.
        let row = (0..array.len())
            .find(|&i| {
                cast_with_options(&array.slice(i, 1), &target, &options).map_or(true, |one| {
                    one.null_count() != array.slice(i, 1).null_count()
                })
            })
            .unwrap_or(0);
        describe(row)
    })?;
    if cast.null_count() != array.null_count() {
        let row = (0..array.len())
            .find(|&i| array.is_valid(i) && cast.is_null(i))
            .expect("a value became null");
        return Err(describe(row));
    }
    Ok(cast)
}

#[cfg(test)]
mod tests {
    use arrow::array::{
        AsArray, DictionaryArray, Int16Array, Int64Array, LargeStringArray, ListBuilder,
        StringBuilder, TimestampMicrosecondArray, UInt64Array,
    };
    use arrow::datatypes::{Int8Type, TimestampNanosecondType, UInt8Type, UInt64Type};

    use super::*;

    #[test]
    fn timestamps_of_any_unit_read_as_utc_nanoseconds() {
        let micros: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from(vec![1_700_000_000_123_456]).with_timezone("+00:00"),
        );
        let read = conform(&micros, Want::Time, true).unwrap();
        assert_eq!(
            read.as_primitive::<TimestampNanosecondType>().value(0),
            1_700_000_000_123_456_000
        );
        // Spark's INT96 reads without a zone; the value is already UTC.
        let naive: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![5]));
        let read = conform(&naive, Want::Time, true).unwrap();
        assert_eq!(
            read.as_primitive::<TimestampNanosecondType>().value(0),
            5_000
        );
    }

    #[test]
    fn integers_of_any_width_read_when_they_fit() {
        let shorts: ArrayRef = Arc::new(Int16Array::from(vec![6, 17]));
        let read = conform(&shorts, Want::Unsigned(UnsignedWidth::U8), true).unwrap();
        assert_eq!(read.as_primitive::<UInt8Type>().values(), &[6, 17]);
        let longs: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        let read = conform(&longs, Want::Unsigned(UnsignedWidth::U64), false).unwrap();
        assert_eq!(read.as_primitive::<UInt64Type>().value(0), 1);
        assert!(read.is_null(1));
        let old: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX]));
        let read = conform(&old, Want::Unsigned(UnsignedWidth::U64), true).unwrap();
        assert_eq!(read.as_primitive::<UInt64Type>().value(0), u64::MAX);
    }

    #[test]
    fn what_does_not_fit_is_named_with_its_row() {
        let shorts: ArrayRef = Arc::new(Int16Array::from(vec![6, 300]));
        assert_eq!(
            conform(&shorts, Want::Unsigned(UnsignedWidth::U8), true),
            Err(Mismatch::Value {
                row: 1,
                message: "300 is not an integer from 0 to 255".into()
            })
        );
        let negative: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, -3]));
        let err = conform(&negative, Want::Unsigned(UnsignedWidth::U64), true).unwrap_err();
        assert_eq!(
            err,
            Mismatch::Value {
                row: 2,
                message: "-3 is not a non-negative integer".into()
            }
        );
        let nulls: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        assert_eq!(
            conform(&nulls, Want::Unsigned(UnsignedWidth::U64), true),
            Err(Mismatch::Value {
                row: 1,
                message: "null where a value is required".into()
            })
        );
        let text: ArrayRef = Arc::new(LargeStringArray::from(vec!["1"]));
        assert_eq!(
            conform(&text, Want::Unsigned(UnsignedWidth::U64), true),
            Err(Mismatch::Type {
                found: DataType::LargeUtf8
            })
        );
    }

    #[test]
    fn text_and_lists_of_any_encoding_read_as_utf8() {
        let large: ArrayRef = Arc::new(LargeStringArray::from(vec!["ok"]));
        let read = conform(&large, Want::Text, true).unwrap();
        assert_eq!(read.as_string::<i32>().value(0), "ok");
        let dictionary: ArrayRef = Arc::new(
            vec!["a", "b", "a"]
                .into_iter()
                .collect::<DictionaryArray<Int8Type>>(),
        );
        let read = conform(&dictionary, Want::Text, true).unwrap();
        assert_eq!(read.as_string::<i32>().value(2), "a");
        // pyarrow and Spark name the list item `element`.
        let mut list = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
            "element",
            DataType::Utf8,
            true,
        )));
        list.append_value([Some("x.example")]);
        let list: ArrayRef = Arc::new(list.finish());
        let read = conform(&list, Want::TextList, false).unwrap();
        assert_eq!(read.data_type(), &Want::TextList.read_type());
    }
}
