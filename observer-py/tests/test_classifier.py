"""observer_py.Classifier on pyarrow, without Spark: the same verdicts as
the CLI, the state reused, bad input named, the GIL released."""

import threading
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import observer_py
from conftest import TESTDATA, TOPOLOGY, run_observer

CAPTURE = TESTDATA / "schema-2" / "capture"


def flows(path):
    """The flow files below `path` as one table (pyarrow's own reader)."""
    files = sorted(p for p in path.rglob("*.parquet") if not p.name.startswith("dns-"))
    return pa.concat_tables(pq.read_table(f) for f in files)


def test_the_cli_and_the_wheel_give_the_same_rows(tmp_path):
    """`observer classify` of a schema-2 capture (with its dns table) and
    Classifier.classify of the same rows (dns tables as the CLI finds
    them) give the same table, column for column."""
    run_observer("classify", "--topology", TOPOLOGY, "--out", tmp_path, CAPTURE)
    cli = flows(tmp_path)
    assert pq.read_metadata(next(tmp_path.glob("flows-*.parquet"))).metadata[
        b"observer.schema_version"
    ] == b"3"

    classifier = observer_py.Classifier(str(TOPOLOGY), dns=str(CAPTURE))
    assert classifier.dns_answers == 6
    ours = classifier.classify(flows(CAPTURE))
    assert ours.schema == observer_py.flow_schema()
    assert ours.num_rows == cli.num_rows == 34
    for name in cli.column_names:
        assert ours.column(name).to_pylist() == cli.column(name).to_pylist(), name
    # The capture was classified live with the same topology.
    assert ours.column("verdict").to_pylist() == flows(CAPTURE).column("verdict").to_pylist()


def test_batches_and_tables_and_extra_columns():
    table = flows(CAPTURE)
    classifier = observer_py.Classifier(TOPOLOGY)
    whole = classifier.classify(table)
    one = classifier.classify(table.to_batches()[0])
    assert one.num_rows == table.to_batches()[0].num_rows
    # A caller's own columns come back after the flow columns, unchanged.
    tagged = table.append_column("row", pa.array(range(table.num_rows), pa.int64()))
    back = classifier.classify(tagged)
    assert back.column_names[-1] == "row"
    assert back.column("row").to_pylist() == list(range(table.num_rows))
    assert back.column("verdict").to_pylist() == whole.column("verdict").to_pylist()
    # Reused across calls: the same answer twice.
    assert classifier.classify(table).equals(whole)


def test_bad_input_is_named():
    with pytest.raises(observer_py.ObserverError, match="cannot read the topology file"):
        observer_py.Classifier("/nonexistent/topology.toml")
    classifier = observer_py.Classifier(TOPOLOGY)
    table = flows(CAPTURE)
    with pytest.raises(observer_py.ObserverError, match="missing column `bytes`"):
        classifier.classify(table.drop_columns(["bytes"]))
    negative = table.set_column(
        table.schema.get_field_index("packets"),
        "packets",
        pa.array([-1] * table.num_rows, pa.int64()),
    )
    with pytest.raises(observer_py.ObserverError, match=r"column `packets`, row 0: -1 is not a non-negative integer"):
        classifier.classify(negative)
    with pytest.raises(TypeError, match="pyarrow.RecordBatch or pyarrow.Table"):
        classifier.classify([1, 2, 3])


def test_the_gil_is_released_while_rust_works():
    """While one thread is inside classify, another runs Python: if the GIL
    were held, nothing else would run between the call's first and last
    moments (its middle is Rust work only)."""
    table = flows(CAPTURE)
    big = pa.concat_tables([table] * (300_000 // table.num_rows))
    classifier = observer_py.Classifier(TOPOLOGY)
    classifier.classify(big.slice(0, 10))  # warm up
    window = {}
    ticks = []
    done = threading.Event()

    def work():
        window["start"] = time.perf_counter()
        classifier.classify(big)
        window["end"] = time.perf_counter()
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
        for _ in range(1000):
            pass
    worker.join()
    start, end = window["start"], window["end"]
    margin = (end - start) / 10
    during = [t for t in ticks if start + margin < t < end - margin]
    assert during, f"no Python ran during the {end - start:.3f} s call"


def test_concurrent_calls_agree():
    table = flows(CAPTURE)
    classifier = observer_py.Classifier(TOPOLOGY)
    expected = classifier.classify(table)
    results = [None] * 4

    def work(i):
        results[i] = classifier.classify(table)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.equals(expected) for r in results)


def test_schema_3_is_what_spark_takes():
    schema = observer_py.flow_schema()
    assert observer_py.SCHEMA_VERSION == "3"
    assert schema.field("start_time").type == pa.timestamp("us", tz="UTC")
    assert schema.field("bytes").type == pa.int64()
    assert not any(pa.types.is_uint64(f.type) or pa.types.is_uint32(f.type) for f in schema)
    # Written times are the nanosecond times rounded down to microseconds.
    table = flows(CAPTURE)
    out = observer_py.Classifier(TOPOLOGY).classify(table)
    ns = table.column("start_time").cast(pa.int64()).to_pylist()
    us = out.column("start_time").cast(pa.int64()).to_pylist()
    assert us == [n // 1000 for n in ns]
    assert pc.sum(out.column("bytes")).as_py() == pc.sum(table.column("bytes")).as_py()
