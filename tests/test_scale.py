"""Past one machine: Dask over the shards, stores in S3, the zarr ``minifloat`` codec.

A real ``distributed.LocalCluster`` (two worker processes) and moto's S3
server on 127.0.0.1, both started here; nothing else leaves the machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

import dask.array as da  # noqa: E402
import s3fs  # noqa: E402
import zarr  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

import minifloat_store as mfs  # noqa: E402
from minifloat_store import dask as mfs_dask  # noqa: E402
from minifloat_store.cli import main as cli_main  # noqa: E402
from minifloat_store.store import StoreChangedError, StoreLockedError  # noqa: E402
from minifloat_store.zarr_codec import MinifloatCodec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIM = 24
CHUNK = 256


@pytest.fixture(scope="module")
def s3():
    """storage_options for a fresh bucket on a moto S3 server on loopback."""
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # never look for cloud credentials
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {
        "endpoint_url": f"http://{host}:{port}",
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "eu-west-1"},
    }
    s3fs.S3FileSystem(**options).mkdir("bkt")
    yield options
    server.stop()


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as c,
    ):
        yield c


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    if n > 5:
        x[5] = 0.0  # an all-zero vector travels too
    return x


def _same_store(a: mfs.EmbeddingStore, b: mfs.EmbeddingStore) -> None:
    pa, ia = a.get_packed_all()
    pb, ib = b.get_packed_all()
    assert ia == ib
    assert pa.codes.tobytes() == pb.codes.tobytes()
    assert pa.scales.tobytes() == pb.scales.tobytes()


def test_dask_convert_of_an_s3_zarr_array_equals_the_local_convert(s3, client, tmp_path):
    x = _vectors(1500)
    src = zarr.create_array("s3://bkt/src.zarr", shape=x.shape, chunks=(400, DIM), dtype="float32", storage_options=s3)
    src[:] = x
    summary = mfs_dask.convert(
        "s3://bkt/src.zarr", "s3://bkt/emb.zarr", "e2m1", client=client, storage_options=s3, chunk_rows=CHUNK
    )
    assert summary.vectors == 1500 and summary.zero_vectors == 1
    np.save(tmp_path / "x.npy", x)
    mfs.convert(tmp_path / "x.npy", tmp_path / "local.zarr", "e2m1", progress=False, chunk_rows=CHUNK)
    with (
        mfs.EmbeddingStore.open("s3://bkt/emb.zarr", storage_options=s3) as remote,
        mfs.EmbeddingStore.open(tmp_path / "local.zarr") as local,
    ):
        _same_store(remote, local)
        assert remote.check() > 0
        ids = local.ids
        assert np.array_equal(remote.get(ids), local.get(ids))
        assert np.array_equal(remote.to_dask().compute(), local.to_numpy())
        q = _vectors(6, seed=9)
        want = local.search(q, k=10)
        for got in (remote.search(q, k=10), mfs_dask.search(remote, q, k=10, client=client)):
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        left, right = ids[::2][:700], ids[1::2][:700]
        assert np.array_equal(mfs_dask.score_pairs(remote, left, right, client=client), local.score(left, right))


def test_distributed_search_skips_deleted_rows_like_store_search(client, tmp_path):
    x = _vectors(900, seed=3)
    with mfs.EmbeddingStore.create(tmp_path / "s.zarr", DIM, "e4m3", chunk_rows=CHUNK) as s:
        s.add([f"v{i}" for i in range(900)], x)
        s.delete([f"v{i}" for i in range(0, 900, 7)])
        q = x[:4]
        got, want = mfs_dask.search(s, q, k=5, client=client), s.search(q, k=5)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        assert got[0].dtype == want[0].dtype == object
        assert np.array_equal(s.to_dask().compute(), s.to_numpy())
        snap = s.snapshot()
        assert s.to_dask().chunks[0] == tuple(int(snap.live_mask(lo, hi).sum()) for lo, hi in snap.partitions())


@pytest.mark.parametrize(
    "encoding",
    [
        mfs.Encoding("nf4", "vector", "centre+rotate", seed=3),
        mfs.Encoding("int4", "block32", "rotate", seed=1),
        mfs.Encoding("int8", "vector", "centre"),
    ],
    ids=["nf4-centre-rotate", "int4-block32-rotate", "int8-centre"],
)
def test_distributed_reads_of_an_encoded_store_are_the_stores(client, tmp_path, encoding):
    # Stores of every encoding, not only the study's minifloats, are read by Dask workers:
    # search, pair scores and the decoded array equal the store's own.
    x = _vectors(700, seed=4)
    enc = encoding.fit(x[:200]) if encoding.centres else encoding
    ids = [f"v{i}" for i in range(700)]
    with mfs.EmbeddingStore.create(tmp_path / "s.zarr", DIM, enc, chunk_rows=CHUNK) as s:
        s.add(ids, x)
        s.delete(ids[::9])
        q = x[1:6] + 0.1
        got, want = mfs_dask.search(s, q, k=7, client=client), s.search(q, k=7)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        one_thread = mfs_dask.search(s, q, k=7, client=client, threads=1)
        assert np.array_equal(one_thread[0], want[0]) and np.array_equal(one_thread[1], want[1])
        live = [i for n, i in enumerate(ids) if n % 9]
        left, right = live[:150], live[300:450]
        assert np.array_equal(mfs_dask.score_pairs(s, left, right, client=client), s.score(left, right))
        assert np.array_equal(s.to_dask().compute(), s.to_numpy())


def test_dask_reader_refuses_a_store_re_created_with_another_encoding(client, tmp_path):
    x = _vectors(300, seed=8)
    path = tmp_path / "s.zarr"
    with mfs.EmbeddingStore.create(path, DIM, mfs.Encoding("nf4", "vector", "rotate", seed=0)) as s:
        s.add([f"v{i}" for i in range(300)], x)
        lazy = s.to_dask()
    import shutil

    shutil.rmtree(path)
    with mfs.EmbeddingStore.create(path, DIM, mfs.Encoding("nf4", "vector", "rotate", seed=5)) as s:
        s.add([f"v{i}" for i in range(300)], x)
    with pytest.raises(StoreChangedError, match="no longer has the snapshot's layout"):
        lazy.compute(scheduler="sync")


def test_convert_of_a_store_keeps_its_ids_and_re_encodes_exactly(client, tmp_path):
    x = _vectors(700, seed=4)
    with mfs.EmbeddingStore.create(tmp_path / "fp32.zarr", DIM, "fp32", chunk_rows=CHUNK) as s:
        s.add([f"spk{i}/utt" for i in range(700)], x)
    mfs_dask.convert(tmp_path / "fp32.zarr", tmp_path / "e3m2.zarr", "e3m2", client=client, chunk_rows=CHUNK)
    mfs.convert(tmp_path / "fp32.zarr", tmp_path / "ref.zarr", "e3m2", progress=False, chunk_rows=CHUNK)
    with mfs.EmbeddingStore.open(tmp_path / "e3m2.zarr") as a, mfs.EmbeddingStore.open(tmp_path / "ref.zarr") as b:
        _same_store(a, b)


@pytest.mark.parametrize(
    "encoding",
    [mfs.Encoding("nf4", "vector", "centre+rotate", seed=2), mfs.Encoding("int4", "block32", "rotate", seed=1)],
    ids=["nf4-centre-rotate", "int4-block32-rotate"],
)
def test_dask_convert_with_an_encoding_equals_the_local_convert(client, tmp_path, encoding):
    # Any encoding, fitted on the same first rows: the same store, code for code, block scales included.
    with mfs.EmbeddingStore.create(tmp_path / "fp32.zarr", DIM, "fp32", chunk_rows=CHUNK) as s:
        s.add([f"u{i}" for i in range(700)], _vectors(700, seed=9))
    fit = {"fit_rows": 300} if encoding.centres else {}
    summary = mfs_dask.convert(
        tmp_path / "fp32.zarr", tmp_path / "d.zarr", encoding=encoding, client=client, chunk_rows=CHUNK, **fit
    )
    mfs.convert(tmp_path / "fp32.zarr", tmp_path / "ref.zarr", encoding, progress=False, chunk_rows=CHUNK, **fit)
    with mfs.EmbeddingStore.open(tmp_path / "d.zarr") as a, mfs.EmbeddingStore.open(tmp_path / "ref.zarr") as b:
        assert a.encoding == b.encoding and a.encoding.is_fitted
        pa, ia = a.get_packed_all()
        pb, ib = b.get_packed_all()
        assert ia == ib and pa.codes.tobytes() == pb.codes.tobytes()
        for name in ("scales", "block_scales"):
            va, vb = getattr(pa, name), getattr(pb, name)
            assert (va is None and vb is None) or va.tobytes() == vb.tobytes()
    assert summary.encoding.startswith(f"{encoding.element}/{encoding.scale}/{encoding.transform}")
    assert ("fitted on 300 vectors" in summary.encoding) == encoding.centres


def test_dask_convert_refuses_nan_and_leaves_no_store(client, tmp_path):
    x = _vectors(600, seed=5)
    x[333, 2] = np.nan
    with pytest.raises(ValueError, match="row 333 contains NaN"):
        mfs_dask.convert(da.from_array(x, chunks=(200, DIM)), tmp_path / "bad.zarr", client=client, chunk_rows=CHUNK)
    assert not (tmp_path / "bad.zarr").exists()


@pytest.mark.parametrize("attempt", range(3))
def test_dask_convert_failing_early_shard_leaves_nothing_behind(client, tmp_path, attempt):
    # The first shard fails at once while 39 others are still writing: none of
    # their writes may land after the half-built store is removed, and the
    # error names the first bad row whichever shard finished first.
    x = _vectors(64 * 40, seed=attempt)
    x[5, 0] = np.inf
    x[2000, 1] = np.nan
    with pytest.raises(ValueError, match="row 5 contains NaN or inf"):
        mfs_dask.convert(da.from_array(x, chunks=(64, DIM)), tmp_path / "bad.zarr", client=client, chunk_rows=64)
    assert not (tmp_path / "bad.zarr").exists()


def test_cli_convert_on_a_dask_scheduler_into_s3(s3, client, tmp_path, capsys):
    x = _vectors(400, seed=6)
    zarr.create_array(tmp_path / "in.zarr", shape=x.shape, chunks=(100, DIM), dtype="float32")[:] = x
    opts = [f"--storage-option=endpoint_url={s3['endpoint_url']}", "--storage-option=key=testing"]
    opts += ["--storage-option=secret=testing", "--storage-option=client_kwargs.region_name=eu-west-1"]
    code = cli_main(
        ["convert", str(tmp_path / "in.zarr"), "s3://bkt/cli.zarr", "--format", "e5m2"]
        + ["--dask", client.scheduler.address, "--json", *opts]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["vectors"] == 400
    with mfs.EmbeddingStore.open("s3://bkt/cli.zarr", storage_options=s3) as s:
        assert np.array_equal(s.get(["0", "399"]), mfs.quantize(x[[0, 399]], "e5m2"))


def test_cli_convert_on_a_dask_scheduler_with_an_encoding(client, tmp_path, capsys):
    x = _vectors(400, seed=7)
    zarr.create_array(tmp_path / "in.zarr", shape=x.shape, chunks=(100, DIM), dtype="float32")[:] = x
    args = ["convert", str(tmp_path / "in.zarr"), str(tmp_path / "o.zarr"), "--encoding", "nf4/vector/centre+rotate"]
    assert cli_main([*args, "--fit-rows", "150", "--dask", client.scheduler.address, "--json"]) == 0
    assert "fitted on 150 vectors" in json.loads(capsys.readouterr().out)["encoding"]
    enc = mfs.Encoding("nf4", "vector", "centre+rotate").fit(x[:150])
    with mfs.EmbeddingStore.open(tmp_path / "o.zarr") as s:
        assert s.encoding == enc
        assert np.array_equal(s.to_numpy(), mfs.quantize(x, enc))


def test_two_writers_against_the_bucket_one_is_refused(s3):
    url = "s3://bkt/shared.zarr"
    mfs.EmbeddingStore.create(url, DIM, "e4m3", storage_options=s3).close()
    barrier = threading.Barrier(2)
    outcome: list[object] = []

    def writer(tag: str) -> None:
        barrier.wait()
        try:
            with mfs.EmbeddingStore.open(url, "a", storage_options=s3) as s:
                s.add([tag], _vectors(1)[:1])
                time.sleep(0.5)  # hold the store while the other tries
            outcome.append(tag)
        except StoreLockedError as exc:
            outcome.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = [o for o in outcome if isinstance(o, StoreLockedError)]
    written = [o for o in outcome if isinstance(o, str)]
    assert len(refused) == 1 and len(written) == 1
    with mfs.EmbeddingStore.open(url, storage_options=s3) as s:
        assert s.ids == written


def test_a_commit_is_refused_when_the_record_changed_under_the_writer(s3):
    url = "s3://bkt/stale.zarr"
    x = _vectors(3)
    with mfs.EmbeddingStore.create(url, DIM, "e4m3", storage_options=s3) as s:
        s.add(["base"], x[:1])
    fs = s3fs.S3FileSystem(**s3)
    first = mfs.EmbeddingStore.open(url, "a", storage_options=s3)
    fs.rm_file("bkt/stale.zarr/.lock")  # someone took the lock for stale
    with mfs.EmbeddingStore.open(url, "a", storage_options=s3) as second:
        second.add(["second"], x[1:2])
    with pytest.raises(StoreChangedError, match="changed under this writer"):
        first.add(["first"], x[2:3])
    first.close()
    with mfs.EmbeddingStore.open(url, storage_options=s3) as s:
        assert s.ids == ["base", "second"]
        assert np.array_equal(s.get(["second"]), mfs.quantize(x[1:2], "e4m3"))


def test_compact_in_object_storage_switches_to_the_new_generation(s3):
    url = "s3://bkt/compact.zarr"
    x = _vectors(300, seed=11)
    with mfs.EmbeddingStore.create(url, DIM, "e4m3", chunk_rows=64, storage_options=s3) as s:
        s.add([f"i{i}" for i in range(300)], x)
        s.delete([f"i{i}" for i in range(0, 300, 2)])
        assert s.compact() == 150
    with pytest.raises(FileExistsError, match="already exists"):
        mfs.EmbeddingStore.create(url, DIM, storage_options=s3)
    assert sorted(s3fs.S3FileSystem(**s3).ls("bkt/compact.zarr")) == [
        "bkt/compact.zarr/g1",
        "bkt/compact.zarr/zarr.json",
    ]
    with mfs.EmbeddingStore.open(url, storage_options=s3) as s:
        assert s.ids == [f"i{i}" for i in range(1, 300, 2)]
        assert np.array_equal(s.get(s.ids), mfs.quantize(x[1::2], "e4m3"))


def test_storage_options_from_the_command_line_are_json_values_with_dotted_keys():
    from minifloat_store.cli.convert import parse_storage_options

    got = parse_storage_options(["anon=false", "endpoint_url=http://h:1", "client_kwargs.region_name=eu", "n=3"])
    assert got == {"anon": False, "endpoint_url": "http://h:1", "client_kwargs": {"region_name": "eu"}, "n": 3}
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_storage_options(["no-equals-sign"])


def test_hdf5_in_object_storage_is_refused_with_a_clear_error(s3):
    with pytest.raises(ValueError, match="hdf5 backend keeps a local file only"):
        mfs.EmbeddingStore.create("s3://bkt/x.h5", DIM, backend="hdf5", storage_options=s3)
    with pytest.raises(ValueError, match="hdf5 backend keeps a local file only"):
        mfs.EmbeddingStore.open("s3://bkt/x.h5", storage_options=s3)


def test_minifloat_codec_round_trip_through_plain_zarr_in_a_fresh_interpreter(tmp_path):
    # The entry point as pyproject.toml declares it, in a dist-info the fresh interpreter finds on its path.
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["zarr.codecs"]
    dist = tmp_path / "site" / "minifloat_codec_probe-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: minifloat-codec-probe\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[zarr.codecs]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    x = _vectors(203, seed=7)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, zarr, dask.array as da
        x = np.load({str(tmp_path / "x.npy")!r})
        codec = {{"name": "minifloat", "configuration": {{"format": "e2m1", "scale": "vector"}}}}
        z = zarr.create_array({str(tmp_path / "a.zarr")!r}, shape=x.shape, chunks=(50, x.shape[1]), dtype="float32",
                              serializer=codec)
        z[:] = x
        np.save({str(tmp_path / "back.npy")!r}, zarr.open_array({str(tmp_path / "a.zarr")!r}, mode="r")[:])
        np.save({str(tmp_path / "dask.npy")!r}, da.from_zarr({str(tmp_path / "a.zarr")!r}).compute())
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), str(ROOT)]))
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)
    want = mfs.quantize(x, "e2m1", "vector")
    assert np.array_equal(np.load(tmp_path / "back.npy"), want)
    assert np.array_equal(np.load(tmp_path / "dask.npy"), want)
    meta = json.loads((tmp_path / "a.zarr" / "zarr.json").read_text())
    assert meta["codecs"][0] == {"name": "minifloat", "configuration": {"format": "e2m1", "scale": "vector"}}


@pytest.mark.parametrize(
    "desc, problem",
    [
        ({"name": "minifloat", "configuration": {"format": "e9m9"}}, "format must be one of"),
        ({"name": "minifloat", "configuration": {"format": "e2m1", "scale": "block"}}, "scale must be one of"),
        ({"name": "minifloat", "configuration": {"format": "e2m1", "shift": 1}}, "unknown configuration keys"),
        ({"name": "minifloat", "configuration": ["e2m1"]}, "configuration must be an object"),
        ({"name": "minifloat", "configuration": {"format": 4}}, "format must be one of"),
    ],
)
def test_minifloat_codec_refuses_a_bad_configuration(desc, problem):
    with pytest.raises(ValueError, match=problem):
        MinifloatCodec.from_dict(desc)


def test_minifloat_codec_refuses_a_chunk_of_the_wrong_length_or_with_bad_scales(tmp_path):
    from zarr.registry import register_codec

    register_codec("minifloat", MinifloatCodec)
    x = _vectors(40, seed=8)
    path = tmp_path / "c.zarr"
    z = zarr.create_array(
        path,
        shape=x.shape,
        chunks=(40, DIM),
        dtype="float32",
        compressors=None,
        serializer=MinifloatCodec(format="e2m1"),
    )
    z[:] = x
    chunk = path / "c" / "0" / "0"
    good = chunk.read_bytes()
    chunk.write_bytes(good[:-3])
    with pytest.raises(ValueError, match="must be 640 bytes, got 637"):
        zarr.open_array(path, mode="r")[:]
    bad = bytearray(good)
    bad[-4:] = np.float32(np.nan).tobytes()
    chunk.write_bytes(bytes(bad))
    with pytest.raises(ValueError, match="scale of row 39"):
        zarr.open_array(path, mode="r")[:]


def test_a_killed_worker_leaves_a_complete_exact_store_or_none(client, tmp_path):
    x = _vectors(CHUNK * 16, seed=10)
    pids = client.run(os.getpid)

    def slow(block: np.ndarray) -> np.ndarray:
        time.sleep(0.25)  # keep both workers busy long enough to kill one mid-task
        return block

    src = da.from_array(x, chunks=(CHUNK, DIM)).map_blocks(slow, dtype=np.float32)
    victim = sorted(pids.values())[0]
    killer = threading.Timer(0.8, os.kill, args=(victim, signal.SIGKILL))
    killer.start()
    try:
        mfs_dask.convert(src, tmp_path / "k.zarr", "e4m3", client=client, chunk_rows=CHUNK)
    except Exception:
        # Too many failures is allowed, but then there must be no store left.
        assert not (tmp_path / "k.zarr").exists()
    else:
        ref = tmp_path / "ref.zarr"
        np.save(tmp_path / "x.npy", x)
        mfs.convert(tmp_path / "x.npy", ref, "e4m3", progress=False, chunk_rows=CHUNK)
        with mfs.EmbeddingStore.open(tmp_path / "k.zarr") as a, mfs.EmbeddingStore.open(ref) as b:
            _same_store(a, b)
            a.check()
    finally:
        killer.join()
    assert victim not in client.run(os.getpid).values()  # the worker really died (its nanny restarted it)
    client.wait_for_workers(2, timeout=60)
