"""Produce a known stream with confluent-kafka (as a user's script would): 24 minutes of event
time, shuffled within 10-second steps (disorder below the allowed lateness), with
  - 3 FATAL errors (service "database") at minutes 3, 11 and 19,
  - an error spike of service "payment" in minute 8 (48 ERROR instead of 3 WARN + 3 ERROR),
  - no orders at all in minute 14 (orders and revenue drop),
so the expected alerts are known: 3 FATAL_ERROR, 1 ERROR_SPIKE, 1 HIGH_ERROR_RATE,
1 ORDERS_DROP, 1 REVENUE_DROP (and NO_DATA per topic once the stream stops).

usage: known_stream.py BROKERS BASE_EPOCH_SECONDS [STEP_DELAY_SECONDS]
"""
import datetime
import json
import random
import sys
import time

from confluent_kafka import Producer


def ts(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")


def main():
    brokers, base = sys.argv[1], int(sys.argv[2])
    step_delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    rng = random.Random(1)
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "linger.ms": 5})
    n = 0
    for step in range(24 * 6):
        minute = step // 6
        t0 = base + step * 10
        events = []
        if minute != 14:
            for i in range(4):
                events.append(("orders_topic", t0 + 0.5 + i * 2.3, lambda t, i=i: {
                    "order_id": f"o-{step}-{i}", "user_id": f"user_{(step + i) % 30}", "product_id": f"p{i}",
                    "quantity": 1 + i % 3, "price": 19.99, "order_time": ts(t), "status": "CREATED"}))
        for i in range(10):
            events.append(("clicks_topic", t0 + 0.5 + i * 0.9, lambda t, i=i: {
                "click_id": f"c-{step}-{i}", "user_id": f"user_{(step * 7 + i) % 30}", "url": "/p",
                "device_type": "mobile", "click_time": ts(t)}))
        if minute == 8:
            for i in range(8):
                events.append(("errors_topic", t0 + 0.5 + i, lambda t, i=i: {
                    "error_id": f"e-{step}-{i}", "service_name": "payment", "error_message": "card declined",
                    "severity": "ERROR", "error_time": ts(t)}))
        else:
            events.append(("errors_topic", t0 + 5, lambda t: {
                "error_id": f"e-{step}", "service_name": "payment", "error_message": "slow",
                "severity": "ERROR" if step % 2 else "WARN", "error_time": ts(t)}))
        if step in (3 * 6 + 2, 11 * 6 + 2, 19 * 6 + 2):
            events.append(("errors_topic", t0 + 7, lambda t: {
                "error_id": f"f-{step}", "service_name": "database", "error_message": "disk full",
                "severity": "FATAL", "error_time": ts(t)}))
        rng.shuffle(events)
        for topic, t, make in events:
            producer.produce(topic, json.dumps(make(t)).encode())
            n += 1
        producer.poll(0)
        if step_delay:
            producer.flush(10)
            time.sleep(step_delay)
    left = producer.flush(30)
    if left:
        sys.exit(f"{left} messages not delivered")
    print(n)


if __name__ == "__main__":
    main()
