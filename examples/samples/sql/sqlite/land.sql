-- Land registry, SQLite dialect (the embedded demo). Idempotent.
-- Legacy style: dates as YYYYMMDD strings, transfer prices as text with thousands separators,
-- two-digit legacy codes, no foreign keys. Every table: integer AUTOINCREMENT key and an indexed updated_at.

CREATE TABLE IF NOT EXISTS districts (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  district_cd     CHAR(5)      NOT NULL UNIQUE,      -- 시군구 코드
  district_nm     VARCHAR(40)  NOT NULL,
  median_price_m2 BIGINT       NOT NULL,             -- median market price per m2, KRW (yearly reference)
  updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS districts_updated_at ON districts (updated_at);

CREATE TABLE IF NOT EXISTS parcels (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  pnu         CHAR(19)      NOT NULL UNIQUE,         -- 필지고유번호
  district_cd CHAR(5)       NOT NULL,
  addr        VARCHAR(120)  NOT NULL,
  land_cat_cd CHAR(2)       NOT NULL,                -- 지목 '08' 대, '01' 전, '02' 답
  area_m2     NUMERIC(10,2) NOT NULL,
  updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS parcels_updated_at ON parcels (updated_at);

CREATE TABLE IF NOT EXISTS titles (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  title_no        VARCHAR(16)  NOT NULL UNIQUE,      -- 소유권 등기 순위번호
  pnu             CHAR(19)     NOT NULL,
  owner_nm        VARCHAR(40)  NOT NULL,
  owner_rrn       CHAR(14)     NOT NULL,
  acquired_ymd    CHAR(8)      NOT NULL,
  cause_cd        CHAR(2)      NOT NULL,             -- '01' 매매 sale, '02' 상속 inheritance, '03' 보존 first registration
  title_status_cd CHAR(2)      NOT NULL,             -- '01' current, '02' closed
  updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS titles_updated_at ON titles (updated_at);

CREATE TABLE IF NOT EXISTS title_transfers (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  receipt_no    VARCHAR(16)  NOT NULL UNIQUE,        -- 접수번호
  pnu           CHAR(19)     NOT NULL,
  seller_nm     VARCHAR(40)  NOT NULL,
  seller_rrn    CHAR(14)     NOT NULL,
  buyer_nm      VARCHAR(40)  NOT NULL,
  buyer_rrn     CHAR(14)     NOT NULL,
  price_amt     VARCHAR(24)  NOT NULL,               -- KRW as text, '1,250,000,000'
  contract_ymd  CHAR(8)      NOT NULL,
  registered_at TIMESTAMP    NOT NULL,
  updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS title_transfers_updated_at ON title_transfers (updated_at);

CREATE TABLE IF NOT EXISTS mortgages (
  id                 INTEGER PRIMARY KEY AUTOINCREMENT,
  mortgage_no        VARCHAR(16) NOT NULL UNIQUE,    -- 근저당권 접수번호
  pnu                CHAR(19)    NOT NULL,
  mortgagee_nm       VARCHAR(40) NOT NULL,           -- lending bank
  debtor_rrn         CHAR(14)    NOT NULL,
  max_claim_amt      BIGINT      NOT NULL,           -- 채권최고액 KRW
  registered_ymd     CHAR(8)     NOT NULL,
  released_ymd       CHAR(8),
  mortgage_status_cd CHAR(2)     NOT NULL,           -- '01' active, '02' released
  updated_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE INDEX IF NOT EXISTS mortgages_updated_at ON mortgages (updated_at);

-- Seed data: districts and their median price per m2 (normal transfers are priced within 25% of
-- it; `price_outlier` transfers are below half or above twice).
INSERT OR IGNORE INTO districts (district_cd, district_nm, median_price_m2) VALUES
  ('11680', '서울특별시 강남구', 25000000),
  ('11650', '서울특별시 서초구', 22000000),
  ('11710', '서울특별시 송파구', 18000000),
  ('11440', '서울특별시 마포구', 14000000),
  ('11110', '서울특별시 종로구', 16000000),
  ('41135', '경기도 성남시 분당구', 9000000),
  ('26350', '부산광역시 해운대구', 6000000),
  ('43113', '충청북도 청주시 흥덕구', 1200000);
