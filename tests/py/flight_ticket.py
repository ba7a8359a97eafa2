"""Whose is a Flight SQL ticket: runs a statement with one token, then fetches its result from
another connection, as another caller, then as the caller that ran it.

Usage: flight_ticket.py grpc://HOST:PORT OWNER_TOKEN OTHER_TOKEN|- "SELECT ..."
Prints JSON: {"other": error or row count, "owner": error or row count}. "-" fetches with no
token at all.
"""
import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions


def connect(uri, token):
    options = {} if token == "-" else {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
    return flight_sql.connect(uri, db_kwargs=options)


def fetch(uri, token, partition):
    try:
        with connect(uri, token) as connection, connection.cursor() as cursor:
            cursor.adbc_read_partition(partition)
            return cursor.fetch_arrow_table().num_rows
    except Exception as err:  # the server's refusal, for the test to check
        return str(err)


uri, owner, other, query = sys.argv[1:5]
with connect(uri, owner) as connection, connection.cursor() as cursor:
    partitions, _schema = cursor.adbc_execute_partitions(query)
report = {"other": fetch(uri, other, partitions[0])}
report["owner"] = fetch(uri, owner, partitions[0])
print(json.dumps(report, ensure_ascii=False))
