//! Rows as the generators emit them and the sinks write them; the tables, systems and domains.

use std::fmt;

use chrono::NaiveDateTime;

/// A column value. Amounts are whole KRW; `Hundredths` is a fixed-point number with two decimals
/// (areas in m², weights in kg), kept exact so that equality checks are exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A number with two decimals, stored as hundredths (`12345` is `123.45`).
    Hundredths(i64),
    /// Text (UTF-8; the manifest writer encodes it as EUC-KR).
    Text(String),
    /// A local (KST) timestamp without zone, as legacy systems keep them.
    Ts(NaiveDateTime),
}

impl Value {
    /// The text, if this is text.
    #[must_use]
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The integer (or the hundredths), if this is a number.
    #[must_use]
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(n) | Self::Hundredths(n) => Some(*n),
            _ => None,
        }
    }

    /// The timestamp, if this is one.
    #[must_use]
    pub fn as_ts(&self) -> Option<NaiveDateTime> {
        match self {
            Self::Ts(t) => Some(*t),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}

impl From<NaiveDateTime> for Value {
    fn from(t: NaiveDateTime) -> Self {
        Self::Ts(t)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// Insert a new row, or update the row whose business key is `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `INSERT`; the business key is among the columns.
    Insert,
    /// `UPDATE ... SET cols, updated_at = now WHERE <key column> = key`.
    Update {
        /// The business key of the row to update.
        key: String,
    },
}

/// One row operation. `updated_at` and the integer primary key are never among the columns:
/// the database sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The table (see [`TABLES`]).
    pub table: &'static str,
    /// Insert or update.
    pub op: Op,
    /// Columns in a fixed order per table and operation.
    pub cols: Vec<(&'static str, Value)>,
}

impl Row {
    /// An insert.
    #[must_use]
    pub fn insert(table: &'static str, cols: Vec<(&'static str, Value)>) -> Self {
        Self {
            table,
            op: Op::Insert,
            cols,
        }
    }

    /// An update of the row with business key `key`.
    #[must_use]
    pub fn update(table: &'static str, key: &str, cols: Vec<(&'static str, Value)>) -> Self {
        Self {
            table,
            op: Op::Update {
                key: key.to_owned(),
            },
            cols,
        }
    }

    /// The value of column `col`.
    #[must_use]
    pub fn get(&self, col: &str) -> Option<&Value> {
        self.cols.iter().find(|(c, _)| *c == col).map(|(_, v)| v)
    }

    /// The text of column `col`, or "" when it is missing or not text.
    #[must_use]
    pub fn text(&self, col: &str) -> &str {
        self.get(col).and_then(Value::as_text).unwrap_or("")
    }

    /// The number in column `col`, or 0 when it is missing or not a number.
    #[must_use]
    pub fn int(&self, col: &str) -> i64 {
        self.get(col).and_then(Value::as_int).unwrap_or(0)
    }

    /// The business key of the row: its key column for an insert, the target for an update.
    #[must_use]
    pub fn key(&self) -> &str {
        match &self.op {
            Op::Insert => table_spec(self.table).map_or("", |t| self.text(t.key)),
            Op::Update { key } => key,
        }
    }
}

/// A legacy system: where a group of tables lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum System {
    /// Hospital HIS (MariaDB).
    HospitalHis,
    /// Shopping mall orders and customs declarations (PostgreSQL).
    MallCustoms,
    /// Courier manifests (fixed-width EUC-KR files).
    CourierManifests,
    /// Land registry (PostgreSQL).
    LandRegistry,
    /// Core banking (MariaDB).
    CoreBanking,
}

impl System {
    /// Human name for messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::HospitalHis => "hospital HIS (MariaDB)",
            Self::MallCustoms => "mall orders and customs declarations (PostgreSQL)",
            Self::CourierManifests => "courier manifests (fixed-width files)",
            Self::LandRegistry => "land registry (PostgreSQL)",
            Self::CoreBanking => "core banking (MariaDB)",
        }
    }
}

/// One of the four reference domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    /// Hospitals and insurers.
    Healthcare,
    /// Mall, courier and customs.
    Customs,
    /// Land registry.
    Land,
    /// Banks.
    Bank,
}

impl Domain {
    /// All four, in a fixed order.
    pub const ALL: [Self; 4] = [Self::Healthcare, Self::Customs, Self::Land, Self::Bank];

    /// The name used on the command line and in labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthcare => "healthcare",
            Self::Customs => "customs",
            Self::Land => "land",
            Self::Bank => "bank",
        }
    }

    /// The systems this domain writes to.
    #[must_use]
    pub fn systems(self) -> &'static [System] {
        match self {
            Self::Healthcare => &[System::HospitalHis],
            Self::Customs => &[System::MallCustoms, System::CourierManifests],
            Self::Land => &[System::LandRegistry],
            Self::Bank => &[System::CoreBanking],
        }
    }

    /// The tables of this domain.
    pub fn tables(self) -> impl Iterator<Item = &'static TableSpec> {
        TABLES.iter().filter(move |t| t.domain == self)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A table: its business key column, domain and system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// Table name (unique across all domains, so that SQLite can hold them all).
    pub name: &'static str,
    /// The unique business key column.
    pub key: &'static str,
    /// The domain.
    pub domain: Domain,
    /// Where it lives.
    pub system: System,
    /// Reference data seeded by the schema, never written by the generator.
    pub seeded: bool,
}

const fn t(
    name: &'static str,
    key: &'static str,
    domain: Domain,
    system: System,
    seeded: bool,
) -> TableSpec {
    TableSpec {
        name,
        key,
        domain,
        system,
        seeded,
    }
}

/// The courier manifest "table": records in fixed-width files, keyed by house bill number.
pub const MANIFEST_TABLE: &str = "courier_manifest";

/// Every table of the sample systems.
pub const TABLES: &[TableSpec] = &[
    t(
        "hospitals",
        "hospital_cd",
        Domain::Healthcare,
        System::HospitalHis,
        true,
    ),
    t(
        "procedure_codes",
        "proc_cd",
        Domain::Healthcare,
        System::HospitalHis,
        true,
    ),
    t(
        "patients",
        "patient_no",
        Domain::Healthcare,
        System::HospitalHis,
        false,
    ),
    t(
        "insurance_policies",
        "policy_no",
        Domain::Healthcare,
        System::HospitalHis,
        false,
    ),
    t(
        "visits",
        "visit_no",
        Domain::Healthcare,
        System::HospitalHis,
        false,
    ),
    t(
        "treatments",
        "treatment_no",
        Domain::Healthcare,
        System::HospitalHis,
        false,
    ),
    t(
        "invoices",
        "invoice_no",
        Domain::Healthcare,
        System::HospitalHis,
        false,
    ),
    t(
        "claims",
        "claim_no",
        Domain::Healthcare,
        System::HospitalHis,
        false,
    ),
    t(
        "mall_orders",
        "order_no",
        Domain::Customs,
        System::MallCustoms,
        false,
    ),
    t(
        "customs_declarations",
        "declaration_no",
        Domain::Customs,
        System::MallCustoms,
        false,
    ),
    t(
        MANIFEST_TABLE,
        "hbl_no",
        Domain::Customs,
        System::CourierManifests,
        false,
    ),
    t(
        "districts",
        "district_cd",
        Domain::Land,
        System::LandRegistry,
        true,
    ),
    t("parcels", "pnu", Domain::Land, System::LandRegistry, false),
    t(
        "titles",
        "title_no",
        Domain::Land,
        System::LandRegistry,
        false,
    ),
    t(
        "title_transfers",
        "receipt_no",
        Domain::Land,
        System::LandRegistry,
        false,
    ),
    t(
        "mortgages",
        "mortgage_no",
        Domain::Land,
        System::LandRegistry,
        false,
    ),
    t(
        "accounts",
        "account_no",
        Domain::Bank,
        System::CoreBanking,
        false,
    ),
    t(
        "transfers",
        "txn_ref",
        Domain::Bank,
        System::CoreBanking,
        false,
    ),
    t(
        "remittances",
        "remit_no",
        Domain::Bank,
        System::CoreBanking,
        false,
    ),
];

/// The spec of table `name`.
#[must_use]
pub fn table_spec(name: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|t| t.name == name)
}

/// An anomaly kind of DESIGN §2. The snake_case names are stable: detectors and labels files
/// depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnomalyKind {
    /// Customs: declared value below the order value.
    Undervaluation,
    /// Customs: ≥3 declarations to one consignee within 3 days, each under the duty-free
    /// limit, together above it.
    SplitShipment,
    /// Customs: the manifest's weight, package count or value differs from the declaration.
    ManifestMismatch,
    /// Healthcare: two claims for the same patient, procedure and date.
    DuplicateClaim,
    /// Healthcare: claim amount above 3× the usual fee of the procedure.
    ClaimAmountOutlier,
    /// Healthcare: treatment date outside the claimed policy's period.
    TreatmentOutsidePolicy,
    /// Land: a parcel transferred again within 90 days of its previous transfer.
    QuickResale,
    /// Land: price per m² below half or above twice the district median.
    PriceOutlier,
    /// Land: the seller is not the owner on record.
    SellerNotOwner,
    /// Land: a parcel transferred while a mortgage on it is not released.
    MortgagedTransfer,
    /// Bank: ≥3 transfers by one party, each 9,000,000–9,999,999 KRW, within 24 h.
    Structuring,
    /// Bank: ≥1,000,000 KRW in and ≥90% of it out of one account within 10 minutes.
    PassThrough,
    /// Bank: an outgoing transfer from an account without activity for ≥365 days.
    DormantReactivation,
    /// Bank: ≥10 outgoing transfers from one account within 60 minutes.
    VelocitySpike,
}

impl AnomalyKind {
    /// Every kind.
    pub const ALL: [Self; 14] = [
        Self::Undervaluation,
        Self::SplitShipment,
        Self::ManifestMismatch,
        Self::DuplicateClaim,
        Self::ClaimAmountOutlier,
        Self::TreatmentOutsidePolicy,
        Self::QuickResale,
        Self::PriceOutlier,
        Self::SellerNotOwner,
        Self::MortgagedTransfer,
        Self::Structuring,
        Self::PassThrough,
        Self::DormantReactivation,
        Self::VelocitySpike,
    ];

    /// The stable snake_case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Undervaluation => "undervaluation",
            Self::SplitShipment => "split_shipment",
            Self::ManifestMismatch => "manifest_mismatch",
            Self::DuplicateClaim => "duplicate_claim",
            Self::ClaimAmountOutlier => "claim_amount_outlier",
            Self::TreatmentOutsidePolicy => "treatment_outside_policy",
            Self::QuickResale => "quick_resale",
            Self::PriceOutlier => "price_outlier",
            Self::SellerNotOwner => "seller_not_owner",
            Self::MortgagedTransfer => "mortgaged_transfer",
            Self::Structuring => "structuring",
            Self::PassThrough => "pass_through",
            Self::DormantReactivation => "dormant_reactivation",
            Self::VelocitySpike => "velocity_spike",
        }
    }

    /// The domain the kind belongs to.
    #[must_use]
    pub fn domain(self) -> Domain {
        match self {
            Self::Undervaluation | Self::SplitShipment | Self::ManifestMismatch => Domain::Customs,
            Self::DuplicateClaim | Self::ClaimAmountOutlier | Self::TreatmentOutsidePolicy => {
                Domain::Healthcare
            }
            Self::QuickResale
            | Self::PriceOutlier
            | Self::SellerNotOwner
            | Self::MortgagedTransfer => Domain::Land,
            Self::Structuring
            | Self::PassThrough
            | Self::DormantReactivation
            | Self::VelocitySpike => Domain::Bank,
        }
    }

    /// The kinds of one domain.
    #[must_use]
    pub fn of(domain: Domain) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|k| k.domain() == domain)
            .collect()
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A row a label points at, before the database has given it a primary key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowRef {
    /// The table.
    pub table: &'static str,
    /// The row's business key.
    pub key: String,
}

/// An injected anomaly, as the generator knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLabel {
    /// The kind.
    pub kind: AnomalyKind,
    /// The business keys a person would search for (order no., patient no., account no., ...).
    pub business_keys: Vec<String>,
    /// The rows that make the anomaly, all written in the same batch as the label.
    pub rows: Vec<RowRef>,
    /// When it happened on the simulated business clock (KST).
    pub at: NaiveDateTime,
}

/// What one generator step (or several) produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Row operations in order.
    pub rows: Vec<Row>,
    /// Anomalies injected among them.
    pub labels: Vec<PendingLabel>,
}
