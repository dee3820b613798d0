"""Events for the dashboard test, produced with confluent-kafka as a shop would.

phase 1: 8 minutes of event time ending 4 minutes ago (orders, clicks, errors), whose newest
         order has the id `<img src=x onerror=alert(1)>` and whose FATAL error comes from a
         service named `<b onmouseover=alert(2)>svc</b>`: both must show as text.
phase 2: the last 12 seconds, more and dearer orders: the cards must change once the
         current minute closes.

usage: dashboard_stream.py BROKERS phase1|phase2
"""
import datetime
import json
import random
import sys
import time

from confluent_kafka import Producer

XSS_ORDER = "<img src=x onerror=alert(1)>"
XSS_SERVICE = "<b onmouseover=alert(2)>svc</b>"


def ts(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")


def minute_events(rng, t0, orders_per_step, tag, price=12.5):
    out = []
    for step in range(6):
        base = t0 + step * 10
        for i in range(orders_per_step):
            out.append(("orders_topic", base + 1 + i, {
                "order_id": f"{tag}-o-{int(base)}-{i}", "user_id": f"user_{rng.randrange(40)}",
                "product_id": f"p{i}", "quantity": 1 + i % 3, "price": price + i, "status": "CREATED"}, "order_time"))
        for i in range(8):
            out.append(("clicks_topic", base + 0.5 + i, {
                "click_id": f"{tag}-c-{int(base)}-{i}", "user_id": f"user_{rng.randrange(40)}", "url": "/p",
                "device_type": "mobile"}, "click_time"))
        sev = ["WARN", "ERROR", "ERROR"][step % 3]
        out.append(("errors_topic", base + 5, {
            "error_id": f"{tag}-e-{int(base)}", "service_name": "checkout", "error_message": "slow upstream",
            "severity": sev}, "error_time"))
    return out


def main():
    brokers, phase = sys.argv[1], sys.argv[2]
    rng = random.Random(7 if phase == "phase1" else 8)
    now_min = int(time.time()) // 60 * 60
    events = []
    if phase == "phase1":
        start = now_min - 12 * 60
        for m in range(8):
            events += minute_events(rng, start + m * 60, 3, "p1")
        last = start + 8 * 60 - 2
        events.append(("errors_topic", last - 1, {
            "error_id": "p1-fatal", "service_name": XSS_SERVICE, "error_message": "<script>alert(3)</script>",
            "severity": "FATAL"}, "error_time"))
        events.append(("orders_topic", last, {
            "order_id": XSS_ORDER, "user_id": "user_1", "product_id": "p1", "quantity": 1, "price": 9.99,
            "status": "CREATED"}, "order_time"))
    else:
        # Event time now: the watermark follows processing time once phase 1 went quiet, so
        # anything older would be late. Squeezed into the last 12 seconds.
        now = time.time()
        for topic, t, payload, field in minute_events(rng, 0, 7, "p2", price=99.5):
            events.append((topic, now - 12 + t / 5, payload, field))
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "linger.ms": 5})
    for topic, t, payload, field in sorted(events, key=lambda e: e[1]):
        payload[field] = ts(t)
        producer.produce(topic, json.dumps(payload).encode())
        producer.poll(0)
    left = producer.flush(30)
    if left:
        sys.exit(f"{left} events not acknowledged")
    print(json.dumps({"phase": phase, "events": len(events)}))


if __name__ == "__main__":
    main()
