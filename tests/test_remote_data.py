"""--data s3://...: a real S3-compatible server (moto's) on loopback, started and stopped
here; pyarrow reads the endpoint and the credentials from the usual AWS_* variables."""

from __future__ import annotations

import json
import os
import socket

import pytest

from conftest import FIXTURES, assert_one_line_error, run_cli
from perfgate.data.dataset import ParquetDataset
from perfgate.errors import DataError, UsageError

BUCKET = "perfgate-data"
REFERENCE = str(FIXTURES / "mlp_reference.onnx")
AA = str(FIXTURES / "mlp_aa.onnx")


@pytest.fixture(scope="module")
def s3_env():
    """The server's address and test credentials as environment variables (nothing from the
    machine's own AWS set-up: no ~/.aws files, no instance metadata)."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_CONFIG_FILE": os.devnull,
        }
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        client.create_bucket(Bucket=BUCKET)
        client.upload_file(str(FIXTURES / "features.parquet"), BUCKET, "eval/features.parquet")
        yield env
    finally:
        server.stop()


@pytest.fixture
def in_s3_env(s3_env, monkeypatch):
    for name, value in s3_env.items():
        monkeypatch.setenv(name, value)
    return s3_env


def gate(env, data, *extra):
    return run_cli("compare", "-r", REFERENCE, "-c", AA, "-d", data, "--input", "features=f*", "-q", *extra, env=env)


def test_a_dataset_in_s3_reads_the_same_rows_as_the_local_file(in_s3_env):
    remote = ParquetDataset(f"s3://{BUCKET}/eval/features.parquet")
    local = ParquetDataset(FIXTURES / "features.parquet")
    assert remote.num_rows == local.num_rows and remote.schema.equals(local.schema)
    columns = ["f00", "f15"]
    assert remote.read(columns, remote.select_rows(50, 3)).equals(local.read(columns, local.select_rows(50, 3)))


@pytest.mark.e2e
def test_compare_on_data_in_s3(s3_env, tmp_path):
    uri = f"s3://{BUCKET}/eval/features.parquet"
    result = gate(s3_env, uri, "--rows", "200", "--time-budget", "8", "--cold-starts", "0", "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["verdict"] in ("pass", "inconclusive")
    assert report["compared"]["data"]["path"] == uri and report["compared"]["data"]["rows_used"] == 200


def test_a_missing_bucket_is_one_line_and_exit_3(s3_env, tmp_path):
    result = gate(s3_env, "s3://no-such-bucket/features.parquet", "--json", str(tmp_path / "err.json"))
    assert_one_line_error(result, 3, "cannot read data 's3://no-such-bucket/features.parquet': no such bucket 'no-such-bucket'")
    assert json.loads((tmp_path / "err.json").read_text())["verdict"] == "error"


def test_a_missing_key_is_one_line_and_exit_3(s3_env):
    result = gate(s3_env, f"s3://{BUCKET}/eval/absent.parquet")
    assert_one_line_error(result, 3, f"no such key 'eval/absent.parquet' in bucket '{BUCKET}'")


def test_no_credentials_is_one_line_and_exit_3(s3_env):
    env = {**s3_env, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    result = gate(env, f"s3://{BUCKET}/eval/features.parquet")
    assert_one_line_error(result, 3, "check the credentials")


def test_an_unreachable_endpoint_is_one_line_and_exit_3(s3_env):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = gate({**s3_env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}, f"s3://{BUCKET}/eval/features.parquet")
    assert_one_line_error(result, 3, "Could not connect to server")


def test_remote_errors_in_the_api(in_s3_env):
    with pytest.raises(DataError, match="it is a directory, not a Parquet file"):
        ParquetDataset(f"s3://{BUCKET}/eval")
    with pytest.raises(UsageError, match="Unrecognized filesystem type in URI"):
        ParquetDataset("nosuchfs://bucket/features.parquet")


def test_a_file_uri_is_a_local_file():
    path = FIXTURES / "features.parquet"
    assert ParquetDataset(path.as_uri()).num_rows == ParquetDataset(path).num_rows
    with pytest.raises(DataError, match="no such file"):
        ParquetDataset((FIXTURES / "absent.parquet").as_uri())
