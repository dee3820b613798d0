"""pyiceberg on a shopwatch lake: its SqlCatalog with a local warehouse by default, or S3
(pyarrow's S3 filesystem) with --warehouse s3://… and the --s3-* options, or an Iceberg REST
catalog with --catalog-uri (and --credential, its OAuth2 client credential, or the
ICEBERG_REST_CREDENTIAL environment variable). And the list of tables, read from the shopwatch
binary (`shopwatch tables --json`), so no checker keeps its own."""
import json
import os
import shutil
import subprocess


def add_args(ap):
    ap.add_argument("--warehouse", help="default: file://DATA_DIR/warehouse")
    ap.add_argument("--s3-endpoint")
    ap.add_argument("--s3-key")
    ap.add_argument("--s3-secret")
    ap.add_argument("--catalog-uri", help="an Iceberg REST catalog instead of DATA_DIR/catalog.db")
    ap.add_argument("--credential", help="REST catalog OAuth2 CLIENT_ID:SECRET "
                    "(default: $ICEBERG_REST_CREDENTIAL)")
    ap.add_argument("--tables", help="`shopwatch tables --json` output (default: run the binary)")
    ap.add_argument("--shopwatch", help="the shopwatch binary (default: $SHOPWATCH_BIN, then PATH)")


def open_catalog(args, name="shopwatch"):
    from pyiceberg.catalog.sql import SqlCatalog

    props = {}
    if args.s3_endpoint:
        props.update({
            "s3.endpoint": args.s3_endpoint,
            "s3.access-key-id": args.s3_key,
            "s3.secret-access-key": args.s3_secret,
            "s3.region": "us-east-1",
            "s3.force-virtual-addressing": "false",
        })
    if getattr(args, "catalog_uri", None):
        from pyiceberg.catalog import load_catalog

        credential = args.credential or os.environ.get("ICEBERG_REST_CREDENTIAL")
        if credential:
            props["credential"] = credential
        return load_catalog(name, type="rest", uri=args.catalog_uri,
                            warehouse=args.warehouse or "", **props)
    return SqlCatalog(
        name,
        uri=f"sqlite:///{args.data_dir}/catalog.db",
        warehouse=args.warehouse or f"file://{args.data_dir}/warehouse",
        **props,
    )


def filesystem(args, uri):
    """pyarrow's filesystem for a location, with the --s3-* endpoint and keys for s3:// (never
    AWS's default endpoint for a local server); returns (fs, path)."""
    import pyarrow.fs as pafs

    if uri.startswith("s3://") and args.s3_endpoint:
        scheme, host = args.s3_endpoint.split("://", 1)
        fs = pafs.S3FileSystem(endpoint_override=host, scheme=scheme, access_key=args.s3_key,
                               secret_key=args.s3_secret, region="us-east-1")
        return fs, uri[len("s3://"):]
    return pafs.FileSystem.from_uri(uri)


def tables(args):
    """The binary's description of every table: name, kind, columns; KPIs with their inputs
    and effective windows."""
    if args.tables:
        with open(args.tables) as f:
            return json.load(f)
    binary = args.shopwatch or os.environ.get("SHOPWATCH_BIN") or shutil.which("shopwatch")
    if not binary:
        raise SystemExit("no shopwatch binary: pass --shopwatch or --tables, or set SHOPWATCH_BIN "
                         "(the checkers take the table list from `shopwatch tables --json`)")
    return json.loads(subprocess.check_output([binary, "tables", "--json"]))


def of_kind(doc, kind):
    return [t for t in doc["tables"] if t["kind"] == kind]
