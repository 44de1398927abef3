//! The courier manifest: fixed-width records in EUC-KR, one file per shipment batch.
//!
//! A file `MF<seq:6>.txt` holds a header record, one detail record per parcel and a trailer
//! record, each exactly [`RECORD_LEN`] bytes followed by CR LF. Positions and widths are in
//! **bytes** of the EUC-KR encoding (a Hangul syllable takes two). Text is left-aligned and
//! padded with spaces; numbers are right-aligned and padded with zeros. Korean text uses only
//! KS X 1001 (strict EUC-KR, no UHC extension).

use std::collections::BTreeMap;

use encoding_rs::EUC_KR;

use crate::Error;
use crate::model::{Row, Value};

/// How a field is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// ASCII text, left-aligned, space-padded.
    Ascii,
    /// Decimal digits, right-aligned, zero-padded.
    Digits,
    /// EUC-KR text (Hangul and ASCII), left-aligned, space-padded.
    Korean,
}

/// One field of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Name (for detail records, the column name of the `courier_manifest` rows).
    pub name: &'static str,
    /// First byte, counted from 1.
    pub start: usize,
    /// Width in bytes.
    pub width: usize,
    /// Encoding.
    pub kind: FieldKind,
}

const fn f(name: &'static str, start: usize, width: usize, kind: FieldKind) -> Field {
    Field {
        name,
        start,
        width,
        kind,
    }
}

/// Every record is this many bytes before its CR LF.
pub const RECORD_LEN: usize = 228;

/// Header record: `H`, file sequence, creation date, carrier code.
pub const HEADER: &[Field] = &[
    f("rec_type", 1, 1, FieldKind::Ascii),
    f("file_seq", 2, 6, FieldKind::Digits),
    f("created_ymd", 8, 8, FieldKind::Ascii),
    f("carrier_cd", 16, 4, FieldKind::Ascii),
];

/// Detail record, one per parcel.
pub const DETAIL: &[Field] = &[
    f("rec_type", 1, 1, FieldKind::Ascii),
    f("hbl_no", 2, 12, FieldKind::Ascii),
    f("order_no", 14, 20, FieldKind::Ascii),
    f("arrival_ymd", 34, 8, FieldKind::Ascii),
    f("consignee_nm", 42, 20, FieldKind::Korean),
    f("consignee_tel", 62, 13, FieldKind::Ascii),
    f("consignee_addr", 75, 80, FieldKind::Korean),
    f("item_nm", 155, 40, FieldKind::Korean),
    f("pkg_cnt", 195, 3, FieldKind::Digits),
    // gross weight in units of 10 g (hundredths of a kg): 0000125 is 1.25 kg
    f("gross_wt", 198, 7, FieldKind::Digits),
    f("value_krw", 205, 11, FieldKind::Digits),
    f("customs_id", 216, 13, FieldKind::Ascii),
];

/// Trailer record: `T`, number of detail records, sum of their values.
pub const TRAILER: &[Field] = &[
    f("rec_type", 1, 1, FieldKind::Ascii),
    f("record_count", 2, 8, FieldKind::Digits),
    f("total_value_krw", 10, 15, FieldKind::Digits),
];

/// The carrier code written in headers.
pub const CARRIER: &str = "HJCL";

/// Encode one record from `(field name, text)` pairs; missing fields are blank.
///
/// # Errors
/// A value that does not fit its width, is not encodable in strict EUC-KR, or is not digits
/// in a digit field.
pub fn encode_record(layout: &[Field], values: &[(&str, String)]) -> Result<Vec<u8>, Error> {
    let mut out = vec![b' '; RECORD_LEN];
    for field in layout {
        let value = values
            .iter()
            .find(|(n, _)| *n == field.name)
            .map_or("", |(_, v)| v.as_str());
        let bytes: Vec<u8> = match field.kind {
            FieldKind::Digits => {
                if !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::Manifest(format!(
                        "{}: {value:?} is not digits",
                        field.name
                    )));
                }
                format!("{value:0>width$}", width = field.width).into_bytes()
            }
            FieldKind::Ascii | FieldKind::Korean => {
                let (bytes, _, unmappable) = EUC_KR.encode(value);
                if unmappable || (field.kind == FieldKind::Ascii && !value.is_ascii()) {
                    return Err(Error::Manifest(format!(
                        "{}: {value:?} is not encodable as {:?}",
                        field.name, field.kind
                    )));
                }
                if !strict_euc_kr(&bytes) {
                    return Err(Error::Manifest(format!(
                        "{}: {value:?} needs characters outside KS X 1001",
                        field.name
                    )));
                }
                bytes.into_owned()
            }
        };
        if bytes.len() > field.width {
            return Err(Error::Manifest(format!(
                "{}: {value:?} takes {} bytes, the field has {}",
                field.name,
                bytes.len(),
                field.width
            )));
        }
        let at = field.start - 1;
        out[at..at + bytes.len()].copy_from_slice(&bytes);
    }
    Ok(out)
}

/// Whether every byte is ASCII or in the EUC-KR (KS X 1001) double-byte range.
#[must_use]
pub fn strict_euc_kr(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b < 0x80 || (0xA1..=0xFE).contains(b))
}

/// Decode one record (without CR LF) with `layout`: field name → text, trailing spaces trimmed.
///
/// # Errors
/// A record of the wrong length, bytes that are not strict EUC-KR, a field that splits a
/// character, or non-digits in a digit field.
pub fn decode_record(
    layout: &[Field],
    record: &[u8],
) -> Result<BTreeMap<&'static str, String>, Error> {
    if record.len() != RECORD_LEN {
        return Err(Error::Manifest(format!(
            "record of {} bytes, expected {RECORD_LEN}",
            record.len()
        )));
    }
    let mut out = BTreeMap::new();
    for field in layout {
        let raw = &record[field.start - 1..field.start - 1 + field.width];
        if !strict_euc_kr(raw) {
            return Err(Error::Manifest(format!("{}: not EUC-KR", field.name)));
        }
        let text = EUC_KR
            .decode_without_bom_handling_and_without_replacement(raw)
            .ok_or_else(|| Error::Manifest(format!("{}: malformed EUC-KR", field.name)))?;
        let text = text.trim_end_matches(' ').to_owned();
        if field.kind == FieldKind::Digits && !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::Manifest(format!(
                "{}: {text:?} is not digits",
                field.name
            )));
        }
        out.insert(field.name, text);
    }
    Ok(out)
}

/// The text of a `courier_manifest` row's value as the layout writes it.
fn field_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Int(n) | Value::Hundredths(n) => n.to_string(),
        Value::Text(s) => s.clone(),
        Value::Ts(t) => t.format("%Y%m%d").to_string(),
    }
}

/// Encode a whole manifest file: header, `rows` (of table `courier_manifest`) and trailer,
/// CR LF after each record.
///
/// # Errors
/// See [`encode_record`].
pub fn encode_file(seq: u32, created_ymd: &str, rows: &[&Row]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity((rows.len() + 2) * (RECORD_LEN + 2));
    out.extend(encode_record(
        HEADER,
        &[
            ("rec_type", "H".to_owned()),
            ("file_seq", seq.to_string()),
            ("created_ymd", created_ymd.to_owned()),
            ("carrier_cd", CARRIER.to_owned()),
        ],
    )?);
    out.extend_from_slice(b"\r\n");
    let mut total = 0;
    for row in rows {
        let mut values: Vec<(&str, String)> = vec![("rec_type", "D".to_owned())];
        values.extend(row.cols.iter().map(|(c, v)| (*c, field_text(v))));
        total += row.int("value_krw");
        out.extend(encode_record(DETAIL, &values)?);
        out.extend_from_slice(b"\r\n");
    }
    out.extend(encode_record(
        TRAILER,
        &[
            ("rec_type", "T".to_owned()),
            ("record_count", rows.len().to_string()),
            ("total_value_krw", total.to_string()),
        ],
    )?);
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// A decoded manifest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// Header fields.
    pub header: BTreeMap<&'static str, String>,
    /// Detail records, in file order (the first is on line 2).
    pub details: Vec<BTreeMap<&'static str, String>>,
}

/// Decode and check a manifest file: record types, lengths, CR LF, the trailer's count and
/// total.
///
/// # Errors
/// Anything that does not follow the layout, with the line number.
pub fn decode_file(bytes: &[u8]) -> Result<ManifestFile, Error> {
    let Some(body) = bytes.strip_suffix(b"\r\n") else {
        return Err(Error::Manifest("file does not end with CR LF".into()));
    };
    let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
    let mut header = None;
    let mut details = Vec::new();
    let mut trailer = None;
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let line = if n < lines.len() {
            line.strip_suffix(b"\r")
                .ok_or_else(|| Error::Manifest(format!("line {n}: no CR before LF")))?
        } else {
            line
        };
        let rec = match line.first() {
            Some(b'H') if n == 1 => decode_record(HEADER, line).map(|r| header = Some(r)),
            Some(b'D') if header.is_some() && trailer.is_none() => {
                decode_record(DETAIL, line).map(|r| details.push(r))
            }
            Some(b'T') if n == lines.len() => {
                decode_record(TRAILER, line).map(|r| trailer = Some(r))
            }
            _ => Err(Error::Manifest("unexpected record type".into())),
        };
        rec.map_err(|e| Error::Manifest(format!("line {n}: {e}")))?;
    }
    let (Some(header), Some(trailer)) = (header, trailer) else {
        return Err(Error::Manifest("missing header or trailer".into()));
    };
    let count: usize = trailer
        .get("record_count")
        .and_then(|s| s.parse().ok())
        .unwrap_or(usize::MAX);
    let total: i64 = trailer
        .get("total_value_krw")
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1);
    let sum: i64 = details
        .iter()
        .map(|d| {
            d.get("value_krw")
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0)
        })
        .sum();
    if count != details.len() || total != sum {
        return Err(Error::Manifest(format!(
            "trailer says {count} records worth {total}, the file has {} worth {sum}",
            details.len()
        )));
    }
    Ok(ManifestFile { header, details })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_tile_the_record_without_gaps_or_overlaps() {
        for layout in [HEADER, DETAIL, TRAILER] {
            let mut next = 1;
            for field in layout {
                assert_eq!(field.start, next, "{}", field.name);
                next += field.width;
            }
            assert!(next - 1 <= RECORD_LEN);
        }
        let last = DETAIL.last().unwrap();
        assert_eq!(last.start + last.width - 1, RECORD_LEN);
    }

    #[test]
    fn korean_fields_are_measured_in_bytes_and_round_trip() {
        let rec = encode_record(
            DETAIL,
            &[
                ("rec_type", "D".into()),
                ("consignee_nm", "홍길동".into()),
                ("pkg_cnt", "2".into()),
            ],
        )
        .unwrap();
        assert_eq!(rec.len(), RECORD_LEN);
        // 홍길동 is six bytes in EUC-KR: 0xC8 0xAB 0xB1 0xE6 0xB5 0xBF
        assert_eq!(&rec[41..47], &[0xC8, 0xAB, 0xB1, 0xE6, 0xB5, 0xBF]);
        assert_eq!(&rec[47..61], &[b' '; 14]);
        assert_eq!(&rec[194..197], b"002");
        let back = decode_record(DETAIL, &rec).unwrap();
        assert_eq!(back["consignee_nm"], "홍길동");
        assert_eq!(back["pkg_cnt"], "002");
    }

    #[test]
    fn values_that_do_not_fit_are_refused() {
        let long = "가".repeat(11); // 22 bytes in a 20-byte field
        assert!(encode_record(DETAIL, &[("consignee_nm", long)]).is_err());
        assert!(encode_record(DETAIL, &[("pkg_cnt", "12a".into())]).is_err());
        assert!(encode_record(DETAIL, &[("hbl_no", "한글".into())]).is_err());
        // 똠 exists only in the UHC extension, not in KS X 1001
        assert!(encode_record(DETAIL, &[("consignee_nm", "똠".into())]).is_err());
    }

    #[test]
    fn a_damaged_file_is_refused() {
        let file = encode_file(1, "20240102", &[]).unwrap();
        assert!(decode_file(&file).is_ok());
        let mut cut = file.clone();
        cut.truncate(file.len() - 3);
        assert!(decode_file(&cut).is_err());
        let mut wrong = file.clone();
        wrong[RECORD_LEN + 2 + 8] = b'1'; // trailer count 00000001
        assert!(decode_file(&wrong).is_err());
    }
}
