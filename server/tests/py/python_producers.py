"""Produce with the clients users' existing scripts use, unchanged: kafka-python's
KafkaProducer with a JSON value serializer, and confluent-kafka. Appends acks to the log."""
import datetime
import json
import sys
import uuid

from kafka import KafkaProducer
from confluent_kafka import Producer

brokers, ack_log, n = sys.argv[1], sys.argv[2], int(sys.argv[3])


def order():
    return {
        "order_id": str(uuid.uuid4()), "user_id": "user_1", "product_id": "product_2",
        "quantity": 2, "price": 19.99, "status": "CREATED",
        "order_time": datetime.datetime.utcnow().isoformat(),
    }


with open(ack_log, "a") as log:
    kp = KafkaProducer(bootstrap_servers=brokers, value_serializer=lambda v: json.dumps(v).encode("utf-8"))
    for _ in range(n):
        o = order()
        md = kp.send("orders_topic", o).get(timeout=30)
        log.write(json.dumps({"topic": md.topic, "partition": md.partition, "offset": md.offset, "id": o["order_id"], "malformed": None}) + "\n")
    kp.flush()
    kp.close()

    cp = Producer({"bootstrap.servers": brokers})
    acks = []

    def delivered(err, msg, oid):
        if err is None:
            acks.append({"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(), "id": oid, "malformed": None})

    for _ in range(n):
        o = order()
        cp.produce("orders_topic", json.dumps(o).encode(), callback=lambda e, m, oid=o["order_id"]: delivered(e, m, oid))
    cp.flush(30)
    for a in acks:
        log.write(json.dumps(a) + "\n")
    if len(acks) != n:
        sys.exit(f"confluent-kafka: only {len(acks)}/{n} acked")
