//! Tests of the batch-file source.
