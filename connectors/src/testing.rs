//! Property-test generators of the bus's column types and values (feature `test-support`): the
//! connectors' Avro encoder and the mapping worker's raw decoder are both checked against
//! apache-avro on rows made from these.

use proptest::prelude::*;

use crate::{ColumnType, Value};

/// Every column type.
pub const KINDS: [ColumnType; 10] = [
    ColumnType::Boolean,
    ColumnType::Int,
    ColumnType::Long,
    ColumnType::Float,
    ColumnType::Double,
    ColumnType::String,
    ColumnType::Bytes,
    ColumnType::Date,
    ColumnType::Timestamp,
    ColumnType::Decimal,
];

/// Values of a column of `kind`: any value of its type, or null one time in five.
pub fn value_of(kind: ColumnType) -> BoxedStrategy<Value> {
    let value = match kind {
        ColumnType::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        ColumnType::Int => any::<i32>().prop_map(Value::Int).boxed(),
        ColumnType::Long => any::<i64>().prop_map(Value::Long).boxed(),
        ColumnType::Float => any::<f32>().prop_map(Value::Float).boxed(),
        ColumnType::Double => any::<f64>().prop_map(Value::Double).boxed(),
        ColumnType::String | ColumnType::Decimal => "\\PC{0,8}".prop_map(Value::String).boxed(),
        ColumnType::Bytes => proptest::collection::vec(any::<u8>(), 0..8)
            .prop_map(Value::Bytes)
            .boxed(),
        ColumnType::Date => any::<i32>().prop_map(Value::Date).boxed(),
        ColumnType::Timestamp => any::<i64>().prop_map(Value::Timestamp).boxed(),
    };
    prop_oneof![1 => Just(Value::Null), 4 => value].boxed()
}
