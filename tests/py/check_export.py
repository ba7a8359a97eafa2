"""Reads a voxpop export with tools that share no code with voxpop.

Usage: check_export.py PACKAGE_DIR
Prints a JSON report: the Frictionless validation (frictionless), and, for Parquet resources,
the row counts read by pyarrow and by DuckDB.
"""
import json
import sys
from pathlib import Path

import duckdb
import frictionless
import pyarrow.parquet as pq

package_dir = Path(sys.argv[1])
descriptor = package_dir / "datapackage.json"
report = frictionless.validate(str(descriptor))
result = {
    "valid": report.valid,
    "errors": [error.message for task in report.tasks for error in task.errors][:20],
    "resources": {},
}
for resource in json.loads(descriptor.read_text(encoding="utf-8"))["resources"]:
    path = package_dir / resource["path"]
    entry = {"declared_rows": resource["rows"]}
    if resource["format"] == "parquet":
        entry["pyarrow_rows"] = pq.read_table(path).num_rows
        entry["duckdb_rows"] = duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()[0]
    result["resources"][resource["name"]] = entry
print(json.dumps(result, ensure_ascii=False))
