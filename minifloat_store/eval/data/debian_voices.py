"""A small corpus of real voices from two Debian packages, for end-to-end tests.

Where the audio comes from
--------------------------
Debian (and Ubuntu) ship the spoken words of two KDE educational games as
architecture-independent data packages (``apt-get install ktuberling-data
klettres-data``; GPL-2+ like the games):

- ``ktuberling-data``: ``/usr/share/ktuberling/sounds/<lang>/*.ogg|*.wav|*.opus``,
  object names ("hat", "nose", ...) read by volunteers, one folder per
  language (about 25), 8-48 kHz, mono or stereo, about 0.9 s per word;
- ``klettres-data``: ``/usr/share/klettres/<lang>/{alpha,syllab}/*.ogg``,
  letters and syllables read aloud for language learners (about 20
  languages), mostly 44.1 kHz, 0.5-2.5 s per clip.

How a "voice" is defined
------------------------
A folder is not always one person: several ktuberling folders mix recording
sessions (different sample rates) and some repeat files (the Serbian script
variants ``sr@latin`` etc. are byte-identical copies). So, by rule, without
looking at what any model says:

1. byte-identical files are kept once (the first in klettres, then
   ktuberling, path order);
2. a *session* is the clips of one package and one locale folder that share
   a sample rate and channel count (klettres' ``alpha/`` and ``syllab/`` of a
   locale are one session when their formats agree);
3. sessions with fewer than ``min_clips`` distinct clips are dropped;
4. one voice per language (the code before ``_`` or ``@``: ``en`` and
   ``en_GB`` are different narrators but one language), so that no two
   "different" voices are likely to be one person recorded for both games:
   a klettres session if there is one (one narrator per locale by design; the
   largest), else the largest ktuberling session.

Speaker labels are therefore "one recording session of one language", a
good but not certain proxy for one person. Utterances are made by joining
consecutive clips of a voice (leading/trailing silence trimmed, 0.1 s gaps)
until they last ``min_seconds``; clips are never reused, so two utterances
of a voice share no words.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from minifloat_store.eval.data.audio import read_audio

KTUBERLING_DIR = Path("/usr/share/ktuberling/sounds")
KLETTRES_DIR = Path("/usr/share/klettres")
AUDIO_SUFFIXES = (".ogg", ".oga", ".opus", ".wav", ".flac")
GAP_SECONDS = 0.1
TRIM_TOP_DB = 35.0


class Utterance(NamedTuple):
    """One utterance of the corpus.

    Attributes
    ----------
    utterance_id : str
        ``"<speaker>/<index>"``, e.g. ``"klettres-fr/01"``.
    speaker : str
        ``"<package>-<locale folder>"``, e.g. ``"klettres-fr"``, ``"klettres-pt_BR"``.
    waveform : ndarray of shape (samples,), float32
        Mono, in [-1, 1], at the requested sample rate (16 kHz by default).
    """

    utterance_id: str
    speaker: str
    waveform: np.ndarray


@dataclass(frozen=True)
class Voice:
    """One recording session used as a speaker.

    Attributes
    ----------
    speaker : str
        ``"<package>-<locale folder>"``.
    package : str
        ``"klettres"`` or ``"ktuberling"``.
    language : str
        Language code without region/script (``"en"``, ``"sr"``).
    sample_rate : int
        Native rate of the clips, in Hz.
    channels : int
        Native channel count.
    clips : tuple of Path
        Distinct clips, in path order.
    """

    speaker: str
    package: str
    language: str
    sample_rate: int
    channels: int
    clips: tuple[Path, ...]


def _format_of(path: Path) -> tuple[int, int]:
    """(sample rate, channels) read from the stream header; soundfile only as a fallback.

    Ogg Vorbis and Opus headers are parsed directly (libsndfile scans the whole
    stream for its length, 100x slower for thousands of small files).
    """
    with open(path, "rb") as f:
        head = f.read(128)
    if head[:4] == b"OggS" and len(head) > 27:
        start = 27 + head[26]  # after the page's segment table
        packet = head[start:]
        if packet[:7] == b"\x01vorbis" and len(packet) >= 16:
            return int.from_bytes(packet[12:16], "little"), packet[11]
        if packet[:8] == b"OpusHead" and len(packet) >= 10:
            return 48000, packet[9]  # Opus always decodes at 48 kHz
    import soundfile as sf  # lazy: soundfile is optional (the models extra)

    info = sf.info(str(path))
    return int(info.samplerate), int(info.channels)


def _language(folder_name: str) -> str:
    return re.split(r"[_@]", folder_name)[0]


def _clips(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _sessions(package: str, root: Path, seen: set[str]) -> dict[tuple[str, int, int], list[Path]]:
    """(locale folder, rate, channels) -> clips of one package, skipping contents already in ``seen``."""
    sessions: dict[tuple[str, int, int], list[Path]] = defaultdict(list)
    if not root.is_dir():
        return sessions
    for lang_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        folders = [lang_dir / "alpha", lang_dir / "syllab"] if package == "klettres" else [lang_dir]
        for folder in folders:
            if not folder.is_dir():
                continue
            for clip in _clips(folder):
                digest = hashlib.sha1(clip.read_bytes()).hexdigest()
                if digest in seen:  # e.g. ktuberling's sr@latin: copies of sr
                    continue
                seen.add(digest)
                rate, channels = _format_of(clip)
                sessions[(lang_dir.name, rate, channels)].append(clip)
    return sessions


def find_voices(
    min_clips: int = 12, ktuberling_dir: str | Path = KTUBERLING_DIR, klettres_dir: str | Path = KLETTRES_DIR
) -> list[Voice]:
    """The voices available on this machine, one per language (see the module docstring).

    Parameters
    ----------
    min_clips : int
        Fewest distinct clips a recording session needs to count as a voice.
    ktuberling_dir, klettres_dir : str or Path
        Where the packages put their files (the Debian paths by default).

    Returns
    -------
    list of Voice
        Sorted by speaker id; empty when neither package is installed.
    """
    best: dict[str, Voice] = {}
    seen: set[str] = set()
    for package, root in (("klettres", Path(klettres_dir)), ("ktuberling", Path(ktuberling_dir))):
        for (locale, rate, channels), clips in sorted(_sessions(package, root, seen).items()):
            if len(clips) < min_clips:
                continue
            lang = _language(locale)
            voice = Voice(f"{package}-{locale}", package, lang, rate, channels, tuple(clips))
            current = best.get(lang)
            # klettres is searched first and wins; within a package the largest session wins
            if current is None or (current.package == package and len(clips) > len(current.clips)):
                best[lang] = voice
    return sorted(best.values(), key=lambda v: v.speaker)


def is_available(ktuberling_dir: str | Path = KTUBERLING_DIR, klettres_dir: str | Path = KLETTRES_DIR) -> bool:
    """Whether at least one of the two packages' audio folders exists."""
    return Path(ktuberling_dir).is_dir() or Path(klettres_dir).is_dir()


def trim_edges(waveform: np.ndarray, sample_rate: int, top_db: float = TRIM_TOP_DB) -> np.ndarray:
    """Cut leading and trailing 10 ms frames quieter than ``top_db`` below the loudest frame.

    Returns
    -------
    ndarray of shape (kept_samples,), float32
        The input unchanged when it is shorter than one frame or silent.
    """
    frame = max(1, sample_rate // 100)
    n = waveform.size // frame
    if n == 0:
        return waveform
    rms = np.sqrt(np.mean(waveform[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    if rms.max() == 0:
        return waveform
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (-top_db / 20))
    return waveform[loud[0] * frame : (loud[-1] + 1) * frame]


def _utterances_of(
    voice: Voice, count: int | None, min_seconds: float, max_seconds: float, min_clips: int, sample_rate: int
) -> Iterator[np.ndarray]:
    gap = np.zeros(int(GAP_SECONDS * sample_rate), dtype=np.float32)
    parts: list[np.ndarray] = []
    made = 0
    for clip in voice.clips:
        x = trim_edges(read_audio(clip, sample_rate), sample_rate)
        if x.size == 0:
            continue
        parts.append(x)
        length = sum(p.size for p in parts) + gap.size * (len(parts) - 1)
        if length >= min_seconds * sample_rate and len(parts) >= min_clips:
            joined = np.concatenate([y for p in parts for y in (p, gap)][:-1])
            yield joined[: int(max_seconds * sample_rate)]
            parts = []
            made += 1
            if made == count:
                return


def load_corpus(
    max_speakers: int | None = None,
    utterances_per_speaker: int | None = 2,
    min_seconds: float = 3.0,
    max_seconds: float = 6.0,
    min_clips: int = 3,
    sample_rate: int = 16000,
    voices: list[Voice] | None = None,
) -> list[Utterance]:
    """Build the corpus: ``utterances_per_speaker`` utterances of each voice.

    Parameters
    ----------
    max_speakers : int, optional
        Use the first voices only (in speaker-id order); all by default.
    utterances_per_speaker : int or None
        Utterances per voice; voices that cannot fill this many are left out.
        None takes every utterance each voice gives (a voice gives none when
        its clips cannot fill one).
    min_seconds, max_seconds : float
        Each utterance joins clips until it lasts at least ``min_seconds``
        (and has ``min_clips`` clips), then is cut to ``max_seconds``.
    min_clips : int
        Fewest clips per utterance.
    sample_rate : int
        Output rate in Hz (clips are resampled, see :mod:`minifloat_store.eval.data.audio`).
    voices : list of Voice, optional
        The voices to use; :func:`find_voices` by default.

    Returns
    -------
    list of Utterance
        Grouped by speaker, in speaker-id order; empty when the packages are
        not installed.
    """
    if voices is None:
        voices = find_voices()
    corpus: list[Utterance] = []
    used = 0
    for voice in voices:
        if max_speakers is not None and used >= max_speakers:
            break
        waves = list(_utterances_of(voice, utterances_per_speaker, min_seconds, max_seconds, min_clips, sample_rate))
        if len(waves) < (utterances_per_speaker or 1):
            continue
        corpus += [Utterance(f"{voice.speaker}/{i:02d}", voice.speaker, w) for i, w in enumerate(waves)]
        used += 1
    return corpus


__all__ = [
    "KLETTRES_DIR",
    "KTUBERLING_DIR",
    "Utterance",
    "Voice",
    "find_voices",
    "is_available",
    "load_corpus",
    "trim_edges",
]
