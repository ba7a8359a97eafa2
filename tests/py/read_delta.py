"""Reads a Delta table with tools that share no code with voxpop: the Delta log replayed here
from its JSON commits (add/remove actions, as the Delta protocol describes them) and the data
files read by pyarrow. Prints a JSON report: active files, rows, ids, partition values, schema.

Usage: python read_delta.py TABLE_DIR
"""

import json
import os
import sys

import pyarrow.parquet as pq


def active_files(table_dir):
    log_dir = os.path.join(table_dir, "_delta_log")
    commits = sorted(name for name in os.listdir(log_dir) if name.endswith(".json") and name[:20].isdigit())
    if any(name.endswith(".checkpoint.parquet") for name in os.listdir(log_dir)):
        raise SystemExit("checkpoints are not replayed by this reader; use a table with fewer commits")
    files = {}
    for name in commits:
        with open(os.path.join(log_dir, name), encoding="utf-8") as commit:
            for line in commit:
                action = json.loads(line)
                if "add" in action:
                    files[action["add"]["path"]] = action["add"].get("partitionValues", {})
                elif "remove" in action:
                    files.pop(action["remove"]["path"], None)
    return files, len(commits)


def main():
    table_dir = sys.argv[1]
    files, commits = active_files(table_dir)
    ids, weeks, rows = [], set(), 0
    schema = None
    for path, partition in files.items():
        table = pq.read_table(os.path.join(table_dir, path))
        rows += table.num_rows
        ids.extend(table.column("id").to_pylist())
        weeks.add(partition.get("received_week"))
        schema = {field.name: str(field.type) for field in table.schema}
    print(json.dumps({"commits": commits, "files": len(files), "rows": rows, "ids": ids, "weeks": sorted(w for w in weeks if w), "schema": schema}))


if __name__ == "__main__":
    main()
