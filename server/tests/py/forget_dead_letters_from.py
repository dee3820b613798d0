"""Make a shopwatch lake look as an earlier version left it: remove, with pyiceberg (another
writer), the raw tables' `shopwatch.dead-letters-from.<topic>` properties, which versions before
it did not record. Prints the tables it changed."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../../load/checkers"))
import lakecat  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    lakecat.add_args(ap)
    args = ap.parse_args()
    catalog = lakecat.open_catalog(args)
    for t in lakecat.of_kind(lakecat.tables(args), "raw"):
        table = catalog.load_table(f"ecommerce_db.{t['name']}")
        key = f"shopwatch.dead-letters-from.{t['topic']}"
        if key not in table.properties:
            sys.exit(f"{t['name']}: no {key} to remove")
        with table.transaction() as tx:
            tx.remove_properties(key)
        print(t["name"])


if __name__ == "__main__":
    main()
