-- Shopping mall orders and personal customs declarations, SQLite dialect (the embedded demo). Idempotent.
-- The courier manifests of the same shipments are fixed-width EUC-KR files (see README).
-- Legacy style: declared amount as text with thousands separators, declaration date as YYYYMMDD,
-- two-digit status codes, no foreign keys. Every table: integer AUTOINCREMENT key and an indexed updated_at.

CREATE TABLE IF NOT EXISTS mall_orders (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  order_no        VARCHAR(20)  NOT NULL UNIQUE,      -- 주문번호
  mall_cd         CHAR(4)      NOT NULL,
  buyer_id        VARCHAR(20)  NOT NULL,
  consignee_nm    VARCHAR(40)  NOT NULL,             -- 수취인
  consignee_tel   VARCHAR(13)  NOT NULL,
  consignee_addr  VARCHAR(120) NOT NULL,
  customs_id      CHAR(13)     NOT NULL,             -- 개인통관고유부호 P + 12 digits
  item_nm         VARCHAR(80)  NOT NULL,
  item_qty        INTEGER      NOT NULL,
  item_value_krw  BIGINT       NOT NULL,             -- what the buyer paid, KRW
  order_status_cd CHAR(2)      NOT NULL,             -- '01' paid, '02' shipped
  created_at      TIMESTAMP    NOT NULL,             -- order time, local (KST)
  updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS mall_orders_updated_at ON mall_orders (updated_at);

CREATE TABLE IF NOT EXISTS customs_declarations (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  declaration_no  VARCHAR(20)  NOT NULL UNIQUE,      -- 수입신고번호
  order_no        VARCHAR(20)  NOT NULL,
  hbl_no          VARCHAR(12)  NOT NULL,             -- house bill of lading, also on the manifest
  consignee_nm    VARCHAR(40)  NOT NULL,
  customs_id      CHAR(13)     NOT NULL,
  declared_amt    VARCHAR(20)  NOT NULL,             -- declared value in KRW, text '123,000'
  gross_wt_kg     NUMERIC(8,2) NOT NULL,
  pkg_cnt         INTEGER      NOT NULL,
  declare_ymd     CHAR(8)      NOT NULL,
  clear_status_cd CHAR(2)      NOT NULL,             -- '01' filed, '02' cleared
  updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS customs_declarations_updated_at ON customs_declarations (updated_at);
