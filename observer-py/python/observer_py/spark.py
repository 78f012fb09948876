"""observer on Spark DataFrames (Databricks, Fabric, Synapse, plain Spark).

``classify(df, topology=PATH, ...)`` classifies a DataFrame of flow records
(any table observer writes, read with ``spark.read.parquet``) with the Rust
classifier of ``observer classify``, on the executors:

- on Spark 4 through ``groupBy(...).applyInArrow``, on Spark 3.5 through
  ``repartition(...).mapInArrow``;
- rows are grouped by a hash of the interface and the unordered pair of
  endpoints (address and port) with the protocol, so both directions of a
  connection meet in one call, as the CLI pairs them; the interfaces on
  which the whole DataFrame has both directions are counted once, first,
  and given to every call (``Classifier.classify(both_ways=...)``);
- each Python worker builds the classifier once (topology, catalog,
  service tags) and reuses it for every group: a module-level cache keyed
  by the content of the topology, service tags and catalog files, which the
  driver reads and ships with the function (executors need no copy of
  them); ``dns`` tables are read by each worker, so give a path every
  executor can read (``az://``, a Unity Catalog volume, DBFS).

The result has the flow columns (schema 3, unsigned columns widened to the
signed types Spark has: ``short`` for 8-bit, ``int`` for 16-bit) with the
classification filled, then the input's other columns (``date``/``hour``
of a Hive tree) unchanged.

``import_flow_logs(spark, inputs, out, ...)`` runs ``observer import`` of
Azure flow logs on the executors: the driver lists the blob-hour prefixes
(``.../y=/m=/d=/h=``), Spark schedules one task per prefix, each task runs
the Rust import of its prefix (reading and writing ``az://`` itself, Hive
``date=/hour=`` partitions), and the result is a DataFrame of one summary
row per prefix.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import threading
from typing import Iterable, Iterator, Sequence

import pyarrow as pa

from . import _native

__all__ = ["classify", "import_flow_logs", "spark_arrow_schema"]

_BUCKET = "_observer_bucket"

# The flow columns whose Arrow types Spark has no equivalent of, and what
# they become: Spark reads Parquet's unsigned columns widened like this, and
# takes only signed integers back from Python.
_WIDER = {
    pa.uint8(): pa.int16(),
    pa.uint16(): pa.int32(),
    pa.uint32(): pa.int64(),
}


def spark_arrow_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the types Spark takes back from Arrow: unsigned
    integers widened to the next signed type, times as UTC microseconds."""
    fields = []
    for field in schema:
        kind = _WIDER.get(field.type, field.type)
        if pa.types.is_timestamp(kind):
            kind = pa.timestamp("us", tz="UTC")
        fields.append(pa.field(field.name, kind, nullable=True))
    return pa.schema(fields)


def _spark_type(kind: pa.DataType):
    from pyspark.sql import types as T

    if pa.types.is_timestamp(kind):
        return T.TimestampType()
    if kind == pa.int16():
        return T.ShortType()
    if kind == pa.int32():
        return T.IntegerType()
    if kind == pa.int64():
        return T.LongType()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return T.StringType()
    if pa.types.is_list(kind) and pa.types.is_string(kind.value_type):
        return T.ArrayType(T.StringType())
    raise TypeError(f"no Spark type for the flow column type {kind}")


# ---- the classifier of each Python worker ------------------------------------

_CACHE: dict = {}
_CACHE_LOCK = threading.RLock()


def _bundle(topology, catalogs, dns) -> tuple:
    """What a worker needs to build the classifier: the bytes of the files
    it is built from (read here, on the driver, after building it once to
    report a bad topology before any task runs) and the dns paths."""
    dns_paths = [] if dns is None else ([dns] if isinstance(dns, (str, os.PathLike)) else list(dns))
    dns_paths = [os.fspath(p) for p in dns_paths]
    checked = _native.Classifier(os.fspath(topology), [os.fspath(c) for c in catalogs], dns_paths or None)
    files = []
    for name, path in checked.files:
        with open(path, "rb") as f:
            files.append((name, f.read()))
    return (tuple(files), len(catalogs), tuple(dns_paths))


def _materialize(files: tuple, catalog_count: int) -> tuple:
    """Writes the shipped topology, service tags and catalog files into a
    fresh directory (service tags where the topology names them); returns
    ``(topology_path, catalog_paths)``."""
    topology_name = files[0][0]
    tags = files[1 : len(files) - catalog_count]
    # The topology names its service tags file relative to itself,
    # possibly in a parent directory: nest the topology deep enough.
    ups = max([name.replace("\\", "/").split("/").count("..") for name, _ in tags] + [0])
    root = tempfile.mkdtemp(prefix="observer-py-")
    topology_dir = os.path.join(root, *(["t"] * (ups + 1)))
    written = []
    for index, (name, data) in enumerate(files):
        if index < len(files) - catalog_count:
            path = os.path.normpath(os.path.join(topology_dir, name))
        else:
            path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        written.append(path)
    return os.path.join(topology_dir, topology_name), written[len(files) - catalog_count :]


def _cached(kind: str, bundle: tuple, build):
    """The worker's object of ``kind`` for ``bundle``, built on first use
    and kept for the worker's life (Spark reuses Python workers)."""
    key = (kind, hashlib.sha256(repr(bundle).encode()).hexdigest())
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is None:
            found = build()
            _CACHE[key] = found
        return found


def _classifier(bundle: tuple) -> _native.Classifier:
    """The worker's classifier for ``bundle``."""

    def build():
        files, catalog_count, dns_paths = bundle
        topology, catalogs = _cached("files", (files, catalog_count), lambda: _materialize(files, catalog_count))
        return _native.Classifier(topology, catalogs, list(dns_paths) or None)

    return _cached("classifier", bundle, build)


# ---- classify ----------------------------------------------------------------


def _endpoint(addr: str, port: str):
    from pyspark.sql import functions as F

    return F.concat_ws("|", F.col(addr), F.col(port).cast("string"))


def _major(spark) -> int:
    return int(spark.version.split(".")[0])


def classify(
    df,
    topology,
    catalogs: Sequence = (),
    dns=None,
    rows_per_call: int = 200_000,
):
    """Classifies the flow records of ``df`` against the topology file
    ``topology`` (with extra ``catalogs``, and the ``dns`` tables naming the
    destinations), on the executors; returns a DataFrame (see the module
    documentation for its columns). ``rows_per_call``: about how many rows
    one call of the Rust classifier gets (memory of a Python worker)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if rows_per_call < 1:
        raise ValueError("rows_per_call must be at least 1")
    bundle = _bundle(topology, catalogs, dns)
    missing = [c for c in ("iface", "direction", "protocol", "src_addr", "dst_addr", "src_port", "dst_port") if c not in df.columns]
    if missing:
        raise _native.ObserverError(
            f"the DataFrame lacks the flow column(s) {', '.join(missing)}; is it a table observer wrote?"
        )

    # One pass first: the rows, and the interfaces with both directions.
    stats = (
        df.groupBy("iface")
        .agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("direction").alias("directions"))
        .collect()
    )
    total = sum(row["rows"] for row in stats)
    both_ways = sorted(row["iface"] for row in stats if row["directions"] == 2)
    buckets = max(1, math.ceil(total / rows_per_call))

    flow = _native.flow_schema()
    flow_names = set(flow.names)
    passthrough = [f for f in df.schema.fields if f.name not in flow_names and f.name != _BUCKET]
    flow_arrow = spark_arrow_schema(flow)
    out_spark = T.StructType(
        [T.StructField(f.name, _spark_type(f.type), True) for f in flow_arrow] + passthrough
    )
    passthrough_names = [f.name for f in passthrough]

    a = _endpoint("src_addr", "src_port")
    b = _endpoint("dst_addr", "dst_port")
    keyed = df.withColumn(
        _BUCKET,
        F.pmod(F.hash(F.col("iface"), F.col("protocol"), F.least(a, b), F.greatest(a, b)), F.lit(buckets)),
    )

    def run(table: pa.Table) -> pa.Table:
        if _BUCKET in table.column_names:
            table = table.drop_columns([_BUCKET])
        out = _classifier(bundle).classify(table, both_ways=both_ways)
        target = pa.schema(list(flow_arrow) + [out.schema.field(n) for n in passthrough_names])
        return out.cast(target)

    if _major(df.sparkSession) >= 4:
        return keyed.groupBy(_BUCKET).applyInArrow(run, out_spark)

    def run_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # A partition holds whole buckets: classify all of it as one set.
        batches = list(batches)
        if not batches:
            return
        yield from run(pa.Table.from_batches(batches)).to_batches()

    return keyed.repartition(buckets, _BUCKET).mapInArrow(run_partition, out_spark)


# ---- import_flow_logs ----------------------------------------------------------


def import_flow_logs(
    spark,
    inputs,
    out: str,
    topology=None,
    since=None,
    until=None,
    kind: str = "azure-vnet-flow-log",
    catalogs: Sequence = (),
    partition: str = "hour",
):
    """Imports Azure flow logs (``inputs``: ``az://CONTAINER/PREFIX`` or
    paths every executor can read) into ``out`` (``az://`` or a shared
    path), as ``observer import KIND INPUTS --out OUT --partition
    PARTITION`` would, classified with ``topology`` if given, restricted to
    ``since``/``until`` (UTC: ``2024-05-01T13:00:00Z``, ``2024-05-01T13``,
    ``2024-05-01``).

    The driver lists the blob-hour prefixes (names only); Spark runs one
    task per prefix; each task runs the Rust import of its prefix, reading
    and writing Blob Storage itself (credentials from the executors'
    environment, as the CLI takes them). Runs at once (not lazily) and
    returns a DataFrame of one summary row per prefix: ``prefix``,
    ``files``, ``records_in``, ``records_out``, ``skipped``,
    ``problem_count``, ``problems`` (the first ones, located),
    ``written_rows``, ``files_written`` (relative to ``out``),
    ``verdicts`` (records per verdict, with a topology). A prefix that
    fails (unreadable input, write error) fails the job with its message."""
    import datetime

    from pyspark.sql import types as T

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [os.fspath(i) for i in inputs]
    out = os.fspath(out)
    prefixes = _native.hour_prefixes(inputs, kind, since, until)
    bundle = None
    catalog_count = len(catalogs)
    if topology is not None:
        files, catalog_count, _ = _bundle(topology, catalogs, None)
        bundle = files
    # Runs writing into one output need distinct file names.
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")

    def task(item):
        index, prefix = item
        topology_path, catalog_paths = None, []
        if bundle is not None:
            topology_path, catalog_paths = _cached(
                "files", (bundle, catalog_count), lambda: _materialize(bundle, catalog_count)
            )
        summary = _native.import_flow_logs(
            [prefix],
            out,
            kind=kind,
            partition=partition,
            topology=topology_path,
            catalogs=catalog_paths,
            since=since,
            until=until,
            run_id=f"import-{stamp}-{index:05d}",
        )
        return (
            prefix,
            summary["files"],
            summary["records_in"],
            summary["records_out"],
            summary["skipped"],
            summary["problem_count"],
            summary["problems"],
            summary["written_rows"],
            summary["files_written"],
            summary["verdicts"],
        )

    schema = T.StructType(
        [
            T.StructField("prefix", T.StringType(), False),
            T.StructField("files", T.LongType(), False),
            T.StructField("records_in", T.LongType(), False),
            T.StructField("records_out", T.LongType(), False),
            T.StructField("skipped", T.LongType(), False),
            T.StructField("problem_count", T.LongType(), False),
            T.StructField("problems", T.ArrayType(T.StringType()), False),
            T.StructField("written_rows", T.LongType(), False),
            T.StructField("files_written", T.ArrayType(T.StringType()), False),
            T.StructField("verdicts", T.MapType(T.StringType(), T.LongType()), False),
        ]
    )
    if not prefixes:
        return spark.createDataFrame([], schema)
    rows = (
        spark.sparkContext.parallelize(list(enumerate(prefixes)), len(prefixes))
        .map(task)
        .collect()
    )
    return spark.createDataFrame(rows, schema)
