"""Independent check of the rollup tables with pyiceberg (not our code): every KPI row equals
a recount from the raw tables, no window or alert appears twice, every window that has events
is there, and FATAL alerts match FATAL rows one to one. The KPI tables, their inputs and their
windows come from `shopwatch tables --json`; the recount of each KPI is written here, so a KPI
this checker does not know is a failure, never a silent skip. Prints a JSON summary (alert
counts by type included); exits 1 on any failure.
"""
import argparse
import collections
import datetime
import json
import sys

import lakecat


def us(t):
    # pyarrow gives naive datetimes for Iceberg TIMESTAMP; microseconds since the epoch.
    return int((t - datetime.datetime(1970, 1, 1)).total_seconds() * 1_000_000) if t is not None else None


def windows_of(t, size, slide):
    s = ((t - size) // slide) * slide + slide
    while s <= (t // slide) * slide:
        yield s
        s += slide


def count(events, table, pred=lambda r: True):
    return sum(1 for t, r in events if t == table and pred(r))


def distinct(events, table, col):
    return len({r[col] for t, r in events if t == table})


def ratio(a, b):
    return a / b if b else None


# Per KPI: the columns that key a row besides its window, and the recount of one window from
# its events, as (input table, raw row) pairs.
RECOUNTS = {
    "orders_revenue": ((), lambda ev: {
        "orders_count": len(ev),
        "total_revenue": float(sum(r["order_total"] for _, r in ev)),
    }),
    "active_users": ((), lambda ev: {"active_users_approx": len({r["user_id"] for _, r in ev})}),
    "errors": (("service_name", "severity"), lambda ev: {"error_count": len(ev)}),
    "traffic": ((), lambda ev: {
        "orders_count": count(ev, "orders_processed"),
        "clicks_count": count(ev, "clicks_processed"),
        "warn_count": count(ev, "errors_processed", lambda r: r["severity"] not in ("ERROR", "FATAL")),
        "error_count": count(ev, "errors_processed", lambda r: r["severity"] == "ERROR"),
        "fatal_count": count(ev, "errors_processed", lambda r: r["severity"] == "FATAL"),
        "error_rate": ratio(count(ev, "errors_processed", lambda r: r["severity"] in ("ERROR", "FATAL")),
                            count(ev, "orders_processed") + count(ev, "clicks_processed")),
    }),
    "conversion": ((), lambda ev: {
        "orders_count": count(ev, "orders_processed"),
        "clicks_count": count(ev, "clicks_processed"),
        "ordering_users": distinct(ev, "orders_processed", "user_id"),
        "clicking_users": distinct(ev, "clicks_processed", "user_id"),
        "conversion_rate": ratio(count(ev, "orders_processed"), count(ev, "clicks_processed")),
    }),
}

def funnel_step(url):
    """The funnel step of a page (home 0, product 1, cart 2), as the KPI's own file says."""
    path = url.split("?")[0].split("#")[0]
    if path.startswith("/page"):
        path = path[len("/page"):]
    if len(path) > 1:
        path = path.rstrip("/")
    if path in ("/", "", "/home"):
        return 0
    if path.startswith("/product"):
        return 1
    if path == "/cart":
        return 2
    return None


def funnel(ev):
    """Users through each step: at it and at every step before it (the pages, then an order)."""
    at = [set(), set(), set(), set()]
    for t, r in ev:
        if t == "clicks_processed":
            s = funnel_step(r["url"])
            if s is not None:
                at[s].add(r["user_id"])
        elif t == "orders_processed":
            at[3].add(r["user_id"])
    through, users = set(at[0]), []
    for k, s in enumerate(at):
        if k:
            through &= s
        users.append(len(through))
    return {"home_users": users[0], "product_users": users[1], "cart_users": users[2],
            "ordered_users": users[3], "product_rate": ratio(users[1], users[0]),
            "cart_rate": ratio(users[2], users[1]), "order_rate": ratio(users[3], users[2])}


RECOUNTS["funnel"] = ((), funnel)


def top_products(ev):
    """Top 10 products by revenue (ranked in whole cents, then by id) and one row for the rest."""
    by = collections.defaultdict(lambda: [0, 0, 0.0])
    for _, r in ev:
        s = by[r["product_id"]]
        s[0] += 1
        s[1] += r["quantity"]
        s[2] += r["order_total"]
    ranked = sorted(by.items(), key=lambda kv: (-round(kv[1][2] * 100), kv[0]))
    out = {}
    for i, (pid, (n, q, rev)) in enumerate(ranked[:10]):
        out[(i + 1,)] = {"product_id": pid, "products": 1, "orders_count": n, "quantity": q, "revenue": rev}
    if len(ranked) > 10:
        rest = ranked[10:]
        out[(11,)] = {"product_id": None, "products": len(rest), "orders_count": sum(v[0] for _, v in rest),
                      "quantity": sum(v[1] for _, v in rest), "revenue": sum(v[2] for _, v in rest)}
    return out


def device_conversion(ev):
    """Per device: clicks, its clicking users, those who ordered in the window, their orders;
    the rate is converted ÷ clicking users (never above 100 %)."""
    orders = collections.Counter(r["user_id"] for t, r in ev if t == "orders_processed")
    clicks, users = collections.Counter(), collections.defaultdict(set)
    for t, r in ev:
        if t == "clicks_processed":
            clicks[r["device_type"]] += 1
            users[r["device_type"]].add(r["user_id"])
    out = {}
    for d, n in clicks.items():
        bought = [orders[u] for u in users[d] if orders[u] > 0]
        out[(d,)] = {"clicks_count": n, "clicking_users": len(users[d]), "converted_users": len(bought),
                     "orders_count": sum(bought), "conversion_rate": ratio(len(bought), len(users[d]))}
    return out


# KPIs with several rows per window keyed by what the window's events decide (a rank, a device
# that orders do not carry): the recount of a whole window, {key: values}.
WINDOW_RECOUNTS = {
    "top_products": (("product_rank",), top_products),
    "device_conversion": (("device_type",), device_conversion),
}

TS_COLUMN = {"orders_processed": "order_ts", "clicks_processed": "click_ts", "errors_processed": "error_ts"}


def same(h, w):
    if w is None or h is None:
        return h is None and w is None
    if isinstance(w, float):
        return abs(h - w) <= 1e-6 * max(1.0, abs(w))
    return h == w


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--catalog", default="shopwatch")
    ap.add_argument("--namespace", default="ecommerce_db")
    lakecat.add_args(ap)
    args = ap.parse_args()
    doc = lakecat.tables(args)
    cat = lakecat.open_catalog(args, args.catalog)
    load = lambda t: cat.load_table(f"{args.namespace}.{t}").scan().to_arrow().to_pylist()
    skew = doc["max_skew_s"] * 1_000_000
    failures = []
    summary = {}

    raw = {}
    for t in lakecat.of_kind(doc, "raw"):
        ts = TS_COLUMN.get(t["name"])
        if ts is None:
            failures.append(f"{t['name']}: a raw table this checker does not know")
            continue
        # Events too far ahead of their ingestion time are kept out of windows.
        raw[t["name"]] = [(us(r[ts]), r) for r in load(t["name"]) if us(r[ts]) <= us(r["ingested_at"]) + skew]

    for t in lakecat.of_kind(doc, "kpi"):
        name, kpi = t["name"], t["kpi"]
        if kpi not in RECOUNTS and kpi not in WINDOW_RECOUNTS:
            failures.append(f"{name}: no independent recount for KPI {kpi} in this checker")
            continue
        size, slide = t["window"]["size_s"] * 1_000_000, t["window"]["slide_s"] * 1_000_000
        expected = collections.defaultdict(list)
        if kpi in WINDOW_RECOUNTS:
            group, whole = WINDOW_RECOUNTS[kpi]
            events = collections.defaultdict(list)
            for inp in t["inputs"]:
                for ts, r in raw.get(inp["table"], []):
                    for s in windows_of(ts, size, slide):
                        events[(s, s + size)].append((inp["table"], r))
            want = {}
            for w, ev in events.items():
                for key, values in whole(ev).items():
                    want[w + key] = values
                    expected[w + key] = []
            recount_of = lambda key: want.get(key, {})
        else:
            group, recount = RECOUNTS[kpi]
            for inp in t["inputs"]:
                for ts, r in raw.get(inp["table"], []):
                    for s in windows_of(ts, size, slide):
                        expected[(s, s + size) + tuple(r[c] for c in group)].append((inp["table"], r))
            recount_of = lambda key: recount(expected.get(key, []))
        rows = load(name)
        got = collections.Counter()
        mism = 0
        max_end = max((us(k["window_end"]) for k in rows), default=None)
        for k in rows:
            key = (us(k["window_start"]), us(k["window_end"])) + tuple(k[c] for c in group)
            got[key] += 1
            for col, w in recount_of(key).items():
                if not same(k[col], w):
                    mism += 1
                    if mism <= 3:
                        failures.append(f"{name}: window {key} {col} = {k[col]}, recount {w}")
        dups = [k for k, n in got.items() if n > 1]
        if kpi in WINDOW_RECOUNTS:
            extra = [k for k in got if k not in expected]
            if extra:
                failures.append(f"{name}: {len(extra)} rows the recount does not have, e.g. {extra[:2]}")
        missing = [k for k in expected if max_end is not None and k[1] <= max_end and k not in got]
        if dups:
            failures.append(f"{name}: {len(dups)} windows written more than once, e.g. {dups[:2]}")
        if missing:
            failures.append(f"{name}: {len(missing)} windows with events are missing, e.g. {missing[:2]}")
        if mism:
            failures.append(f"{name}: {mism} values differ from the recount")
        summary[name] = {"rows": len(rows), "mismatches": mism, "duplicates": len(dups), "missing": len(missing),
                         "windows_expected_so_far": sum(1 for k in expected if max_end and k[1] <= max_end)}

    alerts = load("alerts")
    ids = collections.Counter(a["alert_id"] for a in alerts)
    if any(n > 1 for n in ids.values()):
        failures.append(f"alerts: {sum(1 for n in ids.values() if n > 1)} alert ids written twice")
    # Every FATAL row, skewed ones included: the rule reads every event, not windows.
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
