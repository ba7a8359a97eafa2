"""Runs SQL over Arrow Flight SQL with the ADBC driver (adbc-driver-flightsql, PyPI).

Usage: flight_query.py grpc://HOST:PORT "SELECT ..." [--hold N]
Prints JSON: the Arrow schema, the row count and the rows, or the error the server gave.

With --hold N, runs the statement N times for its partitions (Flight SQL GetFlightInfo) without
fetching them, as a client that never reads its results, stopping at the first error; then
fetches the first partition and runs the statement once more. Prints JSON: how many runs were
answered ("held"), the first error, the rows of the fetched partition ("fetched"), and the
error or the partition count of the last run ("after_fetch").
"""
import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql


def table_json(table):
    return {
        "schema": {field.name: str(field.type) for field in table.schema},
        "rows": table.num_rows,
        "data": table.to_pylist(),
    }


def hold(cursor, query, count):
    partitions, error = [], None
    for _ in range(count):
        try:
            parts, _schema = cursor.adbc_execute_partitions(query)
            partitions.append(parts)
        except Exception as err:  # the server's refusal, for the test to check
            error = str(err)
            break
    report = {"held": len(partitions), "error": error}
    if partitions:
        cursor.adbc_read_partition(partitions[0][0])
        report["fetched"] = cursor.fetch_arrow_table().num_rows
        try:
            parts, _schema = cursor.adbc_execute_partitions(query)
            report["after_fetch"] = len(parts)
        except Exception as err:
            report["after_fetch"] = str(err)
    return report


uri, query = sys.argv[1], sys.argv[2]
try:
    with flight_sql.connect(uri) as connection, connection.cursor() as cursor:
        if sys.argv[3:4] == ["--hold"]:
            print(json.dumps(hold(cursor, query, int(sys.argv[4])), ensure_ascii=False))
        else:
            cursor.execute(query)
            print(json.dumps(table_json(cursor.fetch_arrow_table()), ensure_ascii=False, default=str))
except Exception as error:  # the server's error, for the test to check
    print(json.dumps({"error": str(error)}, ensure_ascii=False))
