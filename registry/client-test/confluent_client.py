"""A standard Confluent client against ledgerbridge's registry (/registry).

Run by scripts/test.sh against a live node:
    LEDGERBRIDGE_URL=http://127.0.0.1:PORT LEDGERBRIDGE_TOKEN=lbt_... python3 confluent_client.py

It registers a schema through the registry API (admin token), then uses confluent-kafka's own
SchemaRegistryClient, AvroSerializer and AvroDeserializer with the registry URL: the serializer
frames a record with our schema id (magic byte 0x00 + 4-byte id) and the deserializer resolves
that id through our registry and decodes it. Prints "N passed, N failed" and exits non-zero on
any failure.
"""

import json
import os
import sys
import urllib.request

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

BASE = os.environ["LEDGERBRIDGE_URL"].rstrip("/")
TOKEN = os.environ["LEDGERBRIDGE_TOKEN"]
SUBJECT = "raw.client-test-value"
SCHEMA = {
    "type": "record",
    "name": "claim",
    "namespace": "raw.his",
    "fields": [
        {"name": "claim_no", "type": "string"},
        {"name": "amount_krw", "type": "long"},
        {"name": "ward", "type": ["null", "string"], "default": None},
    ],
}

results = []


def check(name, condition, detail=""):
    results.append(condition)
    print(("ok   " if condition else "FAIL ") + name + ("" if condition else f": {detail}"))


def register():
    body = json.dumps({"schema": json.dumps(SCHEMA)}).encode()
    req = urllib.request.Request(
        f"{BASE}/registry/subjects/{SUBJECT}/versions",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)["id"]


def main():
    schema_id = register()
    client = SchemaRegistryClient({"url": f"{BASE}/registry"})

    fetched = client.get_schema(schema_id)
    check("get_schema by id", json.loads(fetched.schema_str) == SCHEMA, fetched.schema_str)
    latest = client.get_latest_version(SUBJECT)
    check("get_latest_version", latest.schema_id == schema_id and latest.version >= 1, latest)
    check("get_subjects", SUBJECT in client.get_subjects())

    serializer = AvroSerializer(
        client,
        json.dumps(SCHEMA),
        conf={"auto.register.schemas": False, "use.latest.version": True},
    )
    ctx = SerializationContext("raw.client-test", MessageField.VALUE)
    record = {"claim_no": "C-2026-1001", "amount_krw": 185000, "ward": None}
    framed = serializer(record, ctx)
    check("Confluent framing: magic byte 0", framed[0] == 0, framed[:5])
    check("Confluent framing: our schema id", int.from_bytes(framed[1:5], "big") == schema_id, framed[:5])
    decoded = AvroDeserializer(client)(framed, ctx)
    check("a Confluent deserializer decodes through our registry", decoded == record, decoded)

    passed = sum(results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
