"""Flight SQL under [auth] and [tls], with independent clients (pyarrow.flight and the ADBC
driver): plaintext refused, no credentials UNAUTHENTICATED, a page user's password and a
script's bearer token accepted, over TLS checked against the test certificate.

usage: access_flight.py HOST:PORT CERT_PEM USER PASSWORD TOKEN
Prints a JSON summary; exits 1 on any failure.
"""
import json
import sys

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow.flight as fl

SQL = "SELECT COUNT(*) AS n FROM nessie_minio_catalog.ecommerce_db.alert_actions"


def main():
    addr, cert, user, password, token = sys.argv[1:6]
    root = open(cert, "rb").read()
    host, port = addr.rsplit(":", 1)
    uri = f"grpc+tls://localhost:{port}"
    failures, summary = [], {}

    # Plaintext gRPC against the TLS port does not get an answer.
    try:
        plain = fl.FlightClient(f"grpc+tcp://{addr}")
        plain.authenticate_basic_token(user, password, fl.FlightCallOptions(timeout=5))
        failures.append("plaintext Flight was answered")
    except fl.FlightError as e:
        summary["plaintext"] = type(e).__name__

    client = fl.FlightClient(uri, tls_root_certs=root)
    try:
        client.get_flight_info(fl.FlightDescriptor.for_command(SQL))
        failures.append("a query without credentials was answered")
    except fl.FlightUnauthenticatedError:
        summary["no credentials"] = "UNAUTHENTICATED"
    try:
        client.authenticate_basic_token(user, "wrong " + password)
        failures.append("a wrong password was accepted")
    except fl.FlightUnauthenticatedError:
        summary["wrong password"] = "UNAUTHENTICATED"

    opts = fl.FlightCallOptions(headers=[client.authenticate_basic_token(user, password)])
    info = client.get_flight_info(fl.FlightDescriptor.for_command(SQL), opts)
    summary["user over TLS"] = client.do_get(info.endpoints[0].ticket, opts).read_all().to_pylist()

    bearer = fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])
    info = client.get_flight_info(fl.FlightDescriptor.for_command(SQL), bearer)
    summary["token over TLS"] = client.do_get(info.endpoints[0].ticket, bearer).read_all().to_pylist()

    with flightsql.connect(uri, db_kwargs={
        "username": user, "password": password,
        "adbc.flight.sql.client_option.tls_root_certs": root.decode(),
    }) as conn:
        cur = conn.cursor()
        cur.execute(SQL)
        summary["adbc over TLS"] = cur.fetchall()

    summary["failures"] = failures
    print(json.dumps(summary, default=str))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
