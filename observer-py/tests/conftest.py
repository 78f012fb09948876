"""Shared fixtures of the observer_py tests: the repository's files, the
observer binary (the CLI the wheel must agree with), one SparkSession per
test session (local[2], offline), Azurite for Blob Storage.

`cargo xtask test` runs this suite once per pyspark line (4.0 and 3.5),
each in its own venv under target/tools, with OBSERVER_BIN and
OBSERVER_NODE_MODULES set."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "lab" / "topologies" / "default.toml"
TESTDATA = REPO / "observer" / "testdata" / "parquet"


def observer_bin() -> Path:
    found = os.environ.get("OBSERVER_BIN") or str(REPO / "target" / "release" / "observer")
    if not Path(found).is_file():
        pytest.fail(f"no observer binary at {found}: run through `cargo xtask test` or set OBSERVER_BIN")
    return Path(found)


def run_observer(*args, env=None) -> str:
    """Runs the observer CLI; its stdout, or a failure with its stderr."""
    done = subprocess.run(
        [str(observer_bin()), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if done.returncode != 0:
        pytest.fail(f"observer {' '.join(map(str, args))} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="session")
def spark(azurite):
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    # The executors' Python workers reach Azurite as a cluster's would
    # reach Blob Storage: through the environment Spark gives them.
    for key, value in azurite.env.items():
        builder = builder.config(f"spark.executorEnv.{key}", value)
    session = (
        builder.master("local[2]")
        .appName("observer_py tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "4")
        # Not UTC: times must survive a session in another zone.
        .config("spark.sql.session.timeZone", "America/New_York")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


class Azurite:
    """Azurite's blob service on 127.0.0.1 at a free port."""

    KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

    def __init__(self):
        modules = os.environ.get("OBSERVER_NODE_MODULES") or str(REPO / "target" / "tools" / "npm" / "node_modules")
        binary = Path(modules) / ".bin" / "azurite-blob"
        if not binary.exists():
            pytest.fail(f"{binary} missing: run `cargo xtask setup` (installs Azurite)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="observer-py-azurite-")
        self.process = subprocess.Popen(
            [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
             "--skipApiVersionCheck", "--silent", "--location", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None:
                    pytest.fail("azurite exited at start")
                if time.monotonic() > deadline:
                    pytest.fail("azurite did not listen within 60 s")
                time.sleep(0.1)
        self.env = {
            "AZURE_STORAGE_USE_EMULATOR": "true",
            "AZURITE_BLOB_STORAGE_URL": f"http://127.0.0.1:{self.port}",
        }
        self.connection_string = (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={self.KEY};BlobEndpoint=http://127.0.0.1:{self.port}/devstoreaccount1;"
        )

    def create_container(self, container: str):
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(self.connection_string)
        try:
            service.create_container(container)
        except Exception as error:  # noqa: BLE001 - the SDK's own type varies
            if "ContainerAlreadyExists" not in str(error):
                raise
        return service.get_container_client(container)

    def upload(self, root: Path, container: str):
        client = self.create_container(container)
        for path in sorted(root.rglob("*")):
            if path.is_file():
                with open(path, "rb") as data:
                    client.upload_blob(str(path.relative_to(root)), data, overwrite=True)

    def download(self, container: str, prefix: str, dest: Path) -> list:
        from azure.storage.blob import BlobServiceClient

        client = BlobServiceClient.from_connection_string(self.connection_string).get_container_client(container)
        names = []
        for blob in client.list_blobs(name_starts_with=prefix):
            relative = os.path.relpath(blob.name, prefix)
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(client.download_blob(blob.name).readall())
            names.append(relative)
        return sorted(names)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def azurite():
    service = Azurite()
    saved = {k: os.environ.get(k) for k in service.env}
    # The Rust import in this process and in Spark's workers finds Azurite
    # through these (as the CLI does).
    os.environ.update(service.env)
    yield service
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    service.stop()
