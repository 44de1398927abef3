//! Avro datums in Confluent framing (magic byte 0, the 4-byte big-endian schema id, the datum),
//! encoded and decoded with a schema resolved once.
//!
//! `apache_avro::to_avro_datum` and `from_avro_datum` resolve the schema's named types again on
//! every call (and the encoder validates the value with a second resolution): a fifth of the
//! pipeline's CPU time went there. apache-avro's single-object reader and writer keep the schema
//! resolved; this module puts Confluent's frame where they put theirs. The reader takes a
//! [`HeaderBuilder`] for the frame it expects; the writer insists on a header of 10 to 20 bytes,
//! so it writes the single-object one and [`FramedWriter::write`] replaces it with the 5-byte
//! frame.

use std::sync::Mutex;

use apache_avro::headers::HeaderBuilder;
use apache_avro::types::Value;
use apache_avro::{GenericSingleObjectReader, GenericSingleObjectWriter, Schema};

/// Length of the Confluent frame: magic byte and schema id.
pub const FRAME: usize = 5;

/// The Confluent frame of schema `id`.
#[must_use]
pub fn frame(id: u32) -> [u8; FRAME] {
    let [a, b, c, d] = id.to_be_bytes();
    [0, a, b, c, d]
}

/// The schema id of a framed datum.
///
/// # Errors
/// Shorter than the frame, or not starting with the magic byte 0 (the message says which).
pub fn schema_id(bytes: &[u8]) -> Result<u32, String> {
    match bytes {
        [0, a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        [m, ..] if bytes.len() >= FRAME => Err(format!("magic byte {m}, expected 0")),
        _ => Err(format!(
            "{} bytes, shorter than the {FRAME}-byte header",
            bytes.len()
        )),
    }
}

struct Confluent(u32);

impl HeaderBuilder for Confluent {
    fn build_header(&self) -> Vec<u8> {
        frame(self.0).to_vec()
    }
}

/// Decodes the datums of one schema id.
pub struct FramedReader {
    reader: GenericSingleObjectReader,
}

impl std::fmt::Debug for FramedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramedReader").finish_non_exhaustive()
    }
}

impl FramedReader {
    /// A reader of datums framed with schema `id`, written with `schema`.
    ///
    /// # Errors
    /// The schema's named types do not resolve.
    pub fn new(schema: Schema, id: u32) -> Result<Self, apache_avro::Error> {
        Ok(Self {
            reader: GenericSingleObjectReader::new_with_header_builder(schema, Confluent(id))?,
        })
    }

    /// The value of a framed datum and the bytes left after it (none for a well-formed record).
    ///
    /// # Errors
    /// A frame of another schema id, or bytes that do not decode with the schema.
    pub fn read<'a>(&self, bytes: &'a [u8]) -> Result<(Value, &'a [u8]), apache_avro::Error> {
        let mut rest = bytes;
        let value = self.reader.read_value(&mut rest)?;
        Ok((value, rest))
    }
}

/// Encodes values of one schema (the value is validated against it, as `to_avro_datum` does).
pub struct FramedWriter {
    writer: Mutex<GenericSingleObjectWriter>,
}

impl std::fmt::Debug for FramedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramedWriter").finish_non_exhaustive()
    }
}

/// Length of the single-object header the apache-avro writer puts first (`C3 01` and the
/// schema's 8-byte Rabin fingerprint).
const SINGLE_OBJECT_HEADER: usize = 10;

impl FramedWriter {
    /// A writer of values of `schema`.
    ///
    /// # Errors
    /// The schema's named types do not resolve.
    pub fn new(schema: &Schema) -> Result<Self, apache_avro::Error> {
        Ok(Self {
            writer: Mutex::new(GenericSingleObjectWriter::new_with_capacity(schema, 1024)?),
        })
    }

    /// Appends `value`, framed with schema `id`, to `out`.
    ///
    /// # Errors
    /// The value does not fit the schema; `out` is left as it was.
    pub fn write(
        &self,
        id: u32,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<(), apache_avro::Error> {
        let start = out.len();
        // A poisoned lock only means another thread panicked mid-write: the writer resets its
        // buffer on every call, so it is still usable.
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = writer.write_value_ref(value, out) {
            out.truncate(start);
            return Err(e);
        }
        // Single-object header (10 bytes) → Confluent frame (5 bytes).
        out.drain(start..start + SINGLE_OBJECT_HEADER - FRAME);
        out[start..start + FRAME].copy_from_slice(&frame(id));
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        // A named type used twice: the second use is a reference that must resolve.
        Schema::parse_str(
            r#"{"type":"record","name":"r","namespace":"t","fields":[
                {"name":"a","type":{"type":"record","name":"money","fields":[{"name":"units","type":"long"}]}},
                {"name":"b","type":"money"},
                {"name":"c","type":["null","string"]}]}"#,
        )
        .unwrap()
    }

    fn value(c: Option<&str>) -> Value {
        let money = |n| Value::Record(vec![("units".into(), Value::Long(n))]);
        Value::Record(vec![
            ("a".into(), money(7)),
            ("b".into(), money(-3)),
            (
                "c".into(),
                match c {
                    Some(s) => Value::Union(1, Box::new(Value::String(s.into()))),
                    None => Value::Union(0, Box::new(Value::Null)),
                },
            ),
        ])
    }

    #[test]
    fn writes_what_to_avro_datum_writes_behind_the_confluent_frame() {
        let s = schema();
        let w = FramedWriter::new(&s).unwrap();
        for c in [Some("kim"), None, Some("")] {
            let mut out = b"prefix".to_vec();
            w.write(258, &value(c), &mut out).unwrap();
            let plain = apache_avro::to_avro_datum(&s, value(c)).unwrap();
            assert_eq!(&out[..6], b"prefix");
            assert_eq!(&out[6..11], &[0, 0, 0, 1, 2]);
            assert_eq!(&out[11..], &plain[..]);
            let r = FramedReader::new(s.clone(), 258).unwrap();
            let (back, rest) = r.read(&out[6..]).unwrap();
            assert_eq!(back, value(c));
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn a_value_that_does_not_fit_is_refused_and_leaves_the_buffer_alone() {
        let w = FramedWriter::new(&schema()).unwrap();
        let mut out = b"kept".to_vec();
        let wrong = Value::Record(vec![("a".into(), Value::String("x".into()))]);
        assert!(w.write(1, &wrong, &mut out).is_err());
        assert_eq!(out, b"kept");
        // Still usable afterwards.
        w.write(1, &value(None), &mut out).unwrap();
        assert_eq!(&out[4..9], &frame(1));
    }

    #[test]
    fn the_reader_refuses_another_schema_id_bad_frames_and_truncated_datums() {
        let s = schema();
        let w = FramedWriter::new(&s).unwrap();
        let mut out = Vec::new();
        w.write(9, &value(Some("x")), &mut out).unwrap();
        let r = FramedReader::new(s, 9).unwrap();
        let mut other = out.clone();
        other[4] = 8;
        assert!(r.read(&other).is_err());
        // A datum cut short (apache-avro reads a string cut short as null, so cut in a long).
        assert!(r.read(&out[..FRAME + 1]).is_err());
        assert!(r.read(&out[..FRAME]).is_err());
        assert!(r.read(&out[..3]).is_err());
        let mut longer = out.clone();
        longer.push(42);
        let (_, rest) = r.read(&longer).unwrap();
        assert_eq!(rest, &[42]);
        assert_eq!(schema_id(&out), Ok(9));
        assert_eq!(
            schema_id(&[1, 0, 0, 0, 9]),
            Err("magic byte 1, expected 0".into())
        );
        assert_eq!(
            schema_id(&[0, 0]),
            Err("2 bytes, shorter than the 5-byte header".into())
        );
    }
}
