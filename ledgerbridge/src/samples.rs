//! Sample canonical events the demo anchors in each reference channel at start (fixed ids, so
//! restarts add nothing). Identifiers are pseudonyms, as the mappings will produce them.

use ledgerbridge_ledger::NewEntry;

fn event(
    channel: &str,
    n: u32,
    event_type: &str,
    subject: &str,
    source: &str,
    payload: &str,
) -> NewEntry {
    NewEntry {
        event_id: format!("demo:{channel}:{n:04}"),
        event_type: event_type.to_owned(),
        connector: format!("demo-{channel}"),
        source_position: source.to_owned(),
        mapping_version: format!("demo-{event_type}@1"),
        subject: Some(subject.to_owned()),
        payload: payload.as_bytes().to_vec(),
    }
}

/// The sample events of `channel` (none for channels outside the four reference domains).
pub(crate) fn events(channel: &str) -> Vec<NewEntry> {
    match channel {
        "claims" => vec![
            event(
                channel,
                1,
                "claim",
                "pt-4f1c9a",
                "his.invoices:1001",
                r#"{"claim_no":"C-2026-1001","hospital":"hospital-a","procedure":"D2711","amount_krw":185000,"treated_on":"2026-11-02"}"#,
            ),
            event(
                channel,
                2,
                "claim",
                "pt-8b22e0",
                "his.invoices:1002",
                r#"{"claim_no":"C-2026-1002","hospital":"hospital-a","procedure":"M0111","amount_krw":42000,"treated_on":"2026-11-03"}"#,
            ),
            event(
                channel,
                3,
                "claim",
                "pt-4f1c9a",
                "his.invoices:1003",
                r#"{"claim_no":"C-2026-1003","hospital":"hospital-b","procedure":"D2711","amount_krw":185000,"treated_on":"2026-11-02"}"#,
            ),
        ],
        "customs" => vec![
            event(
                channel,
                1,
                "order",
                "cs-19ad03",
                "mall.orders:77120",
                r#"{"order_no":"M-77120","consignee":"cs-19ad03","value_krw":412000}"#,
            ),
            event(
                channel,
                2,
                "shipment",
                "cs-19ad03",
                "manifest-20261124.txt:18",
                r#"{"hbl":"KR24-55810","order_no":"M-77120","weight_kg":2.4,"pieces":1}"#,
            ),
            event(
                channel,
                3,
                "declaration",
                "cs-19ad03",
                "customs.declarations:9031",
                r#"{"declaration_no":"D-9031","hbl":"KR24-55810","declared_value_krw":120000}"#,
            ),
        ],
        "land" => vec![
            event(
                channel,
                1,
                "title_transfer",
                "ow-a01f77",
                "registry.transfers:5521",
                r#"{"parcel_id":"11680-10300-0012","seller":"ow-a01f77","buyer":"ow-c3d912","price_krw":980000000}"#,
            ),
            event(
                channel,
                2,
                "mortgage",
                "ow-c3d912",
                "registry.mortgages:880",
                r#"{"parcel_id":"11680-10300-0012","bank":"bank-a","amount_krw":500000000}"#,
            ),
        ],
        "bank" => vec![
            event(
                channel,
                1,
                "transfer",
                "ac-5e0b41",
                "core.transfers:300451",
                r#"{"tx_ref":"T-300451","from":"ac-5e0b41","to":"ac-71aa02","amount_krw":9800000}"#,
            ),
            event(
                channel,
                2,
                "transfer",
                "ac-5e0b41",
                "core.transfers:300452",
                r#"{"tx_ref":"T-300452","from":"ac-5e0b41","to":"ac-90fe13","amount_krw":9750000}"#,
            ),
            event(
                channel,
                3,
                "remittance",
                "ac-71aa02",
                "core.remittances:1209",
                r#"{"tx_ref":"R-1209","from":"ac-71aa02","country":"VN","amount_krw":9600000}"#,
            ),
        ],
        _ => Vec::new(),
    }
}
