"""Where did each malformed-corpus record land? Reads the lake with pyiceberg (not our code) and
compares every case with its fixed expectation: the raw table (with the stored values checked
verbatim) or dead_letters (with the reason). Prints a JSON list of mismatches; exits 1 if any."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../load/checkers"))
from pyiceberg.catalog.sql import SqlCatalog  # noqa: E402

RAW = {"orders_topic": "orders_processed", "clicks_topic": "clicks_processed", "errors_topic": "errors_processed"}


def main():
    data_dir, cases_file = sys.argv[1], sys.argv[2]
    cases = json.load(open(cases_file))
    cat = SqlCatalog("shopwatch", uri=f"sqlite:///{data_dir}/catalog.db", warehouse=f"file://{data_dir}/warehouse")
    load = lambda t: cat.load_table(f"ecommerce_db.{t}").scan().to_arrow().to_pylist()
    dl = {(r["topic"], r["kafka_partition"], r["kafka_offset"]): r for r in load("dead_letters")}
    raw = {t: {(r["kafka_partition"], r["kafka_offset"]): r for r in load(table)} for t, table in RAW.items()}
    problems = []
    for c in cases:
        key = (c["topic"], c["partition"], c["offset"])
        in_dl = dl.get(key)
        in_raw = raw[c["topic"]].get(key[1:])
        where = "dead_letter" if in_dl else "raw" if in_raw else "nowhere"
        if in_dl and in_raw:
            where = "both"
        if where != c["expect"]:
            problems.append(f"{c['case']}: expected {c['expect']}, found {where}")
            continue
        if where == "dead_letter":
            if in_dl["reason"] != c["reason"]:
                problems.append(f"{c['case']}: reason {in_dl['reason']!r}, expected {c['reason']!r} ({in_dl.get('detail')})")
        else:
            for col, want in (c.get("stored") or {}).items():
                if in_raw.get(col) != want:
                    problems.append(f"{c['case']}: {col} stored as {in_raw.get(col)!r}, expected {want!r}")
    print(json.dumps({"cases": len(cases), "problems": problems}, indent=1))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
