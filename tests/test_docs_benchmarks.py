"""The numbers docs/performance.md and README.md quote are those the benchmarks saved.

Each benchmark in benchmarks/ saves its results as JSON in benchmarks/results/;
these tests parse the tables and sentences of the docs and compare every
number with the JSON, to half a unit of the last digit printed, so a rerun
that is not copied into the docs (or a hand-edited number) fails here. They do
not run the benchmarks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MIB = 2**20


def load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def prose(path: str) -> str:
    return " ".join((ROOT / path).read_text().split())


def agrees(printed: str, value: float, scale: float = 1.0) -> bool:
    """``printed`` (e.g. ``'0.060'``, ``'9.6e-5'``, ``'984,166'``) is ``value / scale`` rounded as shown."""
    text = printed.replace(",", "").replace("**", "").rstrip("x")
    mantissa, _, exponent = text.partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    unit = 10.0 ** (-decimals + (int(exponent) if exponent else 0))
    return abs(float(text) - value / scale) <= 0.5 * unit * (1 + 1e-9)


class Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.count = 0

    def __call__(self, printed: str, value: float, what: str, scale: float = 1.0) -> None:
        self.count += 1
        if not agrees(printed, value, scale):
            self.problems.append(f"{what}: the doc says {printed}, the JSON has {value / scale:.6g}")

    def done(self, at_least: int) -> None:
        assert not self.problems, "\n".join(self.problems)
        assert self.count >= at_least, f"only {self.count} numbers found: has the doc's layout changed?"


def table(text: str, header_start: str) -> list[list[str]]:
    """Rows (cells) of the markdown table whose header line starts with ``header_start``."""
    lines = text[text.index(header_start) :].splitlines()
    out = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        out.append([c.strip() for c in line.strip().strip("|").split("|")])
    return out


def test_search_tables_are_the_saved_results():
    doc = (ROOT / "docs" / "performance.md").read_text()
    res = load("bench_search")
    by_method = {r["method"]: r for r in res["search"]}
    names = {
        "numpy float32": "numpy_f32",
        "FAISS IndexFlatIP": "faiss_Flat",
        "FAISS QT_4bit": "faiss_QT_4bit",
        "FAISS QT_8bit": "faiss_QT_8bit",
        "FAISS QT_fp16": "faiss_QT_fp16",
        "usearch exact i8": "usearch_i8",
        "usearch exact f16": "usearch_f16",
        "mfs e2m1": "mfs_e2m1",
        "mfs e4m3": "mfs_e4m3",
        "mfs fp16": "mfs_fp16",
        **{
            f"mfs {r['method'][4:-3].replace('_', '/')}, centre+rotate": r["method"]
            for r in res["search"]
            if r["method"].endswith("_cr")
        },
    }
    check = Checker()
    rows = table(doc, "| method | 1 query at a time (q/s) | batch of 10")
    assert len(rows) == len(names)
    for cells in rows:
        r = by_method[names[cells[0].replace("*", "")]]
        check(cells[1], r["single_qps"], f"{cells[0]} 1-by-1 q/s")
        check(cells[2], r["batch10_qps"], f"{cells[0]} batch-10 q/s")
        check(cells[3], r["batch100_qps"], f"{cells[0]} batch-100 q/s")
        check(cells[4], r["bytes_per_query"], f"{cells[0]} MB per query", scale=1e6)
        check(cells[5], r["single_bw_fraction"], f"{cells[0]} bandwidth fraction")
        check(cells[6], r["held_mb"], f"{cells[0]} held MiB")
        check(cells[7], r["recall_at_k"], f"{cells[0]} recall")
    if "Every mfs method, one query at a time, answered faster than the fastest peer" in " ".join(doc.split()):
        peers = [r["single_qps"] for r in res["search"] if not r["method"].startswith("mfs_")]
        assert min(r["single_qps"] for r in res["search"] if r["method"].startswith("mfs_")) > max(peers)
    rows = table(doc, "| method (threads) |")
    assert len(rows) == len(names)
    for cells in rows:
        threads = by_method[names[cells[0]]]["threads_qps"]
        check(cells[1], threads["1"]["single_qps"], f"{cells[0]} one thread, one query")
        check(cells[2], threads["2"]["single_qps"], f"{cells[0]} two threads, one query")
        check(cells[3], threads["1"]["batch100_qps"], f"{cells[0]} one thread, batch of 100")
        check(cells[4], threads["2"]["batch100_qps"], f"{cells[0]} two threads, batch of 100")
    text = prose("docs/performance.md")
    m = re.search(r"bandwidth in the same run \(a parallel numba sum over 1 GiB\) was ([\d.]+) GB/s", text)
    check(m.group(1), res["memory_bandwidth_gb_s"], "bandwidth")
    m = re.search(r"load average ([\d.]+) → ([\d.]+) during the run", text)
    for printed, value in zip(m.groups(), res["load_average_before_after"], strict=True):
        check(printed, value, "search load average")
    m = re.search(r"\*\*met\*\* with 2 threads: ([\d.]+)x the fastest peer", text)
    check(m.group(1), res["targets"]["e2m1_single_qps_over_fastest_peer"], "e2m1 / fastest peer")
    check.done(at_least=80)


def test_trial_scoring_table_is_the_saved_results():
    doc = (ROOT / "docs" / "performance.md").read_text()
    res = load("bench_search_2026-11-25")
    scoring = {r["method"]: r for r in res["trial_scoring"]["results"]}
    check = Checker()
    rows = table(doc, "| method | seconds (best of 5) | median |")
    assert len(rows) == len(scoring)
    for cells in rows:
        key = {"numpy float32": "numpy_f32", "e2m1, norms computed in the call": "mfs_e2m1_norms_included"}.get(
            cells[0], f"mfs_{cells[0]}"
        )
        r = scoring[key]
        check(cells[1], r["best_s"], f"scoring {cells[0]} best s")
        check(cells[2], r["median_s"], f"scoring {cells[0]} median s")
        check(cells[3].removesuffix(" M"), r["pairs_per_s"], f"scoring {cells[0]} pairs/s", scale=1e6)
        if cells[4] != "—":
            check(cells[4], r["max_abs_diff_vs_float32"], f"scoring {cells[0]} max abs diff")
    check.done(at_least=40)


def test_store_tables_are_the_saved_results():
    doc = (ROOT / "docs" / "performance.md").read_text()
    res = load("bench_store")
    check = Checker()
    for cells in table(doc, "| backend | plain float32 (vectors/s)"):
        backend = cells[0]
        add = res["add"]
        check(cells[1], add[f"plain_{backend}_float32"]["vectors_per_s"], f"{backend} plain add")
        for cell, fmt in ((cells[2], "e2m1"), (cells[3], "e4m3")):
            rate, ratio = re.fullmatch(r"([\d,]+) \(([\d.]+)x\)", cell).groups()
            r = add[f"store_{backend}_{fmt}"]
            check(rate, r["vectors_per_s"], f"{backend} {fmt} add")
            check(ratio, r["ratio_to_plain_float32"], f"{backend} {fmt} add ratio")
    for cells in table(doc, "| backend, format | vectors |"):
        backend, fmt = cells[0].split()
        n = re.match(r"([\d,]+)", cells[1]).group(1).replace(",", "")
        r = res["disk"][f"{backend}_{fmt}_{n}"]
        check(cells[2], r["vector_arrays_over_payload"], f"{cells[0]} {n} vector arrays / payload")
        check(cells[3], r["store_over_payload"], f"{cells[0]} {n} store / payload")
        check(cells[4], r["store_bytes_per_vector"], f"{cells[0]} {n} bytes per vector")
    conv = res["convert"]
    text = prose("docs/performance.md")
    m = re.search(
        r"convert` of a ([\d.]+) GiB \.npy \(([\d,]+) × 192 float32\) .*? \(VmHWM\) \*\*([\d.]+) MiB\*\* "
        r"\(target < 512 MiB\), ([\d.]+) s, ([\d.]+) GB → ([\d.]+) GB on disk \(([\d.]+)x\), cosine original "
        r"vs decoded mean ([\d.]+), min ([\d.]+)\.",
        text,
    )
    assert m, "performance.md: the convert sentence is gone"
    values = (
        conv["npy_bytes"] / 2**30,
        conv["vectors"],
        conv["peak_rss_mib"],
        conv["seconds"],
        conv["bytes_before"] / 1e9,
        conv["bytes_after"] / 1e9,
        conv["bytes_before"] / conv["bytes_after"],
        conv["cosine_mean"],
        conv["cosine_min"],
    )
    for printed, value in zip(m.groups(), values, strict=True):
        check(printed, value, "convert")
    readme = prose("README.md")
    m = re.search(r"\(([\d.]+) MiB peak for a (\d+) GiB `\.npy`\)", readme)
    check(m.group(1), conv["peak_rss_mib"], "README convert peak MiB")
    check(m.group(2), conv["npy_bytes"] / 2**30, "README convert GiB")
    check.done(at_least=40)


def test_readme_search_sentence_is_the_saved_results():
    res = load("bench_search")
    by_method = {r["method"]: r for r in res["search"]}
    text = prose("README.md")
    m = re.search(
        r"one query at a time e2m1 answers ([\d.]+) q/s, ([\d.]+)x the fastest of FAISS, usearch and numpy "
        r"\(([\w ]+?): ([\d.]+) q/s\)",
        text,
    )
    assert m, "README: the search sentence is gone"
    check = Checker()
    fastest = res["targets"]["fastest_peer_single"]
    check(m.group(1), by_method["mfs_e2m1"]["single_qps"], "README e2m1 q/s")
    check(m.group(2), res["targets"]["e2m1_single_qps_over_fastest_peer"], "README ratio")
    check(m.group(4), by_method[fastest]["single_qps"], "README fastest peer q/s")
    m = re.search(
        r"e4m3 answers ([\d.]+) q/s, fp16 ([\d.]+) q/s and int8 with centre\+rotate ([\d.]+) q/s one query", text
    )
    assert m, "README: the wider formats' search sentence is gone"
    for i, method in enumerate(("mfs_e4m3", "mfs_fp16", "mfs_int8_vector_cr")):
        check(m.group(1 + i), by_method[method]["single_qps"], f"README {method} q/s")
    check.done(at_least=6)


def test_readme_encoding_speed_sentence_is_the_saved_results():
    res = load("bench_encoding")
    text = prose("README.md")
    m = re.search(
        r"every encoding encodes at ([\d.]+)-([\d.]+) GB/s of float32 on (\d+) cores, and every 4-bit encoding "
        r"searches in ([\d.]+)-([\d.]+)x packed e2m1's time one query at a time and ([\d.]+)-([\d.]+)x in batches of "
        r"100\.",
        text,
    )
    assert m, "README: the encoding speed sentence is gone"
    check = Checker()
    check(m.group(1), min(r["encode_gbps"] for r in res["codec"]), "README encode low")
    check(m.group(2), max(r["encode_gbps"] for r in res["codec"]), "README encode high")
    check(m.group(3), res["machine"]["cores"], "README cores")
    check(m.group(4), min(r["one_vs_e2m1"] for r in res["search"]), "README one-query low")
    check(m.group(5), max(r["one_vs_e2m1"] for r in res["search"]), "README one-query high")
    check(m.group(6), min(r["batch_vs_e2m1"] for r in res["search"]), "README batch low")
    check(m.group(7), max(r["batch_vs_e2m1"] for r in res["search"]), "README batch high")
    check.done(at_least=7)


def test_codec_tables_are_the_saved_results():
    doc = (ROOT / "docs" / "performance.md").read_text()
    check = Checker()
    for name, header in (
        ("bench_codec", "| format | encode GB/s |"),
        ("bench_codec_1thread", "| format (one thread) |"),
    ):
        res = {r["format"]: r for r in load(name)["results"]}
        rows = table(doc, header)
        assert sorted(c[0] for c in rows) == sorted(res), f"{name}: the table's formats differ from the JSON's"
        for cells in rows:
            r = res[cells[0]]
            for i, key in enumerate(("encode", "decode", "decode_out")):
                gbps, base, ratio = cells[1 + 3 * i : 4 + 3 * i]
                best, median = re.fullmatch(r"([\d.]+)x \(([\d.]+)x\)", ratio).groups()
                check(gbps, r[f"{key}_gbps"], f"{name} {cells[0]} {key} GB/s")
                check(base, r[f"{key}_baseline_gbps"], f"{name} {cells[0]} {key} baseline GB/s")
                check(best, r[f"{key}_ratio"], f"{name} {cells[0]} {key} ratio")
                check(median, r[f"{key}_median_ratio"], f"{name} {cells[0]} {key} median ratio")
    machine = load("bench_codec")["machine"]
    text = prose("docs/performance.md")
    m = re.search(r"load average ([\d.]+) at the start and ([\d.]+) at the end", text)
    assert m, "performance.md: the codec run's load average is gone"
    check(m.group(1), machine["loadavg_start"][0], "codec load at start")
    check(m.group(2), machine["loadavg_end"][0], "codec load at end")
    six = [r for r in load("bench_codec")["results"] if r["format"] not in ("fp16", "bf16")]
    readme = prose("README.md")
    m = re.search(
        r"one pass: ([\d.]+)-([\d.]+) GB/s of float32 encoded and ([\d.]+)-([\d.]+) GB/s decoded, ([\d.]+)-([\d.]+)x "
        r"and ([\d.]+)-([\d.]+)x an ml_dtypes \+ numpy baseline",
        readme,
    )
    assert m, "README: the codec speed sentence is gone"
    for i, key in enumerate(("encode_gbps", "decode_gbps", "encode_ratio", "decode_ratio")):
        check(m.group(1 + 2 * i), min(r[key] for r in six), f"README {key} low")
        check(m.group(2 + 2 * i), max(r[key] for r in six), f"README {key} high")
    check.done(at_least=150)


def test_reproduce_md_extraction_times_are_the_saved_results():
    doc = (ROOT / "docs" / "reproduce.md").read_text()
    res = load("bench_extract")
    by_model = {r["model"]: r for r in res["rows"]}
    names = {"CAM++": "campplus", "ReDimNet b2": "redimnet", "WavLM-Base-Plus-SV": "wavlm"}
    check = Checker()
    header = table(doc, "| model | parameters | per ")
    text = prose("docs/reproduce.md")
    m = re.search(r"Vox1-O \(test part, ([\d.]+) h of audio\) \| Vox1-E \+ Vox1-H \(all of VoxCeleb-1, (\d+) h\)", text)
    vox1o_h, all_h = float(m.group(1)), float(m.group(2))
    check(re.search(r"one ([\d.]+) s utterance", text).group(1), res["utterance_seconds"], "utterance seconds")
    assert len(header) == 3
    units = {"min": 60.0, "h": 3600.0, "days": 86400.0}
    for cells in header:
        r = by_model[names[cells[0]]]
        check(cells[1].removesuffix(" M"), r["parameters"], f"{cells[0]} parameters", scale=1e6)
        check(cells[2].removesuffix(" s"), r["seconds"], f"{cells[0]} seconds")
        check(cells[3].removesuffix("x"), r["real_time_factor"], f"{cells[0]} real-time factor")
        for cell, hours in ((cells[4], vox1o_h), (cells[5], all_h)):
            number, unit = re.fullmatch(r"about ([\d.]+) (min|h|days)", cell).groups()
            check(number, hours * 3600 / r["real_time_factor"], f"{cells[0]} {hours} h of audio", scale=units[unit])
    check.done(at_least=16)


def test_store_size_table_is_the_benchmarks():
    """docs/store.md "Size on disk": each row's sizes, ratio and id bytes are bench_store_size.json's."""
    res = load("bench_store_size")
    cases = {(str(c["dim"]), c["backend"], c["encoding"].removesuffix("/none")): c for c in res["cases"]}
    check = Checker()
    rows = table((ROOT / "docs/store.md").read_text(), "| dim | backend | encoding")
    for dim, backend, enc, payload, disk, ratio, ids in rows:
        c = cases[(dim, backend, enc)]
        check(payload, c["payload_bytes"], f"{dim} {backend} {enc} payload", 1e6)
        check(disk, c["bytes_on_disk"], f"{dim} {backend} {enc} on disk", 1e6)
        check(ratio, c["ratio"], f"{dim} {backend} {enc} ratio")
        check(ids, c["id_bytes_per_vector"], f"{dim} {backend} {enc} id bytes")
        assert c["ratio"] <= res["target_ratio"]
    assert res["rows"] == 1_000_000 and sorted(res["dims"]) == [192, 256]
    readme = re.search(
        r"a store takes at most ([\d.]+)x its\s+payload at 192 values and ([\d.]+)x at 256",
        (ROOT / "README.md").read_text(),
    )
    for cell, dim in zip(readme.groups(), (192, 256), strict=True):
        check(cell, max(c["ratio"] for c in res["cases"] if c["dim"] == dim), f"README's worst ratio at {dim}")
    check.done(34)


def test_readme_quotes_the_8_and_16_bit_one_query_run():
    """README: e4m3's, fp16's and int8's one-query q/s, from bench_search.json."""
    res = {r["method"]: r for r in load("bench_search")["search"]}
    text = " ".join((ROOT / "README.md").read_text().split())
    m = re.search(
        r"e4m3 answers ([\d.]+) q/s, fp16 ([\d.]+) q/s and int8 with centre\+rotate ([\d.]+) q/s one query at a time",
        text,
    )
    assert m, "README: the 8- and 16-bit sentence is gone"
    check = Checker()
    check(m.group(1), res["mfs_e4m3"]["single_qps"], "e4m3 q/s")
    check(m.group(2), res["mfs_fp16"]["single_qps"], "fp16 q/s")
    check(m.group(3), res["mfs_int8_vector_cr"]["single_qps"], "int8 q/s")
    check.done(3)
