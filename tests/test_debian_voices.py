"""The Debian-voices corpus: voice rules on a synthetic package tree, and the real packages when installed."""

from __future__ import annotations

import numpy as np
import pytest

from minifloat_store.eval.data import debian_voices as dv

sf = pytest.importorskip("soundfile")


def _word(path, rate, seed, seconds=0.8, channels=1, fmt=None):
    """A 'word': silence, a tone burst, silence; distinct content per seed."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    x = np.zeros(n)
    a, b = int(0.2 * n), int(0.8 * n)
    x[a:b] = 0.3 * np.sin(2 * np.pi * (150 + 10 * seed) * t[a:b]) + 0.01 * rng.standard_normal(b - a)
    data = np.stack([x] * channels, axis=1) if channels > 1 else x
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, format=fmt) if fmt else sf.write(path, data, rate)


@pytest.fixture
def tree(tmp_path):
    kt, kl = tmp_path / "ktuberling" / "sounds", tmp_path / "klettres"
    for i in range(6):
        _word(kl / "fr" / "alpha" / f"{i}.ogg", 44100, i, fmt="OGG")
        _word(kl / "fr" / "syllab" / f"s{i}.ogg", 44100, 100 + i, fmt="OGG")
        _word(kl / "pt_BR" / "alpha" / f"{i}.ogg", 44100, 200 + i, channels=2, fmt="OGG")
    for i in range(7):
        _word(kt / "fr" / f"{i}.wav", 8000, 300 + i)  # a klettres voice exists for fr: not used
        _word(kt / "ca" / f"a{i}.ogg", 22050, 400 + i, fmt="OGG")  # session 1 of ca: 7 clips
    for i in range(8):
        _word(kt / "ca" / f"b{i}.ogg", 44100, 500 + i, fmt="OGG")  # session 2 of ca: 8 clips, larger
        _word(kt / "sr" / f"{i}.wav", 22050, 600 + i)
        _word(kt / "sr@latin" / f"{i}.wav", 22050, 600 + i)  # byte-identical copies
    return kt, kl


def test_voice_rules_on_a_synthetic_package_tree(tree):
    kt, kl = tree
    voices = {v.speaker: v for v in dv.find_voices(min_clips=6, ktuberling_dir=kt, klettres_dir=kl)}
    # klettres alpha+syllab merge; klettres beats ktuberling for fr; the larger ca session wins;
    # sr@latin holds only copies of sr, so it adds nothing
    assert set(voices) == {"klettres-fr", "klettres-pt_BR", "ktuberling-ca", "ktuberling-sr"}
    assert len(voices["klettres-fr"].clips) == 12
    assert (voices["ktuberling-ca"].sample_rate, len(voices["ktuberling-ca"].clips)) == (44100, 8)
    assert voices["klettres-pt_BR"].channels == 2 and voices["klettres-pt_BR"].language == "pt"
    assert all("sr@latin" not in str(c) for c in voices["ktuberling-sr"].clips)


def test_corpus_utterances_join_distinct_clips_into_3_to_6_seconds(tree):
    kt, kl = tree
    voices = dv.find_voices(min_clips=6, ktuberling_dir=kt, klettres_dir=kl)
    corpus = dv.load_corpus(utterances_per_speaker=2, min_seconds=1.5, max_seconds=3.0, voices=voices)
    # klettres-pt_BR (6 clips of ~0.5 s after trimming) and ktuberling-sr (8) can each fill 2 utterances
    by_speaker: dict[str, list] = {}
    for u in corpus:
        by_speaker.setdefault(u.speaker, []).append(u)
        assert u.waveform.dtype == np.float32 and u.waveform.ndim == 1
        assert 1.5 * 16000 <= u.waveform.size <= 3.0 * 16000
    assert all(len(v) == 2 for v in by_speaker.values()) and len(by_speaker) == 4
    assert len({u.utterance_id for u in corpus}) == len(corpus)
    a, b = by_speaker["klettres-fr"]
    assert a.utterance_id == "klettres-fr/00" and not np.array_equal(a.waveform[:8000], b.waveform[:8000])


def test_voices_that_cannot_fill_the_requested_utterances_are_left_out(tree):
    kt, kl = tree
    voices = dv.find_voices(min_clips=6, ktuberling_dir=kt, klettres_dir=kl)
    corpus = dv.load_corpus(utterances_per_speaker=5, min_seconds=1.5, voices=voices)
    assert corpus == []


def test_utterances_per_speaker_none_takes_every_utterance_a_voice_gives(tree):
    kt, kl = tree
    voices = dv.find_voices(min_clips=6, ktuberling_dir=kt, klettres_dir=kl)
    corpus = dv.load_corpus(utterances_per_speaker=None, min_seconds=1.5, voices=voices)
    counts: dict[str, int] = {}
    for u in corpus:
        counts[u.speaker] = counts.get(u.speaker, 0) + 1
    # each trimmed word lasts about 0.5 s, so three clips fill an utterance: 12 clips give 4, 6-8 give 2
    assert counts == {"klettres-fr": 4, "klettres-pt_BR": 2, "ktuberling-ca": 2, "ktuberling-sr": 2}
    assert len({u.utterance_id for u in corpus}) == len(corpus)


def test_trim_edges_cuts_leading_and_trailing_silence():
    x = np.concatenate([np.zeros(1600), 0.5 * np.ones(3200), np.zeros(800)]).astype(np.float32)
    y = dv.trim_edges(x, 16000)
    assert y.size == 3200 and np.all(y == 0.5)
    np.testing.assert_array_equal(dv.trim_edges(np.zeros(100, np.float32), 16000), np.zeros(100, np.float32))


def test_missing_packages_give_an_empty_corpus(tmp_path):
    assert not dv.is_available(tmp_path / "a", tmp_path / "b")
    assert dv.find_voices(ktuberling_dir=tmp_path / "a", klettres_dir=tmp_path / "b") == []


def test_the_installed_debian_packages_give_many_voices():
    if not dv.is_available():
        pytest.skip("apt-get install ktuberling-data klettres-data")
    voices = dv.find_voices()
    assert len(voices) >= 20
    assert len({v.language for v in voices}) == len(voices)  # one voice per language
    corpus = dv.load_corpus(max_speakers=3, utterances_per_speaker=2)
    assert len(corpus) == 6
    assert all(3 * 16000 <= u.waveform.size <= 6 * 16000 for u in corpus)
    assert all(np.abs(u.waveform).max() <= 1.05 for u in corpus)
