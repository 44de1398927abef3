"""A standard Confluent consumer reading a connector's raw topic on Kafka.

Run by scripts/test.sh against a live node whose bus is Kafka and whose `mall-orders` connector
has read connectors/client-test/source.sql:
    LEDGERBRIDGE_URL=http://127.0.0.1:PORT KAFKA=127.0.0.1:PORT TOPIC=<prefix>raw.mall-orders \
        python3 confluent_consumer.py

confluent-kafka's DeserializingConsumer with its AvroDeserializer, given only the node's
registry URL (`/registry`), must decode every record: the Confluent framing (magic byte and
schema id) resolves through our registry. Prints "N passed, N failed"; exits non-zero on failure.
"""

import datetime
import os
import sys
import time

from confluent_kafka import DeserializingConsumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import StringDeserializer

BASE = os.environ["LEDGERBRIDGE_URL"].rstrip("/")
ROWS = 25
results = []


def check(name, condition, detail=""):
    results.append(condition)
    print(("ok   " if condition else "FAIL ") + name + ("" if condition else f": {detail}"))


registry = SchemaRegistryClient({"url": f"{BASE}/registry"})
consumer = DeserializingConsumer(
    {
        "bootstrap.servers": os.environ["KAFKA"],
        "group.id": f"confluent-consumer-{os.getpid()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "key.deserializer": StringDeserializer("utf_8"),
        "value.deserializer": AvroDeserializer(registry),
    }
)
consumer.subscribe([os.environ["TOPIC"]])
records = {}
deadline = time.time() + 60
try:
    while len(records) < ROWS and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            print(f"consumer error: {msg.error()}", file=sys.stderr)
            continue
        records[msg.key()] = msg.value()
finally:
    consumer.close()

check("every row decoded by AvroDeserializer", len(records) == ROWS, f"{len(records)} of {ROWS}")
check("keys are the source primary keys", set(records) == {str(i) for i in range(1, ROWS + 1)}, sorted(records))
r7 = records.get("7", {})
source = r7.get("source", {})
row = r7.get("row", {})
check("provenance: connector", source.get("connector") == "mall-orders", source)
check("provenance: table and key", (source.get("table"), source.get("key")) == ("public.orders", "7"), source)
check("provenance: position", str(source.get("position", "")).startswith("lsn="), source)
check("provenance: extraction time", isinstance(source.get("extracted_at"), datetime.datetime), source)
check("Korean text", row.get("consignee") == "수취인 7", row)
check("exact decimal", row.get("item_value") == "8753.50", row)
check("date", row.get("ordered_on") == datetime.date(2026, 3, 8), row)
check("boolean and null", (row.get("gift"), records.get("3", {}).get("row", {}).get("gift")) == (False, None), row)
check("timestamp", isinstance(row.get("updated_at"), datetime.datetime), row)

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
