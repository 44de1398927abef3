-- Core banking, SQLite dialect (the embedded demo). Idempotent: safe to apply again.
-- Legacy style: dates as YYYYMMDD strings, remittance amounts as text with separators, status
-- codes as two-digit legacy codes, no foreign keys. Every table: integer AUTOINCREMENT key and an
-- indexed updated_at for incremental polling.

CREATE TABLE IF NOT EXISTS accounts (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  account_no     VARCHAR(16)  NOT NULL UNIQUE,        -- 계좌번호 NNN-NNN-NNNNNN
  customer_no    VARCHAR(12)  NOT NULL,               -- 고객번호: the party
  customer_nm    VARCHAR(40)  NOT NULL,
  rrn            CHAR(14)     NOT NULL,
  branch_cd      CHAR(4)      NOT NULL,
  product_cd     CHAR(3)      NOT NULL,               -- '101' 보통예금, '102' 급여통장, '201' 정기적금
  open_ymd       CHAR(8)      NOT NULL,
  last_txn_ymd   CHAR(8)      NOT NULL,               -- last activity
  dormant_ymd    CHAR(8)      NULL,                   -- when it was classified dormant, kept after reactivation
  acct_status_cd CHAR(2)      NOT NULL,               -- '01' normal, '02' dormant (휴면), '03' closed
  updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS accounts_updated_at ON accounts (updated_at);

CREATE TABLE IF NOT EXISTS transfers (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  txn_ref         VARCHAR(20)   NOT NULL UNIQUE,      -- 거래고유번호
  from_account_no VARCHAR(16)   NOT NULL,
  to_account_no   VARCHAR(16)   NOT NULL,
  amount_krw      DECIMAL(15,0) NOT NULL,
  txn_at          DATETIME      NOT NULL,
  channel_cd      CHAR(2)       NOT NULL,             -- '01' 창구, '02' 인터넷, '03' 모바일, '04' ATM
  memo            VARCHAR(40)   NOT NULL,
  updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS transfers_updated_at ON transfers (updated_at);

CREATE TABLE IF NOT EXISTS remittances (
  id                     INTEGER PRIMARY KEY AUTOINCREMENT,
  remit_no               VARCHAR(16) NOT NULL UNIQUE, -- 해외송금번호
  account_no             VARCHAR(16) NOT NULL,
  beneficiary_nm         VARCHAR(60) NOT NULL,
  beneficiary_country_cd CHAR(2)     NOT NULL,        -- ISO 3166 alpha-2
  currency_cd            CHAR(3)     NOT NULL,        -- ISO 4217
  fx_amt                 VARCHAR(20) NOT NULL,        -- foreign amount as text, '1,234.56'
  krw_amt                VARCHAR(20) NOT NULL,        -- KRW as text with separators
  remit_ymd              CHAR(8)     NOT NULL,
  status_cd              CHAR(2)     NOT NULL,        -- '01' requested, '02' sent
  updated_at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS remittances_updated_at ON remittances (updated_at);
