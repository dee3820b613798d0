"""Hostile queries from an independent Flight SQL client (the ADBC driver): each statement runs
on its own connection, and one JSON line per statement says whether it was answered, the
error's text, and how long it took.

usage: hostile_queries.py --flight HOST:PORT [--user U --password P] SQL [SQL ...]
"""
import argparse
import json
import time

import adbc_driver_flightsql.dbapi as flightsql


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flight", required=True)
    ap.add_argument("--user", default="dremio")
    ap.add_argument("--password", default="dremio123")
    ap.add_argument("sql", nargs="+")
    args = ap.parse_args()
    for sql in args.sql:
        began = time.monotonic()
        out = {"sql": sql[:80]}
        try:
            with flightsql.connect(f"grpc+tcp://{args.flight}", db_kwargs={
                "username": args.user, "password": args.password,
                # The driver's own default would cut a long query before the server does.
                "adbc.flight.sql.rpc.timeout_seconds.query": "600",
                "adbc.flight.sql.rpc.timeout_seconds.fetch": "600",
            }) as conn:
                cur = conn.cursor()
                cur.execute(sql)
                rows = cur.fetchall()
                out.update(ok=True, rows=len(rows))
        except Exception as e:  # the error is the point
            out.update(ok=False, error=str(e)[:600])
        out["seconds"] = round(time.monotonic() - began, 2)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
