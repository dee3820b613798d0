"""Independent check of the derived tables with pyiceberg (not our code): every KPI row
equals a recount from the raw tables, no window or alert appears twice, every window that
has events is there, and FATAL alerts match FATAL rows one to one. Prints a JSON summary
(alert counts by type included); exits 1 on any failure.
"""
import argparse
import collections
import json
import sys

from pyiceberg.catalog.sql import SqlCatalog

MIN = 60_000_000


def us(t):
    # pyarrow gives naive datetimes for Iceberg TIMESTAMP; microseconds since the epoch.
    import datetime
    return int((t - datetime.datetime(1970, 1, 1)).total_seconds() * 1_000_000) if t is not None else None


def windows_of(t, size, slide):
    first = ((t - size) // slide) * slide + slide
    s = first
    while s <= (t // slide) * slide:
        yield s
        s += slide


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--catalog", default="shopwatch")
    ap.add_argument("--namespace", default="ecommerce_db")
    ap.add_argument("--max-skew-s", type=int, default=300)
    args = ap.parse_args()
    cat = SqlCatalog(args.catalog, uri=f"sqlite:///{args.data_dir}/catalog.db", warehouse=f"file://{args.data_dir}/warehouse")
    load = lambda t: cat.load_table(f"{args.namespace}.{t}").scan().to_arrow().to_pylist()
    skew = args.max_skew_s * 1_000_000
    failures = []
    summary = {}

    def events(table, ts_col):
        rows = load(table)
        return [r for r in rows if us(r[ts_col]) <= us(r["ingested_at"]) + skew]

    orders = events("orders_processed", "order_ts")
    clicks = events("clicks_processed", "click_ts")
    errors = events("errors_processed", "error_ts")

    def recount(name, rows, ts_col, size, slide, key, value, kpi_rows, kpi_key, kpi_value, approx=False):
        expected = collections.defaultdict(list)
        for r in rows:
            t = us(r[ts_col])
            for s in windows_of(t, size, slide):
                expected[(s, s + size) + key(r)].append(value(r))
        got = collections.Counter()
        mism = 0
        max_end = max((us(k["window_end"]) for k in kpi_rows), default=None)
        for k in kpi_rows:
            wk = (us(k["window_start"]), us(k["window_end"])) + kpi_key(k)
            got[wk] += 1
            want = expected.get(wk, [])
            agg = kpi_value(want)
            for col, w in agg.items():
                h = k[col]
                ok = abs(h - w) <= 1e-6 * max(1.0, abs(w)) if isinstance(w, float) else h == w
                if not ok:
                    mism += 1
                    if mism <= 3:
                        failures.append(f"{name}: window {wk} {col} = {h}, recount {w}")
        dups = [k for k, n in got.items() if n > 1]
        missing = [k for k in expected if max_end is not None and k[1] <= max_end and k not in got]
        if dups:
            failures.append(f"{name}: {len(dups)} windows written more than once, e.g. {dups[:2]}")
        if missing:
            failures.append(f"{name}: {len(missing)} windows with events are missing, e.g. {missing[:2]}")
        if mism:
            failures.append(f"{name}: {mism} values differ from the recount")
        summary[name] = {"rows": len(kpi_rows), "windows_expected_so_far": sum(1 for k in expected if max_end and k[1] <= max_end),
                         "mismatches": mism, "duplicates": len(dups), "missing": len(missing)}

    one_min, half = MIN, MIN // 2
    recount("orders_revenue_per_minute", orders, "order_ts", one_min, half, lambda r: (), lambda r: r["order_total"],
            load("orders_revenue_per_minute"), lambda k: (),
            lambda v: {"orders_count": len(v), "total_revenue": float(sum(v))})
    recount("active_users_per_window", clicks, "click_ts", 5 * MIN, MIN, lambda r: (), lambda r: r["user_id"],
            load("active_users_per_window"), lambda k: (),
            lambda v: {"active_users_approx": len(set(v))})
    recount("errors_per_minute", errors, "error_ts", one_min, half, lambda r: (r["service_name"], r["severity"]), lambda r: 1,
            load("errors_per_minute"), lambda k: (k["service_name"], k["severity"]),
            lambda v: {"error_count": len(v)})
    tagged = [("o", us(r["order_ts"])) for r in orders] + [("c", us(r["click_ts"])) for r in clicks] + \
             [(r["severity"], us(r["error_ts"])) for r in errors]

    def traffic(v):
        c = collections.Counter(v)
        out = {"orders_count": c["o"], "clicks_count": c["c"], "warn_count": c["WARN"], "error_count": c["ERROR"], "fatal_count": c["FATAL"]}
        return out
    # traffic: timestamps are already microseconds here
    expected = collections.defaultdict(list)
    for k, t in tagged:
        for s in windows_of(t, one_min, half):
            expected[(s, s + one_min)].append(k)
    tr = load("traffic_per_minute")
    mism = 0
    seen = collections.Counter()
    for row in tr:
        wk = (us(row["window_start"]), us(row["window_end"]))
        seen[wk] += 1
        want = traffic(expected.get(wk, []))
        for col, w in want.items():
            if row[col] != w:
                mism += 1
        t = want["orders_count"] + want["clicks_count"]
        rate = (want["error_count"] + want["fatal_count"]) / t if t else None
        if (rate is None) != (row["error_rate"] is None) or (rate is not None and abs(rate - row["error_rate"]) > 1e-9):
            mism += 1
    if mism:
        failures.append(f"traffic_per_minute: {mism} values differ from the recount")
    if any(n > 1 for n in seen.values()):
        failures.append("traffic_per_minute: duplicate windows")
    summary["traffic_per_minute"] = {"rows": len(tr), "mismatches": mism}

    alerts = load("alerts")
    ids = collections.Counter(a["alert_id"] for a in alerts)
    if any(n > 1 for n in ids.values()):
        failures.append(f"alerts: {sum(1 for n in ids.values() if n > 1)} alert ids written twice")
    fatal_rows = {(r["kafka_partition"], r["kafka_offset"]) for r in load("errors_processed") if r["severity"] == "FATAL"}
    fatal_alerts = collections.Counter((a["source_partition"], a["source_offset"]) for a in alerts if a["alert_type"] == "FATAL_ERROR")
    if set(fatal_alerts) != fatal_rows or any(n > 1 for n in fatal_alerts.values()):
        failures.append(f"alerts: FATAL_ERROR alerts {sorted(fatal_alerts)} do not match FATAL rows {sorted(fatal_rows)}")
    for a in alerts:
        if a["alert_type"] == "FATAL_ERROR" and not a["description"].startswith("Fatal error in service: "):
            failures.append(f"alerts: FATAL description not in the seed's form: {a['description']}")
    summary["alerts"] = dict(collections.Counter(a["alert_type"] for a in alerts))
    summary["alert_descriptions"] = sorted(f"{a['alert_type']}: {a['description']}" for a in alerts if a["alert_type"] != "FATAL_ERROR")
    summary["failures"] = failures
    print(json.dumps(summary, indent=1, sort_keys=True, default=str))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
