"""pyiceberg (not our code) across a data compaction: plan a scan, wait for a line on stdin
(the compaction, snapshot expiry and orphan sweep happen then), read the planned files, and
recount on the new snapshot. Prints one JSON line before waiting and one at the end."""
import json
import sys

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.io.pyarrow import ArrowScan

data_dir, table_name = sys.argv[1], sys.argv[2]
catalog = SqlCatalog("shopwatch", uri=f"sqlite:///{data_dir}/catalog.db",
                     warehouse=f"file://{data_dir}/warehouse")
ident = f"ecommerce_db.{table_name}"
table = catalog.load_table(ident)
scan = table.scan(selected_fields=("kafka_partition", "kafka_offset"))
tasks = list(scan.plan_files())
print(json.dumps({"planned_files": len(tasks), "count": scan.count()}), flush=True)
sys.stdin.readline()

old = ArrowScan(table.metadata, table.io, scan.projection(), scan.row_filter, True).to_table(tasks)
old_pairs = list(zip(old["kafka_partition"].to_pylist(), old["kafka_offset"].to_pylist()))
table = catalog.load_table(ident)
new_scan = table.scan(selected_fields=("kafka_partition", "kafka_offset"))
new = new_scan.to_arrow()
new_pairs = list(zip(new["kafka_partition"].to_pylist(), new["kafka_offset"].to_pylist()))
ops = [s.summary.operation.value for s in table.metadata.snapshots if s.summary]
print(json.dumps({
    "old_scan_rows": len(old_pairs), "old_scan_unique": len(set(old_pairs)),
    "new_count": new_scan.count(), "new_rows": len(new_pairs), "new_unique": len(set(new_pairs)),
    "same_rows": sorted(old_pairs) == sorted(new_pairs),
    "new_files": len(list(new_scan.plan_files())),
    "current_operation": table.current_snapshot().summary.operation.value,
    "operations": ops,
}), flush=True)
