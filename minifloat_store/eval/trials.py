"""Speaker-verification trial lists: reading, indexing and recognising them.

Two text formats, one trial per line, fields separated by whitespace:

* **VoxCeleb**: ``label enroll test`` with label ``1`` (target, same speaker)
  or ``0`` (non-target), e.g.
  ``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``;
* **Kaldi**: ``enroll test target`` or ``enroll test nontarget``.

``read_trials`` detects the format from the file (or takes it explicitly) and
returns a :class:`Trials`, which stores each distinct utterance id once and
the pairs as int64 indices, so the 579,818-trial Vox1-E list stays small.

The three cleaned VoxCeleb-1 lists are known by file name and MD5
(:data:`KNOWN_LISTS`): :func:`identify_list` says which one a file is, and
:func:`check_known_list` (also run by ``read_trials``) refuses a file that
carries a known name but not its content, e.g. the uncleaned list renamed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "KNOWN_LISTS",
    "KnownList",
    "MissingUtterancesError",
    "TrialFormat",
    "Trials",
    "check_known_list",
    "identify_list",
    "read_trials",
    "speaker_of",
]

TrialFormat = Literal["voxceleb", "kaldi"]

_VOXCELEB_LABELS = {"1": True, "0": False}
_KALDI_LABELS = {"target": True, "nontarget": False}
# How many offending ids an error message lists before "...".
_SHOW = 5


@dataclass(frozen=True)
class KnownList:
    """A published trial list, recognised by its MD5.

    Attributes
    ----------
    name : str
        Standard short name, e.g. ``"Vox1-O"``.
    filename : str
        File name it is distributed under, e.g. ``"veri_test2.txt"``.
    md5 : str
        Published MD5 of the file, lower-case hex.
    n_trials : int
        Number of trials (lines).
    description : str
        One line saying what the list is.
    """

    name: str
    filename: str
    md5: str
    n_trials: int
    description: str


#: The cleaned VoxCeleb-1 lists, by standard name, with the MD5s published
#: alongside the lists.
KNOWN_LISTS: Mapping[str, KnownList] = MappingProxyType(
    {
        known.name: known
        for known in (
            KnownList(
                "Vox1-O",
                "veri_test2.txt",
                "b73110731c9223c1461fe49cb48dddfc",
                37_611,
                "VoxCeleb-1 original test list, cleaned (40 test speakers)",
            ),
            KnownList(
                "Vox1-E",
                "list_test_all2.txt",
                "a53e059deb562ffcfc092bf5d90d9f3a",
                579_818,
                "VoxCeleb-1 extended list, cleaned (whole VoxCeleb-1)",
            ),
            KnownList(
                "Vox1-H",
                "list_test_hard2.txt",
                "857790e09d579a68eb2e339a090343c8",
                550_894,
                "VoxCeleb-1 hard list, cleaned (same nationality and gender)",
            ),
        )
    }
)


class MissingUtterancesError(KeyError, ValueError):
    """Some trial utterances are not among the given ids.

    Both a ``KeyError`` and a ``ValueError``; ``missing`` holds every missing
    utterance id (sorted), the message shows the first few.
    """

    def __init__(self, message: str, missing: Sequence[str]) -> None:
        super().__init__(message)
        self.missing: tuple[str, ...] = tuple(missing)

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


def speaker_of(utterance: str) -> str:
    """Speaker id of an utterance id.

    The first path component for VoxCeleb ids (``id10270/x6uYqmx31kE/00001.wav``
    -> ``id10270``); for ids without ``/``, the part before the first ``-``,
    Kaldi's speaker-prefix convention (``id10270-x6uYqmx31kE-00001`` ->
    ``id10270``); otherwise the whole id.
    """
    sep = "/" if "/" in utterance else "-"
    return utterance.split(sep, 1)[0]


@dataclass(frozen=True, eq=False)
class Trials:
    """A list of verification trials (enrolment utterance, test utterance, label).

    Build one with :func:`read_trials` or :meth:`Trials.from_pairs`. Arrays are
    read-only.

    Attributes
    ----------
    utterances : ndarray of shape (u,), str
        Sorted distinct utterance ids appearing in any trial.
    enroll_index, test_index : ndarray of shape (n,), int64
        Per trial, the position of its enrolment / test utterance in
        ``utterances``.
    labels : ndarray of shape (n,), bool
        True for a target (same-speaker) trial.
    format : {"voxceleb", "kaldi"} or None
        Format of the file it was read from; None when built from arrays.
    path : Path or None
        File it was read from.
    known : KnownList or None
        The published list the file is (by MD5), if any.
    """

    utterances: NDArray[np.str_]
    enroll_index: NDArray[np.int64]
    test_index: NDArray[np.int64]
    labels: NDArray[np.bool_]
    format: TrialFormat | None = None
    path: Path | None = None
    known: KnownList | None = field(default=None)

    def __post_init__(self) -> None:
        # Cheap consistency checks for direct construction; the builders satisfy them.
        n = self.labels.shape
        if self.labels.dtype != np.bool_ or self.labels.ndim != 1:
            raise ValueError("labels must be a 1-D bool array")
        for name in ("enroll_index", "test_index"):
            index = getattr(self, name)
            if index.dtype != np.int64 or index.shape != n:
                raise ValueError(f"{name} must be int64 of shape {n}, got {index.dtype} {index.shape}")
            if index.size and (index.min() < 0 or index.max() >= self.utterances.size):
                raise ValueError(f"{name} points outside utterances (size {self.utterances.size})")
        if self.utterances.ndim != 1 or self.utterances.dtype.kind != "U":
            raise ValueError("utterances must be a 1-D array of str")

    @classmethod
    def from_pairs(
        cls,
        enroll: Sequence[str] | NDArray[np.str_],
        test: Sequence[str] | NDArray[np.str_],
        labels: Sequence[bool] | Sequence[int] | NDArray[np.bool_] | NDArray[np.integer],
    ) -> Trials:
        """Trials from parallel sequences.

        Parameters
        ----------
        enroll, test : sequence of str, length n
            Enrolment and test utterance id of each trial; non-empty strings.
        labels : sequence of bool or 0/1, length n
            True / 1 for a target trial.

        Raises
        ------
        ValueError
            Lengths differ, there are no trials, an id is not a non-empty
            string, or a label is not bool/0/1.
        """
        enroll_list = _as_id_list(enroll, "enroll")
        test_list = _as_id_list(test, "test")
        y = np.asarray(labels)
        if y.ndim != 1:
            raise ValueError(f"labels must be 1-D, got shape {y.shape}")
        if not (len(enroll_list) == len(test_list) == y.size):
            raise ValueError(
                f"enroll, test and labels must have the same length, got "
                f"{len(enroll_list)}, {len(test_list)} and {y.size}"
            )
        if y.size == 0:
            raise ValueError("no trials given")
        if y.dtype != np.bool_:
            bad = ~np.isin(y, [0, 1]) if y.dtype.kind in "iuf" else np.ones(y.size, bool)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"labels must be bool or 0/1: trial {i} has label {y[i].item()!r}")
            y = y == 1
        return _build(enroll_list, test_list, y, fmt=None, path=None, known=None)

    def __len__(self) -> int:
        return int(self.labels.size)

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        name = f", known={self.known.name!r}" if self.known is not None else ""
        return f"Trials(n={len(self)}, targets={self.n_targets}, utterances={self.utterances.size}{name}{where})"

    @property
    def n_targets(self) -> int:
        """Number of target (same-speaker) trials."""
        return int(np.count_nonzero(self.labels))

    @property
    def n_nontargets(self) -> int:
        """Number of non-target trials."""
        return len(self) - self.n_targets

    @property
    def enroll(self) -> NDArray[np.str_]:
        """Enrolment utterance id per trial, shape (n,), str (built on each access)."""
        return self.utterances[self.enroll_index]

    @property
    def test(self) -> NDArray[np.str_]:
        """Test utterance id per trial, shape (n,), str (built on each access)."""
        return self.utterances[self.test_index]

    @cached_property
    def speakers(self) -> NDArray[np.str_]:
        """Sorted distinct speaker ids (see :func:`speaker_of`), shape (s,), str."""
        out = np.unique(np.array([speaker_of(u) for u in self.utterances.tolist()]))
        out.setflags(write=False)
        return out

    def index_pairs(self, ids: Sequence[str] | NDArray[np.str_]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Positions of every trial's two utterances in an arbitrary id list.

        Parameters
        ----------
        ids : sequence of str, length m
            E.g. the ids of the embeddings in a store, in store order. Ids not
            used by any trial are ignored.

        Returns
        -------
        enroll_pos, test_pos : ndarray of shape (n,), int64
            ``ids[enroll_pos[i]]`` and ``ids[test_pos[i]]`` are the utterances
            of trial i.

        Raises
        ------
        MissingUtterancesError
            (a KeyError and a ValueError) when trial utterances are not in
            ``ids``; the message gives how many and the first few.
        ValueError
            When a trial utterance occurs more than once in ``ids``.
        """
        position: dict[str, int] = {}
        repeated: set[str] = set()
        for i, u in enumerate(_as_id_list(ids, "ids")):
            if position.setdefault(u, i) != i:
                repeated.add(u)
        utts = self.utterances.tolist()
        where = np.fromiter((position.get(u, -1) for u in utts), np.int64, len(utts))
        if (where < 0).any():
            missing = [utts[i] for i in np.flatnonzero(where < 0)]
            raise MissingUtterancesError(
                f"{len(missing)} of {len(utts)} trial utterances are not in the given ids (e.g. {_preview(missing)})",
                missing,
            )
        ambiguous = sorted(repeated.intersection(utts))
        if ambiguous:
            raise ValueError(
                f"{len(ambiguous)} trial utterances occur more than once in the given ids "
                f"(e.g. {_preview(ambiguous)}); each must occur once"
            )
        return where[self.enroll_index], where[self.test_index]


# ---------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------


def read_trials(
    path: str | os.PathLike[str],
    fmt: TrialFormat | Literal["auto"] = "auto",
    *,
    verify: bool = True,
) -> Trials:
    """Read a trial list in VoxCeleb or Kaldi format.

    Parameters
    ----------
    path : str or PathLike
        Text file (UTF-8), one trial per line; blank lines are skipped.
    fmt : {"auto", "voxceleb", "kaldi"}, default "auto"
        ``"voxceleb"``: ``label enroll test``, label ``1``/``0``.
        ``"kaldi"``: ``enroll test target|nontarget``. ``"auto"`` decides from
        the file: the format whose label field is valid on every line (the
        first line decides which one the error message reports otherwise).
    verify : bool, default True
        Run :func:`check_known_list`'s test: a file named like a known list
        (e.g. ``veri_test2.txt``) must have that list's MD5.

    Returns
    -------
    Trials
        With ``format``, ``path`` and ``known`` (the identified list, by MD5) set.

    Raises
    ------
    ValueError
        Malformed line (the message gives its 1-based line number and text),
        mixed formats, no trials, undetectable format, or (with ``verify``) a
        known file name with the wrong MD5.
    """
    if fmt not in ("auto", "voxceleb", "kaldi"):
        raise ValueError(f"fmt must be 'auto', 'voxceleb' or 'kaldi', got {fmt!r}")
    path = Path(path)
    data = path.read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    known = _check_name_and_md5(path, md5) if verify else _by_md5(md5)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"{path}: line {line} is not valid UTF-8 ({exc.reason})") from None

    first, second, third, line_of = _split_fields(text, path)
    detected = fmt if fmt != "auto" else _detect(first, third, path, line_of(0))
    if detected == "voxceleb":
        label_col, enroll, test, table = first, second, third, _VOXCELEB_LABELS
        expected = "1 or 0 in the first field ('label enroll test')"
    else:
        enroll, test, label_col, table = first, second, third, _KALDI_LABELS
        expected = "target or nontarget in the third field ('enroll test target|nontarget')"
    try:
        labels = np.fromiter((table[v] for v in label_col), np.bool_, len(label_col))
    except KeyError:
        i = next(i for i, v in enumerate(label_col) if v not in table)
        n, line = line_of(i)
        raise ValueError(
            f"{path}: line {n}: expected {expected} ({detected} format), got {label_col[i]!r}: {line!r}"
        ) from None
    return _build(enroll, test, labels, fmt=detected, path=path, known=known)


def _split_fields(text: str, path: Path) -> tuple[list[str], list[str], list[str], Callable[[int], tuple[int, str]]]:
    """The three fields of every non-blank line, and a map from trial to (line number, text).

    Raises a ValueError naming the first line that does not have exactly 3 fields.
    """
    tokens = text.split()
    first, second, third = tokens[0::3], tokens[1::3], tokens[2::3]
    body = text[:-1] if text.endswith("\n") else text
    # Fast path for the usual layout (single spaces, "\n" line ends, no blank lines):
    # if re-joining the fields reproduces the text, every line has exactly 3 fields.
    # Unequal field lists mean an unusual layout: the comparison below then fails, so no strict zip.
    rejoined = "\n".join(map(" ".join, zip(first, second, third, strict=False)))
    if first and len(tokens) % 3 == 0 and rejoined == body:
        return first, second, third, lambda i: (i + 1, " ".join((first[i], second[i], third[i])))

    lines = text.split("\n")
    rows = [ln.split() for ln in lines]
    line_no = [n for n, r in enumerate(rows, start=1) if r]  # 1-based, blank lines skipped
    if not line_no:
        raise ValueError(f"{path}: no trials (the file is empty or blank)")
    for n in line_no:
        if len(rows[n - 1]) != 3:
            raise ValueError(
                f"{path}: line {n}: expected 3 fields ('label enroll test' or "
                f"'enroll test target|nontarget'), got {len(rows[n - 1])}: "
                f"{lines[n - 1].strip()!r}"
            )
    # Every non-blank line has 3 fields, so the whitespace split above is aligned.
    return first, second, third, lambda i: (line_no[i], lines[line_no[i] - 1].strip())


def _detect(first: list[str], third: list[str], path: Path, first_line: tuple[int, str]) -> TrialFormat:
    """Choose the format whose label field is valid on every line."""
    vox = set(first) <= _VOXCELEB_LABELS.keys()
    kaldi = set(third) <= _KALDI_LABELS.keys()
    if vox and kaldi:
        raise ValueError(
            f"{path}: both formats fit every line (labels 0/1 first and "
            f"target/nontarget last); pass fmt='voxceleb' or fmt='kaldi'"
        )
    if vox:
        return "voxceleb"
    if kaldi:
        return "kaldi"
    # Neither fits throughout: report against the format of the first line.
    n, line = first_line
    tokens = line.split()
    if tokens[0] in _VOXCELEB_LABELS:
        return "voxceleb"
    if tokens[2] in _KALDI_LABELS:
        return "kaldi"
    raise ValueError(
        f"{path}: cannot tell the format from line {n} {line!r}: expected "
        f"'label enroll test' (label 1/0, VoxCeleb) or 'enroll test target|nontarget' (Kaldi)"
    )


def _build(
    enroll: list[str],
    test: list[str],
    labels: NDArray[np.bool_],
    *,
    fmt: TrialFormat | None,
    path: Path | None,
    known: KnownList | None,
) -> Trials:
    """Index the pairs: each distinct id once, sorted; pairs as int64 positions."""
    # A dict assigns first-seen codes in one pass, much faster than np.unique on strings.
    code: dict[str, int] = {}
    codes = np.fromiter(map(lambda u: code.setdefault(u, len(code)), enroll + test), np.int64, 2 * len(enroll))
    first_seen = list(code)
    order = sorted(range(len(first_seen)), key=first_seen.__getitem__)
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    codes = rank[codes]
    utterances = np.array([first_seen[i] for i in order], dtype=str)
    n = len(enroll)
    arrays = (utterances, codes[:n], codes[n:], np.ascontiguousarray(labels, dtype=np.bool_))
    for a in arrays:
        a.setflags(write=False)
    return Trials(*arrays, format=fmt, path=path, known=known)


def _as_id_list(ids: Iterable[str], what: str) -> list[str]:
    if isinstance(ids, str):
        raise ValueError(f"{what} must be a sequence of utterance ids, not a single string")
    out = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
    for i, u in enumerate(out):
        if not isinstance(u, str) or not u:
            raise ValueError(f"{what}[{i}] must be a non-empty string, got {u!r}")
    return out


def _preview(items: Sequence[str]) -> str:
    shown = ", ".join(repr(x) for x in items[:_SHOW])
    return shown + (", ..." if len(items) > _SHOW else "")


# ---------------------------------------------------------------------------
# Known lists
# ---------------------------------------------------------------------------


def _file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _by_md5(md5: str) -> KnownList | None:
    return next((k for k in KNOWN_LISTS.values() if k.md5 == md5), None)


def _check_name_and_md5(path: Path, md5: str) -> KnownList | None:
    named = next((k for k in KNOWN_LISTS.values() if k.filename == path.name), None)
    if named is not None and named.md5 != md5:
        actual = _by_md5(md5)
        what = (
            f"it is {actual.name} ({actual.filename})"
            if actual is not None
            else "perhaps the uncleaned list, an edited copy or different line endings"
        )
        raise ValueError(
            f"{path}: named like {named.name} ({named.filename}) but its MD5 is {md5}, "
            f"expected {named.md5}; {what}. Use the cleaned list as published."
        )
    return _by_md5(md5)


def identify_list(path: str | os.PathLike[str]) -> KnownList | None:
    """Which known trial list a file is, by its MD5 alone (its name is ignored).

    Parameters
    ----------
    path : str or PathLike
        The file.

    Returns
    -------
    KnownList or None
        The entry of :data:`KNOWN_LISTS` whose MD5 matches, or None.
    """
    return _by_md5(_file_md5(Path(path)))


def check_known_list(path: str | os.PathLike[str]) -> KnownList | None:
    """Identify a trial list and refuse one that is named like a known list but is not it.

    Parameters
    ----------
    path : str or PathLike
        The file.

    Returns
    -------
    KnownList or None
        The matching entry of :data:`KNOWN_LISTS` (by MD5), or None for a file
        whose name and content are both unknown.

    Raises
    ------
    ValueError
        The file name is a known list's (e.g. ``veri_test2.txt``) but the MD5
        is not that list's; the message gives both MD5s.
    """
    path = Path(path)
    return _check_name_and_md5(path, _file_md5(path))
