//! Avro schemas of the canonical topics, derived from the canonical JSON Schemas.
