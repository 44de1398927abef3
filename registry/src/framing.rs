//! Confluent framing of Avro datums: magic byte 0, the 4-byte big-endian schema id, then the
//! datum. The datums themselves are written and read by `serde_avro_fast` with schemas compiled
//! once, in the connectors (raw records) and the mappings (raw and canonical records):
//! apache-avro's `to_avro_datum` and `from_avro_datum` resolve the schema's named types on every
//! call and go through a `Value` whose record fields are looked up by name, which made Avro a
//! third of the pipeline's CPU time.

use std::sync::Arc;

/// An Avro schema compiled by `serde_avro_fast` once, shared by the clones of its holder.
#[derive(Clone)]
pub struct Compiled(Arc<serde_avro_fast::Schema>);

impl Compiled {
    /// Compiles a schema's JSON text.
    ///
    /// # Errors
    /// The text is not an Avro schema serde_avro_fast accepts (the message says why).
    pub fn parse(text: &str) -> Result<Self, String> {
        text.parse::<serde_avro_fast::Schema>()
            .map(|s| Self(Arc::new(s)))
            .map_err(|e| e.to_string())
    }
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Compiled")
    }
}

impl std::ops::Deref for Compiled {
    type Target = serde_avro_fast::Schema;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_schema_id_big_endian() {
        assert_eq!(frame(258), [0, 0, 0, 1, 2]);
        let mut framed = frame(9).to_vec();
        framed.push(42);
        assert_eq!(schema_id(&framed), Ok(9));
        assert_eq!(schema_id(&frame(u32::MAX)), Ok(u32::MAX));
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
