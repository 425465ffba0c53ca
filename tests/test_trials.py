"""Tests for minifloat_store.eval.trials: the real Vox1-O list, both file formats,
malformed input, the known-list registry and mapping trials onto store ids."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from minifloat_store.eval.trials import (
    KNOWN_LISTS,
    MissingUtterancesError,
    Trials,
    check_known_list,
    identify_list,
    read_trials,
    speaker_of,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VOX1_O = DATA / "veri_test2.txt"


@pytest.fixture(scope="module")
def vox1_o() -> Trials:
    if not VOX1_O.is_file():
        pytest.skip(f"shared reference data not found: {VOX1_O}")
    return read_trials(VOX1_O)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="")
    return path


VOX_TEXT = "1 id1/a/00001.wav id1/b/00002.wav\n0 id1/a/00001.wav id2/c/00001.wav\n0 id3/d/00004.wav id2/c/00001.wav\n"
KALDI_TEXT = "id1-a-00001 id1-b-00002 target\nid1-a-00001 id2-c-00001 nontarget\nid3-d-00004 id2-c-00001 nontarget\n"


# ---------------------------------------------------------------------------
# The real Vox1-O list
# ---------------------------------------------------------------------------


def test_vox1_o_counts_match_the_published_list(vox1_o):
    assert len(vox1_o) == 37_611
    assert vox1_o.n_targets == 18_802
    assert vox1_o.n_nontargets == 18_809
    assert vox1_o.utterances.size == 4_708
    assert vox1_o.speakers.size == 40
    assert vox1_o.format == "voxceleb"


def test_vox1_o_is_identified_by_md5(vox1_o):
    assert vox1_o.known is KNOWN_LISTS["Vox1-O"]
    assert identify_list(VOX1_O) is KNOWN_LISTS["Vox1-O"]
    assert check_known_list(VOX1_O) is KNOWN_LISTS["Vox1-O"]


def test_vox1_o_pairs_round_trip_to_the_file_lines(vox1_o):
    lines = VOX1_O.read_text().splitlines()
    for i in (0, 1, 17_000, len(lines) - 1):
        label, enroll, test = lines[i].split()
        assert (vox1_o.enroll[i], vox1_o.test[i]) == (enroll, test)
        assert vox1_o.labels[i] == (label == "1")
    assert list(vox1_o.utterances) == sorted(set(vox1_o.enroll) | set(vox1_o.test))
    # Speakers of a target trial agree, by the first path component.
    targets = vox1_o.labels
    same = np.array([speaker_of(e) == speaker_of(t) for e, t in zip(vox1_o.enroll, vox1_o.test, strict=True)])
    np.testing.assert_array_equal(same, targets)


def test_vox1_o_index_pairs_into_a_shuffled_store(vox1_o):
    rng = np.random.default_rng(0)
    store_ids = vox1_o.utterances[rng.permutation(vox1_o.utterances.size)]
    store_ids = np.r_[store_ids, ["id99999/unused/00001.wav"]]  # extra ids are ignored
    enroll_pos, test_pos = vox1_o.index_pairs(store_ids)
    assert enroll_pos.dtype == test_pos.dtype == np.int64
    np.testing.assert_array_equal(store_ids[enroll_pos], vox1_o.enroll)
    np.testing.assert_array_equal(store_ids[test_pos], vox1_o.test)


def test_known_list_registry_matches_the_shared_readme():
    readme = DATA / "README.md"
    if not readme.is_file():
        pytest.skip(f"shared reference data not found: {readme}")
    text = readme.read_text()
    assert set(KNOWN_LISTS) == {"Vox1-O", "Vox1-E", "Vox1-H"}
    for known in KNOWN_LISTS.values():
        # Each published MD5 is stated on the README line that names the file.
        line = next(ln for ln in text.splitlines() if known.filename in ln and known.md5 in ln)
        assert f"{known.n_trials:,}" in line
    assert [k.n_trials for k in KNOWN_LISTS.values()] == [37_611, 579_818, 550_894]


# ---------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------


def test_voxceleb_format_is_detected(tmp_path):
    trials = read_trials(write(tmp_path / "t.txt", VOX_TEXT))
    assert trials.format == "voxceleb"
    assert list(trials.enroll) == ["id1/a/00001.wav", "id1/a/00001.wav", "id3/d/00004.wav"]
    assert list(trials.test) == ["id1/b/00002.wav", "id2/c/00001.wav", "id2/c/00001.wav"]
    assert trials.labels.tolist() == [True, False, False]
    assert trials.utterances.tolist() == [
        "id1/a/00001.wav",
        "id1/b/00002.wav",
        "id2/c/00001.wav",
        "id3/d/00004.wav",
    ]
    assert trials.enroll_index.tolist() == [0, 0, 3]
    assert trials.test_index.tolist() == [1, 2, 2]
    assert trials.speakers.tolist() == ["id1", "id2", "id3"]
    assert trials.known is None


def test_kaldi_format_is_detected_and_gives_the_same_trials(tmp_path):
    kaldi = read_trials(write(tmp_path / "trials", KALDI_TEXT))
    vox = read_trials(write(tmp_path / "t.txt", VOX_TEXT))
    assert kaldi.format == "kaldi"
    np.testing.assert_array_equal(kaldi.labels, vox.labels)
    np.testing.assert_array_equal(kaldi.enroll_index, vox.enroll_index)
    np.testing.assert_array_equal(kaldi.test_index, vox.test_index)
    # Kaldi ids without "/" take the speaker from the part before the first "-".
    assert kaldi.speakers.tolist() == ["id1", "id2", "id3"]
    assert (kaldi.n_targets, kaldi.n_nontargets) == (1, 2)


def test_explicit_format_is_used(tmp_path):
    path = write(tmp_path / "trials", KALDI_TEXT)
    assert read_trials(path, fmt="kaldi").format == "kaldi"
    with pytest.raises(ValueError, match=r"line 1: expected 1 or 0 .*voxceleb.*'id1-a-00001'"):
        read_trials(path, fmt="voxceleb")
    with pytest.raises(ValueError, match="fmt must be"):
        read_trials(path, fmt="csv")  # type: ignore[arg-type]


def test_whitespace_variants_blank_lines_and_crlf_are_accepted(tmp_path):
    messy = "\n1\tid1/a/1.wav   id1/b/2.wav\r\n\n0 id1/a/1.wav id2/c/1.wav\r\n  \n"
    trials = read_trials(write(tmp_path / "t.txt", messy))
    assert len(trials) == 2
    assert trials.test.tolist() == ["id1/b/2.wav", "id2/c/1.wav"]
    assert trials.labels.tolist() == [True, False]


def test_file_without_final_newline(tmp_path):
    assert len(read_trials(write(tmp_path / "t.txt", VOX_TEXT.rstrip("\n")))) == 3


# ---------------------------------------------------------------------------
# Malformed files: clear errors with the line number
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Line 3 (counting the blank line 2) has two fields.
        ("1 a/1 b/1\n\n0 a/1\n1 a/1 b/2\n", r"line 3: expected 3 fields .* got 2: '0 a/1'"),
        ("1 a/1 b/1\n0 a/1 b/2 extra\n", r"line 2: expected 3 fields .* got 4"),
        ("1 a/1 b/1\n2 a/1 b/2\n", r"line 2: expected 1 or 0 .* got '2'"),
        ("a-1 b-1 target\na-1 b-2 Target\n", r"line 2: expected target or nontarget .* 'Target'"),
        # Mixed formats: VoxCeleb lines, then a Kaldi line.
        ("1 a/1 b/1\n0 a/1 b/2\na/1 b/3 nontarget\n", r"line 3: expected 1 or 0 .*voxceleb"),
        ("a/1 b/1 target\n1 a/1 b/2\n", r"line 2: expected target or nontarget .*kaldi"),
        ("x a/1 b/1\n", r"cannot tell the format from line 1 'x a/1 b/1'"),
        ("", "no trials"),
        ("\n  \n", "no trials"),
        # Both formats fit every line: the user must say which.
        ("1 a/1 target\n0 b/1 nontarget\n", "pass fmt="),
    ],
)
def test_malformed_files_raise_with_the_line_number(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_trials(write(tmp_path / "bad.txt", text))


def test_misaligned_fields_are_not_silently_reparsed(tmp_path):
    # 2 + 4 fields: the whitespace tokens would still group into valid triples.
    path = write(tmp_path / "t.txt", "1 a/1\nb/1 0 a/2 b/2\n")
    with pytest.raises(ValueError, match=r"line 1: expected 3 fields"):
        read_trials(path)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"1 a/1 b/1\n0 a/\xff b/2\n")
    with pytest.raises(ValueError, match="line 2 is not valid UTF-8"):
        read_trials(path)


# ---------------------------------------------------------------------------
# Known lists by name and MD5
# ---------------------------------------------------------------------------


def test_file_named_like_a_known_list_with_wrong_md5_is_refused(tmp_path):
    path = write(tmp_path / "veri_test2.txt", VOX_TEXT)
    md5 = hashlib.md5(VOX_TEXT.encode()).hexdigest()
    expected = KNOWN_LISTS["Vox1-O"].md5
    pattern = rf"named like Vox1-O .* MD5 is {md5}, expected {expected}"
    with pytest.raises(ValueError, match=pattern):
        check_known_list(path)
    with pytest.raises(ValueError, match="uncleaned"):
        read_trials(path)
    # The check can be turned off; the file is then simply unknown.
    trials = read_trials(path, verify=False)
    assert trials.known is None and len(trials) == 3
    assert identify_list(path) is None


def test_unknown_name_and_content_is_just_unknown(tmp_path):
    path = write(tmp_path / "my_trials.txt", VOX_TEXT)
    assert check_known_list(path) is None
    assert identify_list(path) is None


def test_known_content_is_identified_under_any_name(tmp_path):
    if not VOX1_O.is_file():
        pytest.skip(f"shared reference data not found: {VOX1_O}")
    data = VOX1_O.read_bytes()
    renamed = tmp_path / "o.txt"
    renamed.write_bytes(data)
    assert identify_list(renamed) is KNOWN_LISTS["Vox1-O"]
    assert read_trials(renamed).known is KNOWN_LISTS["Vox1-O"]
    # Vox1-O content under the Vox1-E file name: refused, and the message says what it is.
    misnamed = tmp_path / "list_test_all2.txt"
    misnamed.write_bytes(data)
    with pytest.raises(ValueError, match=r"named like Vox1-E .* it is Vox1-O \(veri_test2.txt\)"):
        check_known_list(misnamed)


def test_edited_vox1_o_under_its_own_name_is_refused(tmp_path):
    if not VOX1_O.is_file():
        pytest.skip(f"shared reference data not found: {VOX1_O}")
    # One trial fewer, as an edited or differently cleaned copy would be.
    lines = VOX1_O.read_bytes().splitlines(keepends=True)
    path = tmp_path / "veri_test2.txt"
    path.write_bytes(b"".join(lines[:-1]))
    with pytest.raises(ValueError, match="named like Vox1-O"):
        read_trials(path)


# ---------------------------------------------------------------------------
# Trials.from_pairs and index_pairs
# ---------------------------------------------------------------------------


def test_from_pairs_sorts_and_indexes_utterances():
    trials = Trials.from_pairs(["b/1", "a/1", "c/1"], ["a/1", "c/1", "b/1"], [1, 0, 1])
    assert trials.utterances.tolist() == ["a/1", "b/1", "c/1"]
    assert trials.enroll_index.tolist() == [1, 0, 2]
    assert trials.test_index.tolist() == [0, 2, 1]
    assert trials.labels.tolist() == [True, False, True]
    assert trials.format is None and trials.path is None


def test_trials_arrays_are_read_only():
    trials = Trials.from_pairs(["a"], ["b"], [True])
    with pytest.raises(ValueError, match="read-only"):
        trials.labels[0] = False
    with pytest.raises(ValueError, match="read-only"):
        trials.enroll_index[0] = 1


@pytest.mark.parametrize(
    ("enroll", "test", "labels", "message"),
    [
        (["a", "b"], ["c"], [1, 0], "same length"),
        ([], [], [], "no trials"),
        (["a", ""], ["c", "d"], [1, 0], r"enroll\[1\] must be a non-empty string"),
        (["a", "b"], ["c", 3], [1, 0], r"test\[1\] must be a non-empty string"),
        (["a", "b"], ["c", "d"], [1, 5], "trial 1 has label 5"),
        (["a"], ["c"], ["target"], "bool or 0/1"),
        ("ab", "cd", [1, 0], "not a single string"),
    ],
)
def test_from_pairs_rejects_bad_input(enroll, test, labels, message):
    with pytest.raises(ValueError, match=message):
        Trials.from_pairs(enroll, test, labels)


def test_index_pairs_reports_missing_utterances():
    trials = Trials.from_pairs([f"s/{i}" for i in range(8)], ["t/0"] * 8, [1, 0] * 4)
    with pytest.raises(MissingUtterancesError) as info:
        trials.index_pairs(["t/0", "s/0"])
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, ValueError)
    assert err.missing == tuple(f"s/{i}" for i in range(1, 8))
    # The message is readable (not KeyError's quoted repr) and shows a few ids only.
    assert str(err).startswith("7 of 9 trial utterances are not in the given ids")
    assert "'s/1', 's/2', 's/3', 's/4', 's/5', ..." in str(err)
    assert "s/6" not in str(err)


def test_index_pairs_refuses_repeated_trial_utterances():
    trials = Trials.from_pairs(["a"], ["b"], [True])
    pattern = re.escape("occur more than once in the given ids (e.g. 'b')")
    with pytest.raises(ValueError, match=pattern):
        trials.index_pairs(["a", "b", "b"])
    # Repeats of ids no trial uses are harmless.
    assert [p.tolist() for p in trials.index_pairs(["x", "a", "x", "b"])] == [[1], [3]]


@pytest.mark.parametrize(
    ("utterance", "speaker"),
    [
        ("id10270/x6uYqmx31kE/00001.wav", "id10270"),
        ("id10270-x6uYqmx31kE-00001", "id10270"),
        ("spk1/a-b/c.wav", "spk1"),
        ("plainid", "plainid"),
    ],
)
def test_speaker_of(utterance, speaker):
    assert speaker_of(utterance) == speaker


@pytest.mark.slow
def test_reading_a_vox1_e_sized_list_gives_every_trial(tmp_path):
    # No wall-clock bound: on the shared test machine this read took 15.5 s under load where it
    # takes a few seconds otherwise; speed claims belong in benchmarks/ (the project's rule).
    rng = np.random.default_rng(0)
    # 1,251 speakers x 116 utterances, as in VoxCeleb-1.
    utts = [f"id{10000 + s}/video{k % 7:06d}/{k:05d}.wav" for s in range(1251) for k in range(116)]
    n = 579_818
    a, b, y = rng.integers(0, len(utts), n), rng.integers(0, len(utts), n), rng.integers(0, 2, n)
    path = tmp_path / "big.txt"
    path.write_text("".join(f"{label} {utts[i]} {utts[j]}\n" for label, i, j in zip(y, a, b, strict=True)))
    trials = read_trials(path)
    assert len(trials) == n and trials.n_targets == int(y.sum())
    left, right = trials.index_pairs(utts)
    assert np.array_equal(left, a) and np.array_equal(right, b)
