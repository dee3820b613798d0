"""Independent clients against shopwatch's embedded Flight SQL server: pyarrow.flight with the
seed dashboard's legacy raw-SQL descriptors, and the ADBC Flight SQL driver (Go) with the KPI
queries. Every value is compared with a recount by pyiceberg on the same lake. Also checks the
error answers: wrong password, expired token, write statements. Exits 1 on any failure.

usage: flight_check.py --flight HOST:PORT --data-dir DIR [--token-ttl-s N]
"""
import argparse
import datetime
import json
import sys
import time

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as fl

import os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../load/checkers"))
import lakecat  # noqa: E402

SRC = "nessie_minio_catalog.ecommerce_db"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flight", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--token-ttl-s", type=float, default=0)
    ap.add_argument("--raw-only", action="store_true", help="compare the raw tables only (windows may still be open)")
    ap.add_argument("--kpi-sql", help="JSON file of shopwatch's KPI query set (shopwatch query --kpis --print-sql)")
    lakecat.add_args(ap)
    args = ap.parse_args()
    uri = f"grpc+tcp://{args.flight}"
    cat = lakecat.open_catalog(args)
    lake = lambda t: cat.load_table(f"ecommerce_db.{t}").scan().to_arrow().to_pylist()
    failures, summary = [], {}

    def expect(name, got, want):
        summary[name] = {"got": got, "want": want}
        if got != want:
            failures.append(f"{name}: got {got!r}, recount {want!r}")

    # --- pyarrow.flight, the seed dashboard's way ---
    client = fl.FlightClient(uri)
    opts = fl.FlightCallOptions(headers=[client.authenticate_basic_token("dremio", "dremio123")])

    def legacy(sql):
        info = client.get_flight_info(fl.FlightDescriptor.for_command(sql), opts)
        return client.do_get(info.endpoints[0].ticket, opts).read_all()

    if not args.raw_only:
        orders_w = lake("orders_revenue_per_minute")
        cutoff = max(r["window_end"] for r in orders_w) - datetime.timedelta(minutes=5)
        lit = cutoff.strftime("%Y-%m-%d %H:%M:%S")
        t = legacy(f"SELECT SUM(orders_count) AS total_orders, SUM(total_revenue) AS total_revenue, MAX(window_end) AS latest "
                   f"FROM {SRC}.orders_revenue_per_minute WHERE window_end > CAST('{lit}' AS TIMESTAMP)")
        recent = [r for r in orders_w if r["window_end"] > cutoff]
        row = t.to_pylist()[0]
        expect("seed orders card", row["total_orders"], sum(r["orders_count"] for r in recent))
        expect("seed revenue card", round(row["total_revenue"], 6), round(sum(r["total_revenue"] for r in recent), 6))
        expect("timestamps are ms without zone", str(t.schema.field("latest").type), "timestamp[ms]")
    t = legacy(f"SELECT order_id, user_id, order_total, status, order_ts FROM {SRC}.orders_processed ORDER BY order_ts DESC, order_id DESC LIMIT 10")
    raw = sorted(lake("orders_processed"), key=lambda r: (r["order_ts"], r["order_id"]), reverse=True)[:10]
    expect("seed latest orders", [r["order_id"] for r in t.to_pylist()], [r["order_id"] for r in raw])
    if not args.raw_only:
        t = legacy(f"SELECT SUM(error_count) AS errors FROM {SRC}.errors_per_minute")
        expect("seed errors card", t.to_pylist()[0]["errors"], sum(r["error_count"] for r in lake("errors_per_minute")))
        t = legacy(f"SELECT alert_type, description, alert_timestamp FROM {SRC}.alerts ORDER BY alert_timestamp DESC LIMIT 5")
        expect("seed recent alerts", t.num_rows, min(5, len(lake("alerts"))))

    # --- ADBC Flight SQL driver: the portable KPI queries, and catalog browsing ---
    with flightsql.connect(uri, db_kwargs={"username": "dremio", "password": "dremio123"}) as conn:
        cur = conn.cursor()
        cur.execute('SELECT COUNT(*) AS n FROM "nessie_minio_catalog"."ecommerce_db"."orders_processed"')
        expect("adbc orders count", cur.fetch_arrow_table().to_pylist()[0]["n"], len(lake("orders_processed")))
        if args.raw_only:
            for table, id_col in [("clicks_processed", "click_id"), ("errors_processed", "error_id"), ("orders_processed", "order_id")]:
                cur.execute(f'SELECT COUNT(*) AS n, COUNT(DISTINCT "{id_col}") AS ids FROM "nessie_minio_catalog"."ecommerce_db"."{table}"')
                rows = lake(table)
                expect(f"adbc {table} rows and ids", cur.fetch_arrow_table().to_pylist()[0], {"n": len(rows), "ids": len({r[id_col] for r in rows})})
        else:
            cur.execute('SELECT MAX("active_users_approx") AS u FROM "nessie_minio_catalog"."ecommerce_db"."active_users_per_window"')
            expect("adbc active users", cur.fetch_arrow_table().to_pylist()[0]["u"], max(r["active_users_approx"] for r in lake("active_users_per_window")))
            cur.execute('SELECT COUNT(*) AS n FROM "nessie_minio_catalog"."ecommerce_db"."alerts" WHERE "alert_type" = \'FATAL_ERROR\'')
            expect("adbc fatal alerts", cur.fetch_arrow_table().to_pylist()[0]["n"], sum(1 for r in lake("alerts") if r["alert_type"] == "FATAL_ERROR"))
        if args.kpi_sql:
            # The dashboard's portable KPI set: ADBC and pyarrow's legacy path must agree.
            for q in json.load(open(args.kpi_sql)):
                cur.execute(q["sql"])
                via_adbc = cur.fetch_arrow_table()
                via_legacy = legacy(q["sql"])
                expect(f"kpi {q['name']} (adbc == pyarrow)", via_adbc.to_pylist(), via_legacy.to_pylist())
                summary[f"kpi {q['name']}"] = via_adbc.num_rows
            recount = sum(r["orders_count"] for r in lake("orders_revenue_per_minute")
                          if r["window_start"].second == 0 and r["window_start"] >= datetime.datetime.utcnow() - datetime.timedelta(minutes=10))
            summary["kpi orders (recount, whole-minute windows)"] = recount
        objs = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        tables = sorted(t["table_name"] for c in objs for s in c["catalog_db_schemas"] for t in s["db_schema_tables"])
        for needed in ["alerts", "orders_processed", "orders_revenue_per_minute", "traffic_per_minute"]:
            if needed not in tables:
                failures.append(f"adbc get_objects: {needed} missing from {tables}")
        summary["adbc tables"] = tables
        try:
            cur.execute('DELETE FROM "nessie_minio_catalog"."ecommerce_db"."alerts"')
            failures.append("DELETE was accepted")
        except Exception as e:
            summary["adbc delete"] = str(e)[:120]

    # --- errors ---
    try:
        fl.FlightClient(uri).authenticate_basic_token("dremio", "wrong")
        failures.append("wrong password accepted")
    except fl.FlightUnauthenticatedError as e:
        summary["wrong password"] = str(e)[:100]
        if "dremio123" in str(e) or "wrong" in str(e):
            failures.append("credential leaked in the error")
    try:
        legacy(f"DROP TABLE {SRC}.alerts")
        failures.append("DROP accepted")
    except fl.FlightError as e:
        summary["drop"] = type(e).__name__
        if "read-only" not in str(e):
            failures.append(f"DROP error does not say read-only: {e}")
    try:
        client.get_flight_info(fl.FlightDescriptor.for_command(f"SELECT 1"), fl.FlightCallOptions(headers=[(b"authorization", b"Bearer forged")]))
        failures.append("forged token accepted")
    except fl.FlightUnauthenticatedError:
        pass
    if args.token_ttl_s:
        time.sleep(args.token_ttl_s + 1)
        try:
            legacy(f"SELECT COUNT(*) FROM {SRC}.alerts")
            failures.append("expired token accepted")
        except fl.FlightUnauthenticatedError:
            summary["expired token"] = "UNAUTHENTICATED"

    summary["failures"] = failures
    print(json.dumps(summary, indent=1, default=str))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
