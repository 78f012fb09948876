"""`cargo xtask bench --only spark`, the Spark side (run by xtask with a
pyspark venv under target/tools, the wheel installed): on Spark local[N]
(offline, UI off), the wall time of

- identity: ``mapInArrow`` returning its batches (the floor: Parquet read,
  Arrow to Python and back, no work), into Spark's ``noop`` sink;
- classify: ``observer_py.spark.classify`` of the same DataFrame, into
  ``noop``;
- import: ``observer_py.spark.import_flow_logs`` of the blob-hour tree
  (one task per hour prefix), classified, into a fresh directory.

Each is run ``--runs`` times after one warm-up; the best wall time is
kept. Prints one JSON object.

usage: spark_bench.py HIVE_TREE FLOW_LOG_TREE TOPOLOGY OUT_DIR CORES RUNS
"""

import json
import os
import shutil
import sys
import time


def main():
    hive, logs, topology, out, cores, runs = sys.argv[1:7]
    cores, runs = int(cores), int(runs)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from observer_py import spark as ospark

    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("observer_py bench")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.memory", "2g")
        .config("spark.sql.shuffle.partitions", str(cores * 2))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.read.parquet(hive)
    rows = df.count()

    def identity(batches):
        yield from batches

    def best(work) -> float:
        work()  # warm-up: JVM, Python workers, the classifier's state
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            work()
            times.append(time.perf_counter() - started)
        return min(times)

    def noop(frame):
        frame.write.format("noop").mode("overwrite").save()

    figures = {"spark": spark.version, "cores": cores, "rows": rows}
    figures["identity_s"] = best(lambda: noop(df.mapInArrow(identity, df.schema)))
    figures["classify_s"] = best(lambda: noop(ospark.classify(df, topology=topology)))

    imported = {}

    def run_import():
        shutil.rmtree(out, ignore_errors=True)
        summary = ospark.import_flow_logs(spark, [logs], out, topology=topology)
        imported["rows"] = sum(r["records_out"] for r in summary.collect())
        imported["prefixes"] = summary.count()

    figures["import_s"] = best(run_import)
    figures["import_rows"] = imported["rows"]
    figures["import_prefixes"] = imported["prefixes"]
    spark.stop()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
