-- A small legacy table for the Confluent-consumer check (scripts/test.sh): Korean text, exact
-- decimals, dates, timestamps, nulls.
CREATE TABLE orders (
    order_id bigserial PRIMARY KEY,
    consignee text NOT NULL,
    item_value numeric(14, 2) NOT NULL,
    ordered_on date NOT NULL,
    gift boolean,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO orders (consignee, item_value, ordered_on, gift)
SELECT '수취인 ' || g, g * 1250.50, date '2026-03-01' + g, CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END
FROM generate_series(1, 25) g;
