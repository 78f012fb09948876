"""observer_py.spark on Spark local[2] (one session per test run, on
pyspark 4.0 or 3.5, whichever this venv holds): Spark reads what observer
writes with no flag; spark.classify gives, row for row, the verdicts of
`observer import --topology`; import_flow_logs over hour prefixes in
Azurite gives the partitions and rows of the CLI's import."""

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import TESTDATA, TOPOLOGY, observer_bin, run_observer
from observer_py import spark as ospark

# Azure's layout for VNet flow logs, as the network watcher writes it.
PREFIX = (
    "flowLogResourceID=/SUBSCRIPTIONS/0/RESOURCEGROUPS/NW/PROVIDERS/"
    "MICROSOFT.NETWORK/NETWORKWATCHERS/NW/FLOWLOGS/ASE"
)
HOUR_MS = 3_600_000
START_MS = 1_714_564_800_000  # 2024-05-01T12:00:00Z
MACS = ["00224871C205", "00224871C206"]
# Destinations of every kind the default topology tells apart: the ASE
# subnet and VNet, the on-premises range, Azure service and public
# addresses; ports of documented and undocumented dependencies.
DESTINATIONS = [
    ("10.0.0.7", 443),
    ("10.0.1.4", 1433),
    ("10.1.2.3", 443),
    ("192.168.10.5", 22),
    ("52.239.184.10", 443),
    ("13.107.6.152", 443),
    ("20.150.1.1", 1433),
    ("40.126.1.1", 443),
    ("8.8.8.8", 53),
    ("151.101.1.69", 80),
    ("23.102.135.246", 1688),
]


def flow_tuples(hour: int, rng: random.Random) -> list:
    """Tuples of one hour: outbound flows from the ASE (some denied, some
    one-way), and inbound ones."""
    tuples = []
    for i in range(40):
        t = START_MS + hour * HOUR_MS + i * 60_000
        dst, port = DESTINATIONS[i % len(DESTINATIONS)]
        src = f"10.0.0.{4 + i % 3}"
        proto = "17" if port == 53 else "6"
        state = "B" if i % 5 == 0 else "E"
        decision = "D" if i % 13 == 0 else "A"
        sent, back = rng.randint(60, 90_000), rng.randint(0, 90_000)
        tuples.append(
            f"{t},{src},{dst},{40000 + i},{port},{proto},O,{state},{'NX'},"
            f"{1 + sent // 1400},{sent},{back // 1400},{back}"
            if decision == "A"
            else f"{t},{src},{dst},{40000 + i},{port},{proto},O,B,NX,1,60,0,0"
        )
        if i % 4 == 0:
            tuples.append(
                f"{t + 5},{dst},{src},{port},{40000 + i},{proto},I,E,NX,"
                f"3,{back + 60},2,{sent}"
            )
    return tuples


def vnet_blob(mac: str, tuples: list) -> str:
    return json.dumps(
        {
            "records": [
                {
                    "time": "2024-05-01T13:00:00Z",
                    "flowLogVersion": 4,
                    "macAddress": mac,
                    "category": "FlowLogFlowEvent",
                    "targetResourceID": "/subscriptions/0/resourceGroups/rg/providers/"
                    "Microsoft.Network/virtualNetworks/ase-vnet",
                    "flowRecords": {
                        "flows": [
                            {
                                "aclID": "a",
                                "flowGroups": [
                                    {"rule": "DefaultRule_AllowInternetOutBound", "flowTuples": tuples}
                                ],
                            }
                        ]
                    },
                }
            ]
        }
    )


@pytest.fixture(scope="module")
def flow_logs(tmp_path_factory) -> Path:
    """Three hours (12, 13, 14 UTC) of VNet flow logs of two interfaces in
    Azure's blob layout."""
    root = tmp_path_factory.mktemp("flowlogs")
    rng = random.Random(22)
    for hour in range(3):
        for mac in MACS:
            leaf = root / PREFIX / f"y=2024/m=05/d=01/h={12 + hour:02d}/m=00/macAddress={mac}"
            leaf.mkdir(parents=True)
            (leaf / "PT1H.json").write_text(vnet_blob(mac, flow_tuples(hour, rng)))
    return root


def flow_files(root: Path) -> list:
    return sorted(p for p in Path(root).rglob("flows-*.parquet"))


def read_rows(root: Path) -> pa.Table:
    """The flow files below `root` as one table (no partition columns)."""
    return pa.concat_tables(pq.read_table(f, partitioning=None) for f in flow_files(root))


def comparable(table: pa.Table, columns: list) -> list:
    """Rows as tuples of plain values (times as integer microseconds),
    sorted: order-free comparison."""
    values = []
    for name in columns:
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        values.append(column.to_pylist())
    return sorted(zip(*values), key=repr)


def spark_rows(df, columns: list) -> list:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    kinds = {f.name: f.dataType for f in df.schema.fields}
    selected = [
        F.unix_micros(F.col(c)).alias(c) if isinstance(kinds[c], T.TimestampType) else F.col(c)
        for c in columns
    ]
    # Spark hands lists back as lists, as pyarrow does.
    return sorted((tuple(r) for r in df.select(*selected).collect()), key=repr)


def test_spark_reads_every_file_observer_writes_without_flags(spark, flow_logs, tmp_path):
    """Flows and dns tables of `classify`, flows of `import` (flat and
    Hive-partitioned) are read by Spark as they are: times as timestamps
    (the same instants, in a session that is not UTC), counters as longs,
    the same rows and sums as pyarrow reads."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    classified = tmp_path / "classified"
    run_observer("classify", "--topology", TOPOLOGY, "--out", classified, TESTDATA / "schema-2" / "capture")
    imported = tmp_path / "imported"
    run_observer("import", "azure-vnet-flow-log", flow_logs, "--out", imported)
    hive = tmp_path / "hive"
    run_observer("import", "azure-vnet-flow-log", flow_logs, "--out", hive, "--partition", "hour",
                 "--topology", TOPOLOGY)
    written = {
        "classify flows": (classified, "flows-*.parquet"),
        "classify dns": (classified, "dns-*.parquet"),
        "import flows": (imported, "flows-*.parquet"),
        "import hive": (hive, None),
    }
    for what, (root, pattern) in written.items():
        df = spark.read.parquet(str(root / pattern) if pattern else str(root))
        files = sorted(root.glob(pattern)) if pattern else flow_files(root)
        assert files, what
        arrow = pa.concat_tables(pq.read_table(f, partitioning=None) for f in files)
        assert df.count() == arrow.num_rows > 0, what
        kinds = {f.name: f.dataType for f in df.schema.fields}
        for field in arrow.schema:
            if pa.types.is_timestamp(field.type):
                assert isinstance(kinds[field.name], T.TimestampType), (what, field.name)
                got = sorted(r[0] for r in df.select(F.unix_micros(field.name)).collect() if r[0] is not None)
                want = sorted(v for v in arrow.column(field.name).cast(pa.int64()).to_pylist() if v is not None)
                assert got == want, (what, field.name)
            elif pa.types.is_int64(field.type):
                assert isinstance(kinds[field.name], T.LongType), (what, field.name)
                got = df.agg(F.sum(field.name)).first()[0]
                want = pa.compute.sum(arrow.column(field.name)).as_py()
                assert got == want, (what, field.name)
            assert not isinstance(kinds[field.name], T.DecimalType), (what, field.name)
        if what == "import hive":
            assert {"date", "hour"} <= set(df.columns)
            hours = sorted(r[0] for r in df.select("hour").distinct().collect())
            assert hours == [12, 13, 14]


def test_classify_gives_the_verdicts_of_the_cli_row_for_row(spark, flow_logs, tmp_path):
    """A Hive tree written by `observer import` (unclassified), read by
    Spark and classified with spark.classify (in many small groups, so
    both directions of a connection must be grouped together to be
    paired), equals `observer import --topology` of the same input, row
    for row, in every flow column."""
    hive = tmp_path / "hive"
    run_observer("import", "azure-vnet-flow-log", flow_logs, "--out", hive, "--partition", "hour")
    cli = tmp_path / "cli"
    run_observer("import", "azure-vnet-flow-log", flow_logs, "--out", cli, "--partition", "hour",
                 "--topology", TOPOLOGY)
    want = read_rows(cli)
    assert set(want.column("verdict").to_pylist()) - {None}, "the input has verdicts"
    assert len(set(want.column("verdict").to_pylist())) >= 3, "several verdicts are exercised"

    df = spark.read.parquet(str(hive))
    out = ospark.classify(df, topology=str(TOPOLOGY), rows_per_call=16)
    assert out.columns[-2:] == ["date", "hour"], "partition columns pass through, last"
    columns = want.column_names
    got = spark_rows(out, columns)
    expected = comparable(want, columns)
    assert len(got) == len(expected) == want.num_rows
    assert got == expected
    # The partition columns still say each row's (UTC) hour; hour() works
    # in the session's zone, which is not UTC here.
    from pyspark.sql import functions as F

    zone = spark.conf.get("spark.sql.session.timeZone")
    assert zone != "UTC"
    utc_hour = F.hour(F.to_utc_timestamp(F.col("start_time"), zone))
    assert out.filter(utc_hour != F.col("hour")).count() == 0


def test_classify_rejects_what_is_not_a_flow_table(spark):
    df = spark.createDataFrame([(1, "x")], "a long, b string")
    with pytest.raises(Exception, match="lacks the flow column"):
        ospark.classify(df, topology=str(TOPOLOGY))
    with pytest.raises(Exception, match="cannot read the topology file"):
        ospark.classify(df, topology="/nonexistent/topology.toml")


def test_import_flow_logs_gives_the_files_and_counts_of_the_cli(spark, azurite, flow_logs, tmp_path):
    """Two of three hour prefixes in Azurite, imported by Spark tasks (one
    per prefix, each running the Rust import against Blob Storage) and by
    the CLI: the same partitions with the same rows, the same counts."""
    azurite.upload(flow_logs, "insights-logs-flowlogflowevent")
    azurite.create_container("flows")
    source = f"az://insights-logs-flowlogflowevent/{PREFIX}"
    window = ("2024-05-01T13:00:00Z", "2024-05-01T15")
    printed = run_observer(
        "import", "azure-vnet-flow-log", source, "--since", window[0], "--until", window[1],
        "--out", "az://flows/cli", "--partition", "hour", "--topology", TOPOLOGY,
        env=azurite.env,
    )
    summaries = ospark.import_flow_logs(
        spark, [source], "az://flows/spark", topology=str(TOPOLOGY), since=window[0], until=window[1]
    )
    rows = sorted(summaries.collect(), key=lambda r: r["prefix"])
    assert [r["prefix"].rsplit("/", 1)[-1] for r in rows] == ["h=13", "h=14"]
    assert all(r["files"] == len(MACS) for r in rows)
    records_out = sum(r["records_out"] for r in rows)
    assert f"read {2 * len(MACS)} file(s)" in printed
    assert f"{records_out} flow record(s) out" in printed
    assert sum(r["written_rows"] for r in rows) == records_out
    assert all(r["problem_count"] == 0 for r in rows)
    verdicts = {}
    for r in rows:
        for v, n in r["verdicts"].items():
            verdicts[v] = verdicts.get(v, 0) + n
    for v, n in verdicts.items():
        assert f"verdict {v}: {n}" in printed

    cli_dir, spark_dir = tmp_path / "cli", tmp_path / "spark"
    cli_files = azurite.download("flows", "cli", cli_dir)
    spark_files = azurite.download("flows", "spark", spark_dir)
    partitions = lambda names: sorted({str(Path(n).parent) for n in names})  # noqa: E731
    assert partitions(spark_files) == partitions(cli_files) == [
        "date=2024-05-01/hour=13",
        "date=2024-05-01/hour=14",
    ]
    assert sorted(n for r in rows for n in r["files_written"]) == sorted(spark_files)
    for partition in partitions(cli_files):
        want, got = read_rows(cli_dir / partition), read_rows(spark_dir / partition)
        assert comparable(got, want.column_names) == comparable(want, want.column_names), partition


def test_run_output_is_read_by_spark(spark, tmp_path):
    """`observer lab run` (the capture, as root): the flows and dns tables
    of a live run read by Spark, verdicts and all."""
    if os.geteuid() != 0:
        pytest.fail("the capture needs root: run through `sudo -E cargo xtask test`")
    from pyspark.sql import functions as F

    out = tmp_path / "run"
    done = subprocess.run(
        [str(observer_bin()), "lab", "run", "default", "--scenario", "storage", "--quiet", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    flows = flow_files(out)
    assert flows, f"no flow files in {out}"
    arrow = pa.concat_tables(pq.read_table(f, partitioning=None) for f in flows)
    df = spark.read.parquet(*map(str, flows))
    assert df.count() == arrow.num_rows > 0
    assert df.agg(F.sum("bytes")).first()[0] == pa.compute.sum(arrow.column("bytes")).as_py()
    assert df.filter(F.col("verdict").isNull()).count() == 0
    dns = sorted(out.rglob("dns-*.parquet"))
    if dns:
        assert spark.read.parquet(*map(str, dns)).count() == sum(pq.read_metadata(f).num_rows for f in dns)
    shutil.rmtree(out, ignore_errors=True)
