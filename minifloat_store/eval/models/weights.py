"""Finding pretrained weight files: an explicit path, then the standard caches.

Each model module describes its published file once, as a
:class:`WeightsSource` returned by its ``weights_source()``, and names its
hub's cache in ``weights_candidates()``; the registry
(:class:`~minifloat_store.eval.models.registry.ModelSpec`) passes both to
:func:`resolve_weights`::

    SOURCE = WeightsSource(
        model="campplus",
        filename="campplus_voxceleb.bin",
        origin="ModelScope model iic/speech_campplus_sv_en_voxceleb_16k, revision v1.0.2",
        url="https://modelscope.cn/models/iic/speech_campplus_sv_en_voxceleb_16k/resolve/v1.0.2/campplus_voxceleb.bin",
        sha256="5b1a88b6...",
    )
    path = resolve_weights(
        SOURCE,
        weights,  # the user's path or None
        candidates=modelscope_cache_files(SOURCE_ID, SOURCE.filename),
    )

The search order is: the ``weights`` argument (a file, or a directory holding
``filename``); ``<weights_dir()>/<model>/<filename>``; the candidates the model
passes (its hub's cache). When nothing is found, :class:`WeightsNotFoundError`
says where to download the file from and the exact path to put it at. When a
known SHA-256 is given, the file is checked against it.

Finding files uses only the standard library (no hub clients): it finds
files that a user or a hub client already downloaded, it never downloads.
:func:`load_torch_state_dict` and :func:`load_strict` (which import torch
when called) read a checkpoint with ``weights_only=True`` and load it
strictly, with errors that list what differs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Environment variable naming the directory searched for ``<model>/<filename>``.
WEIGHTS_DIR_ENV = "MINIFLOAT_STORE_WEIGHTS"


class WeightsNotFoundError(FileNotFoundError):
    """No pretrained weight file was found; the message says what to download and where."""


class WeightsChecksumError(ValueError):
    """A weight file's SHA-256 differs from the published one."""


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's published weight file comes from.

    Parameters
    ----------
    model : str
        Registry name (``"campplus"``); also the sub-directory of
        :func:`weights_dir` searched for the file.
    filename : str
        File name as published (``"campplus_voxceleb.bin"``).
    origin : str
        Human-readable origin: hub, repository id and revision.
    url : str
        A URL that downloads this exact file.
    sha256 : str, optional
        Hex SHA-256 of the published file; ``None`` when no sum is known.
    notes : str
        Extra lines for the missing-weights message (another way to download,
        a licence to accept, ...).
    """

    model: str
    filename: str
    origin: str
    url: str
    sha256: str | None = None
    notes: str = ""


def _cache_home() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg else Path.home() / ".cache"


def weights_dir() -> Path:
    """Directory searched for ``<model>/<filename>``.

    Returns
    -------
    Path
        ``$MINIFLOAT_STORE_WEIGHTS`` when set, else
        ``$XDG_CACHE_HOME/minifloat_store/weights`` (``~/.cache/...`` by default).
        It need not exist.
    """
    env = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(env).expanduser() if env else _cache_home() / "minifloat_store" / "weights"


def default_location(source: WeightsSource) -> Path:
    """The path where the missing-weights message tells the user to put the file."""
    return weights_dir() / source.model / source.filename


def huggingface_cache_files(repo_id: str, filename: str, revision: str | None = None) -> list[Path]:
    """Copies of ``filename`` in the Hugging Face hub cache.

    Parameters
    ----------
    repo_id : str
        ``"owner/name"``, e.g. ``"microsoft/wavlm-base-plus-sv"``.
    filename : str
        Path of the file inside the repository.
    revision : str, optional
        Branch, tag or commit; by default ``main`` first, then any snapshot.

    Returns
    -------
    list of Path
        Existing files, best first (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``,
        else ``~/.cache/huggingface/hub``; layout
        ``models--owner--name/snapshots/<commit>/<filename>``).
    """
    if os.environ.get("HF_HUB_CACHE"):
        root = Path(os.environ["HF_HUB_CACHE"])
    elif os.environ.get("HF_HOME"):
        root = Path(os.environ["HF_HOME"]) / "hub"
    else:
        root = _cache_home() / "huggingface" / "hub"
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return []
    commits: list[str] = []
    for ref in [revision] if revision else ["main"]:
        ref_file = repo / "refs" / ref
        if ref_file.is_file():
            commits.append(ref_file.read_text().strip())
        elif revision and len(ref) == 40:
            commits.append(ref)
    if not revision:
        others = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        commits += [p.name for p in others if p.name not in commits]
    return [p for c in commits if (p := snapshots / c / filename).is_file()]


def torch_hub_checkpoint_files(filename: str) -> list[Path]:
    """``filename`` in torch hub's checkpoint directory, if it is there.

    Returns
    -------
    list of Path
        ``[$TORCH_HOME/hub/checkpoints/<filename>]`` (``$TORCH_HOME`` defaults
        to ``~/.cache/torch``, as in ``torch.hub.get_dir()``) when it exists,
        else ``[]``.
    """
    home = Path(os.environ["TORCH_HOME"]) if os.environ.get("TORCH_HOME") else _cache_home() / "torch"
    path = home / "hub" / "checkpoints" / filename
    return [path] if path.is_file() else []


def modelscope_cache_files(model_id: str, filename: str) -> list[Path]:
    """Copies of ``filename`` in the ModelScope cache.

    Parameters
    ----------
    model_id : str
        ``"owner/name"``, e.g. ``"iic/speech_campplus_sv_en_voxceleb_16k"``.
    filename : str
        File name inside the model repository.

    Returns
    -------
    list of Path
        Existing files under ``$MODELSCOPE_CACHE`` (default
        ``~/.cache/modelscope/hub``), in the layouts modelscope has used:
        ``<root>/<owner>/<name>/`` and ``<root>/models/<owner>/<name>/``
        (with ``.`` in the name stored as ``___``).
    """
    env = os.environ.get("MODELSCOPE_CACHE")
    roots = [Path(env), Path(env) / "hub"] if env else [_cache_home() / "modelscope" / "hub"]
    names = dict.fromkeys([model_id, model_id.replace(".", "___")])
    found: list[Path] = []
    for root in roots:
        for name in names:
            for base in (root / name, root / "models" / name):
                path = base / filename
                if path.is_file() and path not in found:
                    found.append(path)
    return found


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def missing_weights_message(source: WeightsSource, searched: Iterable[Path] = ()) -> str:
    """The text of :class:`WeightsNotFoundError`: what to download, and where to put it."""
    target = default_location(source)
    lines = [
        f"no pretrained weights for model {source.model!r} were found.",
        f"Download {source.filename} from {source.origin}:",
        f"    {source.url}",
        "and put it at",
        f"    {target}",
        f"(or set {WEIGHTS_DIR_ENV} to a directory holding {source.model}/{source.filename}, "
        "or give the file's path: --weights PATH on the command line, weights=PATH in Python).",
    ]
    if source.sha256:
        lines.append(f"Its SHA-256 is {source.sha256}.")
    if source.notes:
        lines.append(source.notes)
    searched = list(searched)
    if searched:
        lines.append("Searched: " + ", ".join(str(p) for p in searched))
    return "\n".join(lines)


def verify_sha256(path: str | Path, source: WeightsSource) -> None:
    """Check a file against ``source.sha256`` (no-op when no sum is known).

    Raises
    ------
    WeightsChecksumError
        With both sums, the file and the way to skip the check.
    """
    if not source.sha256:
        return
    actual = sha256_of(path)
    if actual != source.sha256.lower():
        raise WeightsChecksumError(
            f"{path} is not the published {source.filename} of {source.origin}: "
            f"its SHA-256 is {actual}, expected {source.sha256}. The download may be "
            "truncated or corrupted (download it again), or it is another release; "
            "pass verify=False to load it anyway."
        )


def resolve_weights(
    source: WeightsSource,
    weights: str | Path | None = None,
    *,
    candidates: Iterable[Path] = (),
    verify: bool = True,
) -> Path:
    """Find a model's weight file and check its SHA-256.

    Parameters
    ----------
    source : WeightsSource
        What the file is and where it is published.
    weights : str or Path, optional
        The user's choice: a file, or a directory holding ``source.filename``.
        When given, nothing else is searched.
    candidates : iterable of Path
        Further places to look, in order (e.g. :func:`modelscope_cache_files`,
        :func:`huggingface_cache_files`, :func:`torch_hub_checkpoint_files`).
        They are searched after ``<weights_dir()>/<model>/<filename>``.
    verify : bool
        Check the file against ``source.sha256`` (when one is known).

    Returns
    -------
    Path
        An existing file.

    Raises
    ------
    WeightsNotFoundError
        When ``weights`` does not exist, or nothing was given and nothing was
        found; the message names the download URL, the file and the target path.
    WeightsChecksumError
        When ``verify`` and the file's SHA-256 differs from ``source.sha256``.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if path.is_dir():
            path = path / source.filename
        if not path.is_file():
            raise WeightsNotFoundError(f"weights file {path} does not exist.\n" + missing_weights_message(source))
    else:
        searched = [default_location(source), *candidates]
        found = next((p for p in searched if Path(p).is_file()), None)
        if found is None:
            raise WeightsNotFoundError(missing_weights_message(source, searched))
        path = Path(found)
    if verify:
        verify_sha256(path, source)
    return path


def load_torch_state_dict(path: str | Path, key: str | None = None) -> dict:
    """Read tensors from a torch checkpoint with ``weights_only=True`` (never unpickles objects).

    Parameters
    ----------
    path : str or Path
        A file written by ``torch.save``.
    key : str, optional
        When the file holds a dict that has this key (e.g. ``"state_dict"``,
        ``"model_state"``), return that entry; otherwise the file must be a
        flat state_dict.

    Returns
    -------
    dict of str to torch.Tensor

    Raises
    ------
    ValueError
        If the file cannot be read with ``weights_only=True`` or is not a dict
        of tensors.
    """
    import torch  # lazy: finding weights must not need torch; reading them does

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError ... depending on the damage
        raise ValueError(f"cannot read {path} as a torch checkpoint (weights_only=True): {exc}") from None
    state = checkpoint
    if key is not None and isinstance(checkpoint, dict) and key in checkpoint:
        state = checkpoint[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        where = f"a {key!r} entry nor " if key else ""
        raise ValueError(f"{path} holds neither {where}a flat state_dict (parameter name -> tensor)")
    return state


def load_strict(network, state: dict, path: str | Path) -> None:
    """``network.load_state_dict(state, strict=True)`` with an error listing what differs.

    Raises
    ------
    ValueError
        Naming the file, and the missing keys, unexpected keys and keys with
        other shapes (a few of each), when ``state`` does not fit ``network``.
    """
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} with other shapes (e.g. {k}: file {tuple(state[k].shape)}, "
                f"model {tuple(expected[k].shape)})"
            )
        raise ValueError(f"{path} does not fit the {type(network).__name__} layout: " + "; ".join(parts))
    network.load_state_dict(state, strict=True)


__all__ = [
    "WEIGHTS_DIR_ENV",
    "WeightsChecksumError",
    "WeightsNotFoundError",
    "WeightsSource",
    "default_location",
    "huggingface_cache_files",
    "load_strict",
    "load_torch_state_dict",
    "missing_weights_message",
    "modelscope_cache_files",
    "resolve_weights",
    "sha256_of",
    "torch_hub_checkpoint_files",
    "verify_sha256",
    "weights_dir",
]
