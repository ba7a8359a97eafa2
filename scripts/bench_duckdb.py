"""The weekly summary's aggregate in DuckDB on the Parquet files of voxpop's Delta table.

Usage: bench_duckdb.py TABLE_DIR "'2025-W27','2025-W28',..."
Every data file of the table is live in the benchmark's lake (it is only appended to), so the
files are read directly with hive partitioning; the week filter prunes partitions as Delta does.
Timed twice: with DuckDB's defaults, and with its Parquet metadata cache on (footers read once,
as voxpop's long-running server keeps them).
"""
import statistics
import sys
import time

import duckdb

table, weeks = sys.argv[1], sys.argv[2]
query = f"""
SELECT received_week, topic, province_code, count(*) AS n
FROM read_parquet('{table}/*/*.parquet', hive_partitioning = true)
WHERE received_week IN ({weeks})
GROUP BY received_week, topic, province_code
"""
for label, setting in [("defaults", None), ("Parquet metadata cache on", "SET parquet_metadata_cache = true")]:
    con = duckdb.connect()
    if setting:
        con.execute(setting)
    times = []
    for _ in range(4):
        started = time.perf_counter()
        rows = con.execute(query).fetchall()
        times.append(time.perf_counter() - started)
    times = sorted(times[1:])
    print(f"aggregate in DuckDB {duckdb.__version__} (same Parquet files, {label}): median {times[1]:.3f} s, {len(rows)} groups")
