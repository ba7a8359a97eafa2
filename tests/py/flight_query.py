"""Runs SQL over Arrow Flight SQL with the ADBC driver (adbc-driver-flightsql, PyPI).

Usage: flight_query.py grpc://HOST:PORT "SELECT ..."
Prints JSON: the Arrow schema, the row count and the rows, or the error the server gave.
"""
import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql

uri, query = sys.argv[1], sys.argv[2]
try:
    with flight_sql.connect(uri) as connection, connection.cursor() as cursor:
        cursor.execute(query)
        table = cursor.fetch_arrow_table()
        print(json.dumps({
            "schema": {field.name: str(field.type) for field in table.schema},
            "rows": table.num_rows,
            "data": table.to_pylist(),
        }, ensure_ascii=False, default=str))
except Exception as error:  # the server's error, for the test to check
    print(json.dumps({"error": str(error)}, ensure_ascii=False))
