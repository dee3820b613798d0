"""Independent check of the lake with pyiceberg's SqlCatalog (not our code).

Compares the tables with the producer's ack log: every acked valid record is in its raw table
exactly once (by partition+offset and by id), every acked malformed record is in dead_letters
with a reason, and nothing else is there. Prints a JSON summary; exits 1 on any failure.
"""
import argparse
import collections
import json
import sys

import lakecat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--ack-log", help="the producer's acks; without it, check that every offset up "
                    "to the recorded ones is stored exactly once (raw table or dead letters)")
    ap.add_argument("--catalog", default="shopwatch")
    ap.add_argument("--namespace", default="ecommerce_db")
    ap.add_argument("--canaries", default="", help="comma-separated secrets that must not be in dead letters")
    lakecat.add_args(ap)
    args = ap.parse_args()

    catalog = lakecat.open_catalog(args, args.catalog)
    # Raw tables by topic, with their id column (the first, as in the seed's tables).
    raw = {t["topic"]: (t["name"], t["columns"][0]["name"]) for t in lakecat.of_kind(lakecat.tables(args), "raw")}
    if not args.ack_log:
        return offsets_only(args, catalog, raw)
    acks = [json.loads(line) for line in open(args.ack_log) if line.strip()]
    failures = []
    summary = {"acked": len(acks), "tables": {}}

    dl = catalog.load_table(f"{args.namespace}.dead_letters").scan().to_arrow().to_pylist()
    dl_keys = collections.Counter((r["topic"], r["kafka_partition"], r["kafka_offset"]) for r in dl)
    dups = [k for k, n in dl_keys.items() if n > 1]
    if dups:
        failures.append(f"dead_letters: {len(dups)} duplicated source offsets, e.g. {dups[:3]}")
    if any(not r["reason"] for r in dl):
        failures.append("dead_letters: rows without a reason")
    summary["tables"]["dead_letters"] = {"rows": len(dl), "reasons": dict(collections.Counter(r["reason"] for r in dl))}
    canaries = [c for c in args.canaries.split(",") if c]
    if canaries:
        leaked = sum(1 for r in dl for v in r.values() for c in canaries
                     if isinstance(v, (str, bytes)) and (c in v if isinstance(v, str) else c.encode() in v))
        summary["tables"]["dead_letters"]["canary_hits"] = leaked
        if leaked:
            failures.append(f"dead_letters: {leaked} values contain a secret")

    for topic, (table, id_col) in raw.items():
        rows = catalog.load_table(f"{args.namespace}.{table}").scan().to_arrow().to_pylist()
        by_offset = collections.Counter((r["kafka_partition"], r["kafka_offset"]) for r in rows)
        by_id = collections.Counter(r[id_col] for r in rows)
        dup_offsets = sum(1 for n in by_offset.values() if n > 1)
        dup_ids = sum(1 for n in by_id.values() if n > 1)
        index = {(r["kafka_partition"], r["kafka_offset"]): r[id_col] for r in rows}
        valid = [a for a in acks if a["topic"] == topic and not a["malformed"]]
        bad = [a for a in acks if a["topic"] == topic and a["malformed"]]
        missing = [a for a in valid if index.get((a["partition"], a["offset"])) != a["id"]]
        missing_dl = [a for a in bad if (topic, a["partition"], a["offset"]) not in dl_keys]
        expected_keys = {(a["partition"], a["offset"]) for a in valid}
        unexpected = [k for k in by_offset if k not in expected_keys]
        unexpected_dl = [k for k in dl_keys if k[0] == topic and k[1:] not in {(a["partition"], a["offset"]) for a in bad}]
        summary["tables"][table] = {
            "rows": len(rows), "acked_valid": len(valid), "acked_malformed": len(bad),
            "missing": len(missing), "dup_offsets": dup_offsets, "dup_ids": dup_ids,
            "unexpected": len(unexpected), "malformed_missing_from_dead_letters": len(missing_dl),
            "unexpected_dead_letters": len(unexpected_dl),
        }
        for name, n in [("missing", len(missing)), ("duplicated offsets", dup_offsets), ("duplicated ids", dup_ids),
                        ("unexpected rows", len(unexpected)), ("malformed not in dead_letters", len(missing_dl)),
                        ("unexpected dead letters", len(unexpected_dl))]:
            if n:
                failures.append(f"{table}: {n} {name}")

    summary["failures"] = failures
    print(json.dumps(summary, indent=1, sort_keys=True))
    sys.exit(1 if failures else 0)


def offsets_only(args, catalog, raw):
    """Without an ack log: every Kafka offset below what the raw table recorded is in the raw
    table or the dead letters exactly once, and nothing beyond it is."""
    failures = []
    summary = {"tables": {}}
    dl = catalog.load_table(f"{args.namespace}.dead_letters").scan().to_arrow().to_pylist()
    for topic, (table, _) in raw.items():
        t = catalog.load_table(f"{args.namespace}.{table}")
        recorded = json.loads(t.properties.get(f"shopwatch.offsets.{topic}", "{}"))
        seen = collections.Counter((r["kafka_partition"], r["kafka_offset"]) for r in t.scan().to_arrow().to_pylist())
        seen.update((r["kafka_partition"], r["kafka_offset"]) for r in dl if r["topic"] == topic)
        expected = {(int(p), o) for p, end in recorded.items() for o in range(end)}
        missing = len(expected - set(seen))
        dup = sum(1 for n in seen.values() if n > 1)
        beyond = len(set(seen) - expected)
        summary["tables"][table] = {"offsets": len(expected), "missing": missing, "duplicated": dup, "beyond": beyond}
        for what, n in [("missing offsets", missing), ("offsets stored twice", dup),
                        ("rows beyond the recorded offsets", beyond)]:
            if n:
                failures.append(f"{table}: {n} {what}")
        if not expected:
            failures.append(f"{table}: nothing recorded for {topic}")
    summary["failures"] = failures
    print(json.dumps(summary, indent=1, sort_keys=True))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
