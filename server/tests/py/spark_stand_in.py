"""The old stack's Spark job, as far as what it leaves on disk goes (shared/reference/
spark-handover.md), written by an independent writer (pyiceberg, confluent-kafka):

  make    — the seed's tables with the seed's columns (CREATE TABLE … USING iceberg: every column
            optional, TIMESTAMP as timestamptz, no partition spec) in the shopwatch catalog;
            each raw topic's messages read from Kafka in batches, epochs 0..E appended with
            `spark.sql.streaming.queryId/epochId` in the snapshot summary, a checkpoint per
            query (metadata, sources/0/0, offsets/N, commits/N) whose batch E+1 is planned but
            never landed and whose commit log misses E (Spark stopped between the two); and
            orders_revenue_per_minute with the windows Spark's watermark (2 min) had closed.
            Prints, per topic and partition, where Spark's last landed batch ended.
  verify  — every Kafka message of every raw topic is in the lake exactly once: by id in
            Spark's part (rows without kafka columns), by (partition, offset) in shopwatch's,
            never in both; and orders_revenue_per_minute: Spark's windows untouched, no window
            twice, shopwatch's windows equal a recount over both parts.
  locations — each table's metadata location (to show a refused start-up left it untouched).
"""
import argparse
import datetime
import json
import os
import sys
import uuid
from collections import Counter, defaultdict

import pyarrow as pa
from confluent_kafka import Consumer, TopicPartition
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyiceberg.types import (DoubleType, IntegerType, LongType, NestedField, StringType,
                             TimestamptzType)

NS = "ecommerce_db"
S, I, L, D, T = StringType(), IntegerType(), LongType(), DoubleType(), TimestamptzType()
# The seed job's CREATE TABLE statements (shared/seed/spark-apps/streaming_processor.py).
SEED = {
    "orders_processed": [("order_id", S), ("user_id", S), ("product_id", S), ("quantity", I),
                         ("price", D), ("order_total", D), ("status", S), ("order_ts", T)],
    "clicks_processed": [("click_id", S), ("user_id", S), ("url", S), ("device_type", S),
                         ("click_ts", T)],
    "errors_processed": [("error_id", S), ("service_name", S), ("error_message", S),
                         ("severity", S), ("error_ts", T)],
    "orders_revenue_per_minute": [("window_start", T), ("window_end", T), ("orders_count", L),
                                  ("total_revenue", D)],
    "active_users_per_window": [("window_start", T), ("window_end", T),
                                ("active_users_approx", L)],
    "errors_per_minute": [("window_start", T), ("window_end", T), ("service_name", S),
                          ("severity", S), ("error_count", L)],
    "alerts": [("alert_id", S), ("alert_type", S), ("description", S), ("alert_timestamp", T),
               ("metric_value", D)],
}
# query (checkpoint dir) → topic, table, id field, time field
RAW = {
    "orders": ("orders_topic", "orders_processed", "order_id", "order_time"),
    "clicks": ("clicks_topic", "clicks_processed", "click_id", "click_time"),
    "errors": ("errors_topic", "errors_processed", "error_id", "error_time"),
}
US = 1_000_000


def catalog(data_dir):
    return SqlCatalog("shopwatch", uri=f"sqlite:///{data_dir}/catalog.db",
                      warehouse=f"file://{data_dir}/warehouse")


def ts(text):
    """Spark's CAST(<ISO string> AS TIMESTAMP) in a UTC session."""
    try:
        d = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return d


def read_topic(brokers, topic):
    """Every message of `topic` now: {partition: [(offset, value)]}, and the high watermarks."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"stand-in-{uuid.uuid4()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    md = c.list_topics(topic, timeout=30)
    parts = sorted(md.topics[topic].partitions)
    highs = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in parts}
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out = {p: [] for p in parts}
    need = sum(highs.values())
    got = 0
    while got < need:
        m = c.poll(5)
        if m is None:
            continue
        if m.error():
            continue
        if m.offset() < highs[m.partition()]:
            out[m.partition()].append((m.offset(), m.value()))
            got += 1
    c.close()
    return out, highs


def project(query, value):
    """The Spark job's projection of one message (from_json: malformed → all null)."""
    try:
        d = json.loads(value)
        if not isinstance(d, dict):
            d = {}
    except (TypeError, ValueError):
        d = {}
    if query == "orders":
        q, p = d.get("quantity"), d.get("price")
        total = q * p if isinstance(q, (int, float)) and isinstance(p, (int, float)) else None
        return {"order_id": d.get("order_id"), "user_id": d.get("user_id"),
                "product_id": d.get("product_id"), "quantity": q, "price": p,
                "order_total": total, "status": d.get("status"),
                "order_ts": ts(d.get("order_time"))}
    if query == "clicks":
        return {"click_id": d.get("click_id"), "user_id": d.get("user_id"), "url": d.get("url"),
                "device_type": d.get("device_type"), "click_ts": ts(d.get("click_time"))}
    return {"error_id": d.get("error_id"), "service_name": d.get("service_name"),
            "error_message": d.get("error_message"), "severity": d.get("severity"),
            "error_ts": ts(d.get("error_time"))}


def arrow_schema(table):
    return table.schema().as_arrow()


def rows_for(table, rows):
    """`rows` as a batch of the table's columns (a broken table: dropped columns left out,
    a column turned to string gets the text)."""
    schema = arrow_schema(table)
    text = {f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)}
    fitted = [{k: (str(v) if k in text and v is not None and not isinstance(v, str) else v)
               for k, v in r.items() if k in schema.names} for r in rows]
    return pa.Table.from_pylist(fitted, schema=schema)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def make(args):
    os.makedirs(os.path.join(args.data_dir, "warehouse"), exist_ok=True)
    cat = catalog(args.data_dir)
    if (NS,) not in cat.list_namespaces():
        cat.create_namespace(NS)
    broken = {}
    for b in args.broken or []:
        table, how, col = b.split(":")
        broken[table] = (how, col)
    for name, cols in SEED.items():
        fields = []
        for i, (col, ty) in enumerate(cols):
            how = broken.get(name)
            if how and how[1] == col and how[0] == "drop":
                continue
            if how and how[1] == col and how[0] == "string":
                ty = S
            fields.append(NestedField(i + 1, col, ty, required=False))
        cat.create_table(f"{NS}.{name}", schema=Schema(*fields),
                         properties={"format-version": "2"})
    meta = json.dumps({"batchWatermarkMs": 0, "batchTimestampMs": 0, "conf": {}})
    ends = {}
    landed_rows = {}
    for query, (topic, table_name, _, _) in RAW.items():
        messages, highs = read_topic(args.brokers, topic)
        table = cat.load_table(f"{NS}.{table_name}")
        qid = str(uuid.uuid4())
        ck = os.path.join(args.checkpoints, query)
        write(os.path.join(ck, "metadata"), json.dumps({"id": qid}) + "\n")
        # startingOffsets=latest when the topic was still empty: every partition from 0.
        write(os.path.join(ck, "sources/0/0"),
              "v1\n" + json.dumps({topic: {str(p): 0 for p in highs}}))
        batches = args.epochs + 2  # epochs 0..E land, E+1 is planned only
        prev = {p: 0 for p in highs}
        rows_of_query = []
        for n in range(batches):
            end = {p: highs[p] * (n + 1) // batches for p in highs}
            write(os.path.join(ck, f"offsets/{n}"),
                  f"v1\n{meta}\n" + json.dumps({topic: {str(p): o for p, o in end.items()}}) + "\n")
            if n <= args.epochs:
                rows = [project(query, v) for p in highs for (o, v) in messages[p]
                        if prev[p] <= o < end[p]]
                if rows:
                    table.append(rows_for(table, rows),
                                 snapshot_properties={"spark.sql.streaming.queryId": qid,
                                                      "spark.sql.streaming.epochId": str(n)})
                rows_of_query.extend(rows)
                if n < args.epochs:
                    write(os.path.join(ck, f"commits/{n}"), 'v1\n{"nextBatchWatermarkMs":0}\n')
                ends[topic] = dict(end)
            prev = end
        landed_rows[query] = rows_of_query
    # The windowed metrics Spark had emitted: 1-minute windows sliding by 30 s, closed by a
    # watermark of the newest order time less 2 minutes.
    orders = [r for r in landed_rows["orders"] if r["order_ts"] is not None]
    windows = recount(orders)
    if orders:
        watermark = max(int(r["order_ts"].timestamp() * US) for r in orders) - 120 * US
        closed = [(s, e, v) for (s, e), v in sorted(windows.items()) if e <= watermark]
        if closed:
            t = cat.load_table(f"{NS}.orders_revenue_per_minute")
            rows = [{"window_start": to_dt(s), "window_end": to_dt(e), "orders_count": c,
                     "total_revenue": r} for s, e, (c, r) in closed]
            t.append(rows_for(t, rows))
    print(json.dumps({"ends": {t: {str(p): o for p, o in e.items()} for t, e in ends.items()}}))


def produce(args):
    """The seed producers' payloads, with event times spread evenly over
    [now + from_s, now + to_s] in production order (a stream that began minutes ago)."""
    from confluent_kafka import Producer
    import random
    rng = random.Random(args.seed)
    p = Producer({"bootstrap.servers": args.brokers, "linger.ms": 5})
    now = datetime.datetime.now(datetime.timezone.utc)
    n = args.count
    for i in range(n):
        at = now + datetime.timedelta(seconds=args.from_s + (args.to_s - args.from_s) * i / max(1, n))
        t = at.replace(tzinfo=None).isoformat()
        roll = rng.random()
        if roll < 0.6:
            topic, v = "clicks_topic", {"click_id": str(uuid.uuid4()), "user_id": f"user_{rng.randint(1, 50)}",
                                        "url": rng.choice(["/page/home", "/page/product", "/page/cart"]),
                                        "device_type": rng.choice(["mobile", "desktop", "tablet"]),
                                        "click_time": t}
        elif roll < 0.9:
            topic, v = "orders_topic", {"order_id": str(uuid.uuid4()), "user_id": f"user_{rng.randint(1, 50)}",
                                        "product_id": f"product_{rng.randint(1, 20)}",
                                        "quantity": rng.randint(1, 5),
                                        "price": round(rng.uniform(5, 500), 2),
                                        "order_time": t, "status": "CREATED"}
        else:
            topic, v = "errors_topic", {"error_id": str(uuid.uuid4()), "service_name": "payment",
                                        "error_message": "timeout",
                                        "severity": rng.choice(["WARN", "ERROR"]),
                                        "error_time": t}
        p.produce(topic, json.dumps(v).encode())
        p.poll(0)
    if p.flush(60) != 0:
        sys.exit("not every message was acknowledged")
    print(json.dumps({"produced": n}))


def to_dt(micros):
    return datetime.datetime.fromtimestamp(micros / US, tz=datetime.timezone.utc)


def recount(orders):
    """(window_start, window_end) → (count, revenue) over 1-minute windows sliding by 30 s."""
    out = defaultdict(lambda: [0, 0.0])
    for r in orders:
        t = int(r["order_ts"].timestamp() * US)
        first = (t // (30 * US)) * 30 * US - 30 * US
        for s in (first, first + 30 * US):
            if s <= t < s + 60 * US:
                w = out[(s, s + 60 * US)]
                w[0] += 1
                w[1] += r["order_total"] or 0.0
    return {k: (v[0], v[1]) for k, v in out.items()}


def verify(args):
    cat = catalog(args.data_dir)
    report = {"topics": {}, "failures": []}
    fail = report["failures"].append
    for query, (topic, table_name, id_field, _) in RAW.items():
        messages, _ = read_topic(args.brokers, topic)
        rows = cat.load_table(f"{NS}.{table_name}").scan().to_arrow().to_pylist()
        spark = [r for r in rows if r.get("kafka_offset") is None]
        ours = [r for r in rows if r.get("kafka_offset") is not None]
        spark_ids = Counter(r[id_field] for r in spark)
        our_keys = Counter((r["kafka_partition"], r["kafka_offset"]) for r in ours)
        our_ids = Counter(r[id_field] for r in ours)
        missing = duplicates = in_both = 0
        for p, msgs in messages.items():
            for o, v in msgs:
                try:
                    mid = json.loads(v)[id_field]
                except (TypeError, ValueError, KeyError):
                    mid = None
                n = spark_ids.get(mid, 0) + our_keys.get((p, o), 0)
                if n == 0:
                    missing += 1
                elif n > 1:
                    duplicates += 1
                if spark_ids.get(mid, 0) and our_keys.get((p, o), 0):
                    in_both += 1
        extra_ids = sum(c - 1 for c in spark_ids.values() if c > 1) + \
            sum(c - 1 for c in our_ids.values() if c > 1)
        t = {"messages": sum(len(m) for m in messages.values()), "spark_rows": len(spark),
             "shopwatch_rows": len(ours), "missing": missing, "duplicates": duplicates,
             "in_both": in_both, "ids_twice": extra_ids}
        report["topics"][topic] = t
        if missing or duplicates or in_both or extra_ids:
            fail(f"{topic}: {t}")
    # The KPI table: Spark's windows untouched, shopwatch's start after them, nothing twice,
    # and shopwatch's windows equal the recount over both engines' orders.
    kpi = cat.load_table(f"{NS}.orders_revenue_per_minute").scan().to_arrow().to_pylist()
    us = lambda d: int(d.timestamp() * US)  # noqa: E731
    spark_w = [r for r in kpi if r.get("emitted_at") is None]
    ours_w = [r for r in kpi if r.get("emitted_at") is not None]
    keys = Counter((us(r["window_start"]), us(r["window_end"])) for r in kpi)
    twice = [k for k, c in keys.items() if c > 1]
    boundary = max((us(r["window_end"]) for r in spark_w), default=None)
    orders = [r for r in cat.load_table(f"{NS}.orders_processed").scan().to_arrow().to_pylist()
              if r["order_ts"] is not None]
    counted = recount(orders)
    wrong = []
    for r in ours_w:
        k = (us(r["window_start"]), us(r["window_end"]))
        c, rev = counted.get(k, (0, 0.0))
        if r["orders_count"] != c or abs((r["total_revenue"] or 0.0) - rev) > 1e-6 * max(1, rev):
            wrong.append({"window": k, "table": [r["orders_count"], r["total_revenue"]],
                          "recount": [c, rev]})
    early = [r for r in ours_w if boundary is not None and us(r["window_end"]) <= boundary]
    # Windows shopwatch wrote holding orders of both engines: the handover's own windows.
    by_engine = defaultdict(lambda: [0, 0])
    for r in orders:
        t = int(r["order_ts"].timestamp() * US)
        for k in counted:
            if k[0] <= t < k[1]:
                by_engine[k][0 if r.get("kafka_offset") is None else 1] += 1
    straddling = sum(1 for r in ours_w
                     if all(by_engine[(us(r["window_start"]), us(r["window_end"]))]))
    report["kpi"] = {"spark_windows": len(spark_w), "shopwatch_windows": len(ours_w),
                     "twice": len(twice), "mismatches": len(wrong), "rewritten": len(early),
                     "straddling": straddling, "examples": wrong[:3]}
    if twice or wrong or early:
        fail(f"orders_revenue_per_minute: {report['kpi']}")
    print(json.dumps(report, default=str))


def locations(args):
    cat = catalog(args.data_dir)
    print(json.dumps({n: cat.load_table(f"{NS}.{n}").metadata_location for n in SEED}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["make", "verify", "locations", "produce"])
    ap.add_argument("--data-dir")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--from-s", type=float, default=0)
    ap.add_argument("--to-s", type=float, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--brokers")
    ap.add_argument("--checkpoints")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--broken", action="append",
                    help="table:drop:column or table:string:column (a bad seed table)")
    args = ap.parse_args()
    {"make": make, "verify": verify, "locations": locations,
     "produce": produce}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
