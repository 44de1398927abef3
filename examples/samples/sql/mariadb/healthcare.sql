-- Hospital information system (HIS), MariaDB dialect. Idempotent: safe to apply again.
-- Legacy style on purpose: dates of service as YYYYMMDD strings, some amounts as text with
-- thousands separators, status codes as two-digit legacy codes, no foreign keys (rows refer to
-- each other by business number). Every table: integer AUTO_INCREMENT key and an indexed
-- updated_at, so a connector can poll it incrementally.

CREATE TABLE IF NOT EXISTS hospitals (
  id          BIGINT AUTO_INCREMENT PRIMARY KEY,
  hospital_cd CHAR(8)      NOT NULL UNIQUE,          -- 요양기관기호
  hospital_nm VARCHAR(60)  NOT NULL,
  region_nm   VARCHAR(30)  NOT NULL,
  updated_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX IF NOT EXISTS hospitals_updated_at ON hospitals (updated_at);

CREATE TABLE IF NOT EXISTS procedure_codes (
  id          BIGINT AUTO_INCREMENT PRIMARY KEY,
  proc_cd     VARCHAR(10)  NOT NULL UNIQUE,          -- EDI 수가코드
  proc_nm     VARCHAR(80)  NOT NULL,
  usual_amt   INT          NOT NULL,                 -- usual fee in KRW
  updated_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX IF NOT EXISTS procedure_codes_updated_at ON procedure_codes (updated_at);

CREATE TABLE IF NOT EXISTS patients (
  id          BIGINT AUTO_INCREMENT PRIMARY KEY,
  patient_no  VARCHAR(12)  NOT NULL UNIQUE,          -- 환자번호
  hospital_cd CHAR(8)      NOT NULL,                 -- hospital of first registration
  patient_nm  VARCHAR(40)  NOT NULL,
  rrn         CHAR(14)     NOT NULL,                 -- 주민등록번호 YYMMDD-GNNNNNN
  birth_ymd   CHAR(8)      NOT NULL,
  sex_cd      CHAR(1)      NOT NULL,                 -- '1' male, '2' female
  phone_no    VARCHAR(13)  NOT NULL,
  addr        VARCHAR(120) NOT NULL,
  reg_ymd     CHAR(8)      NOT NULL,
  updated_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX IF NOT EXISTS patients_updated_at ON patients (updated_at);

CREATE TABLE IF NOT EXISTS insurance_policies (
  id          BIGINT AUTO_INCREMENT PRIMARY KEY,
  policy_no   VARCHAR(16)  NOT NULL UNIQUE,
  patient_no  VARCHAR(12)  NOT NULL,
  insurer_cd  CHAR(2)      NOT NULL,                 -- '01'..'05'
  product_nm  VARCHAR(60)  NOT NULL,
  start_ymd   CHAR(8)      NOT NULL,
  end_ymd     CHAR(8)      NOT NULL,                 -- inclusive
  status_cd   CHAR(2)      NOT NULL,                 -- '01' in force, '02' expired
  updated_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX IF NOT EXISTS insurance_policies_updated_at ON insurance_policies (updated_at);

CREATE TABLE IF NOT EXISTS visits (
  id            BIGINT AUTO_INCREMENT PRIMARY KEY,
  visit_no      VARCHAR(16) NOT NULL UNIQUE,         -- 내원번호
  patient_no    VARCHAR(12) NOT NULL,
  hospital_cd   CHAR(8)     NOT NULL,
  dept_cd       CHAR(2)     NOT NULL,                -- 진료과 '01' 내과 .. '06' 안과
  visit_ymd     CHAR(8)     NOT NULL,
  visit_type_cd CHAR(2)     NOT NULL,                -- '01' outpatient, '02' inpatient
  updated_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX IF NOT EXISTS visits_updated_at ON visits (updated_at);

CREATE TABLE IF NOT EXISTS treatments (
  id           BIGINT AUTO_INCREMENT PRIMARY KEY,
  treatment_no VARCHAR(18) NOT NULL UNIQUE,
  visit_no     VARCHAR(16) NOT NULL,
  patient_no   VARCHAR(12) NOT NULL,
  proc_cd      VARCHAR(10) NOT NULL,
  treat_ymd    CHAR(8)     NOT NULL,
  qty          INT         NOT NULL,
  amount       VARCHAR(20) NOT NULL,                 -- KRW as text, e.g. '35,000'
  updated_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX IF NOT EXISTS treatments_updated_at ON treatments (updated_at);

CREATE TABLE IF NOT EXISTS invoices (
  id            BIGINT AUTO_INCREMENT PRIMARY KEY,
  invoice_no    VARCHAR(16) NOT NULL UNIQUE,         -- 영수증번호, one per visit
  visit_no      VARCHAR(16) NOT NULL,
  patient_no    VARCHAR(12) NOT NULL,
  total_amt     VARCHAR(20) NOT NULL,                -- KRW as text with separators
  issue_ymd     CHAR(8)     NOT NULL,
  pay_status_cd CHAR(2)     NOT NULL,                -- '01' paid, '02' unpaid
  updated_at    DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX IF NOT EXISTS invoices_updated_at ON invoices (updated_at);

CREATE TABLE IF NOT EXISTS claims (
  id              BIGINT AUTO_INCREMENT PRIMARY KEY,
  claim_no        VARCHAR(16)   NOT NULL UNIQUE,     -- 실손보험 청구번호
  treatment_no    VARCHAR(18)   NOT NULL,
  visit_no        VARCHAR(16)   NOT NULL,
  patient_no      VARCHAR(12)   NOT NULL,
  policy_no       VARCHAR(16)   NOT NULL,
  hospital_cd     CHAR(8)       NOT NULL,
  proc_cd         VARCHAR(10)   NOT NULL,
  treat_ymd       CHAR(8)       NOT NULL,
  claim_amt       DECIMAL(12,0) NOT NULL,
  claim_status_cd CHAR(2)       NOT NULL,            -- '01' submitted, '02' paid, '03' rejected
  claimed_at      DATETIME      NOT NULL,
  updated_at      DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX IF NOT EXISTS claims_updated_at ON claims (updated_at);

-- Seed data: hospitals and the procedure fee schedule (usual_amt is what the generator centres
-- normal fees on; claims above 3x usual_amt are the `claim_amount_outlier` anomaly).
INSERT IGNORE INTO hospitals (hospital_cd, hospital_nm, region_nm) VALUES
  ('11100011', '한빛대학교병원', '서울'),
  ('11100027', '새솔종합병원', '서울'),
  ('31200035', '푸른내과의원', '경기'),
  ('31200041', '바른정형외과의원', '경기'),
  ('21100059', '하늘안과의원', '부산');
INSERT IGNORE INTO procedure_codes (proc_cd, proc_nm, usual_amt) VALUES
  ('AA157', '초진 진찰료', 18000),
  ('AA257', '재진 진찰료', 13000),
  ('B1010', '일반혈액검사(CBC)', 9000),
  ('HA101', '흉부 단순 X선 촬영', 25000),
  ('HE101', '상복부 초음파', 120000),
  ('HF101', '뇌 MRI', 450000),
  ('KK051', '위 내시경', 80000),
  ('MM101', '도수치료', 100000),
  ('S5121', '백내장 수술', 1200000),
  ('N0711', '관절경 수술', 1800000);
