"""Independent check of each table's history and files with pyiceberg (not our code):

- the Kafka offsets recorded in snapshot summaries (`shopwatch.offsets.<topic>`) never go
  backwards from one live snapshot to the next, and the table property equals the newest;
- every data file any live snapshot references exists;
- data files under each table's data/ directory that no snapshot references (orphans) are
  counted, with their bytes (after a sweep with a short safety age there must be none).

Prints a JSON summary; exits 1 on any failure (orphans count as a failure with --no-orphans).
"""
import argparse
import json
import os
import sys

import lakecat

PREFIX = "shopwatch.offsets."


def local_path(location):
    if location.startswith("file://"):
        return location[len("file://"):]
    if location.startswith("/"):
        return location
    return None


def list_files(args, table, sub):
    """(path, size) of every file under the table's `sub` directory (local or S3)."""
    base = table.metadata.location.rstrip("/") + "/" + sub
    path = local_path(base)
    if path is not None:
        out = []
        for root, _, files in os.walk(path):
            for f in files:
                full = os.path.join(root, f)
                out.append((full, os.path.getsize(full)))
        return out
    import pyarrow.fs as pafs
    fs, root = lakecat.filesystem(args, base)
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    return [(i.path, i.size) for i in infos if i.type == pafs.FileType.File]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--catalog", default="shopwatch")
    ap.add_argument("--namespace", default="ecommerce_db")
    ap.add_argument("--no-orphans", action="store_true", help="fail when any orphan is found")
    ap.add_argument("--max-metadata-files", type=int,
                    help="fail when a table keeps more *.metadata.json files (metadata hygiene ran)")
    ap.add_argument("--max-snapshots", type=int, help="fail when a table keeps more snapshots (expiry ran)")
    lakecat.add_args(ap)
    args = ap.parse_args()
    catalog = lakecat.open_catalog(args, args.catalog)
    failures = []
    summary = {"tables": {}}
    for name in [t["name"] for t in lakecat.tables(args)["tables"]]:
        try:
            table = catalog.load_table(f"{args.namespace}.{name}")
        except Exception as e:  # a table the run never created
            summary["tables"][name] = {"missing_table": str(e)}
            continue
        io = table.io
        snapshots = sorted(table.metadata.snapshots, key=lambda s: (s.sequence_number, s.timestamp_ms))
        regressions = 0
        last = {}
        for s in snapshots:
            props = s.summary.additional_properties if s.summary else {}
            for key, value in props.items():
                if not key.startswith(PREFIX):
                    continue
                for part, off in json.loads(value).items():
                    k = (key, part)
                    if k in last and off < last[k]:
                        regressions += 1
                        failures.append(f"{name}: {key}[{part}] went back from {last[k]} to {off} "
                                        f"at snapshot {s.snapshot_id}")
                    last[k] = off
        prop_mismatch = 0
        for key, value in table.metadata.properties.items():
            if key.startswith(PREFIX) and snapshots:
                recorded = {p: o for (k, p), o in last.items() if k == key}
                if recorded and json.loads(value) != recorded:
                    prop_mismatch += 1
                    failures.append(f"{name}: property {key} {value} differs from the newest snapshot {recorded}")
        referenced = set()
        for s in snapshots:
            for m in s.manifests(io):
                for entry in m.fetch_manifest_entry(io, discard_deleted=False):
                    referenced.add(entry.data_file.file_path)
        live = []
        if table.current_snapshot() is not None:
            for m in table.current_snapshot().manifests(io):
                live.extend(e.data_file.file_path for e in m.fetch_manifest_entry(io, discard_deleted=True))
        # shopwatch names the files its data compaction writes compact-<uuid>-NNNNN.parquet.
        merged = [p for p in live if p.rsplit("/", 1)[-1].startswith("compact-")]
        missing = [p for p in referenced if not io.new_input(p).exists()]
        for p in missing[:5]:
            failures.append(f"{name}: referenced data file missing: {p}")
        names = {p.rsplit("/", 1)[-1] for p in referenced}
        orphans = [(p, n) for p, n in list_files(args, table, "data") if p.rsplit("/", 1)[-1] not in names]
        if args.no_orphans and orphans:
            failures.append(f"{name}: {len(orphans)} orphan data files, e.g. {orphans[0][0]}")
        metadata = list_files(args, table, "metadata")
        versions = [p for p, _ in metadata if p.endswith(".metadata.json")]
        for limit, have, what in [(args.max_metadata_files, len(versions), "metadata.json files"),
                                  (args.max_snapshots, len(snapshots), "snapshots")]:
            if limit is not None and have > limit:
                failures.append(f"{name}: {have} {what} kept (limit {limit}): maintenance did not run")
        summary["tables"][name] = {
            "commits": table.metadata.last_sequence_number,
            "metadata_json_files": len(versions), "metadata_files": len(metadata),
            "metadata_bytes": sum(n for _, n in metadata),
            "snapshots": len(snapshots), "offset_regressions": regressions,
            "property_mismatch": prop_mismatch, "referenced_files": len(referenced),
            "missing_files": len(missing), "live_files": len(live), "merged_files": len(merged), "orphan_files": len(orphans),
            "orphan_bytes": sum(n for _, n in orphans),
        }
    summary["failures"] = failures
    print(json.dumps(summary, indent=1, sort_keys=True))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
