"""The REST catalog's own half of the pinned commit: a commit decided on a snapshot that is no
longer current must be refused by the server (its assert-ref-snapshot-id requirement), not
rebased. pyiceberg sends exactly that requirement; we check the server honours it.

Usage: rest_requirements.py URI WAREHOUSE CREDENTIAL S3_ENDPOINT S3_KEY S3_SECRET
Prints one JSON line; exits 1 when the stale commit landed."""
import json
import sys

import pyarrow as pa
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import CommitFailedException

uri, warehouse, credential, endpoint, key, secret = sys.argv[1:7]
cat = load_catalog("check", type="rest", uri=uri, warehouse=warehouse, credential=credential,
                   **{"s3.endpoint": endpoint, "s3.access-key-id": key,
                      "s3.secret-access-key": secret, "s3.region": "us-east-1"})
cat.create_namespace_if_not_exists("requirements")
rows = pa.table({"n": pa.array([1, 2, 3], pa.int64())})
# No client-side retry: pyiceberg would otherwise refresh and re-apply after the 409, which is
# exactly the silent rebase shopwatch's pin forbids.
table = cat.create_table_if_not_exists("requirements.stale", schema=rows.schema,
                                       properties={"commit.retry.num-retries": "0"})
table.append(rows)
stale = cat.load_table("requirements.stale")
fresh = cat.load_table("requirements.stale")
fresh.append(rows)  # another writer lands first
refused = False
try:
    stale.append(rows)  # decided on the old snapshot
except CommitFailedException as e:
    refused = True
    reason = str(e)[:200]
else:
    reason = "landed"
count = cat.load_table("requirements.stale").scan().to_arrow().num_rows
print(json.dumps({"stale_commit_refused": refused, "rows": count, "reason": reason}))
sys.exit(0 if refused and count == 6 else 1)
