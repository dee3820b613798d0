"""pyiceberg's SqlCatalog on a shopwatch lake: local warehouse by default, or S3 (pyarrow's S3
filesystem) with --warehouse s3://… and the --s3-* options."""


def add_args(ap):
    ap.add_argument("--warehouse", help="default: file://DATA_DIR/warehouse")
    ap.add_argument("--s3-endpoint")
    ap.add_argument("--s3-key")
    ap.add_argument("--s3-secret")


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
    return SqlCatalog(
        name,
        uri=f"sqlite:///{args.data_dir}/catalog.db",
        warehouse=args.warehouse or f"file://{args.data_dir}/warehouse",
        **props,
    )
