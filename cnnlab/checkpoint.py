"""Checkpoints: safetensors for tensors, JSON for everything else, written atomically.

A checkpoint ``NAME`` in a directory is two files:

- ``tensors-<sha256 prefix>.safetensors``: model weights and buffers
  (``model.*``), optimiser state tensors (``optim.<param index>.<key>``) and
  RNG states as uint8 tensors (``rng.*``). Named by its content hash, so
  writing it never touches a file another checkpoint uses.
- ``NAME.json``: the resolved config, epoch, step, metrics, the optimiser's and
  schedule's scalar state, library versions, and the tensors file's name and
  full SHA-256.

Each file is written to a temporary file in the same directory, fsynced and
moved into place with ``os.replace``; the JSON goes last. So whenever the process
dies, ``NAME.json`` is either the old or the new checkpoint, and always names a
complete tensors file. Loading verifies the hash. Nothing is ever unpickled: a
file that carries a pickle payload (``torch.save`` output) is refused.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as tensors_from_bytes
from safetensors.torch import save as tensors_to_bytes

from cnnlab.errors import CnnlabError
from cnnlab.files import atomic_write, remove_stale_temporaries

FORMAT = "cnnlab-checkpoint"
FORMAT_VERSION = 1
# A pickle stream starts with the PROTO opcode; torch.save's zip archives with "PK".
PICKLE_SIGNATURES = (b"\x80", b"PK\x03\x04")


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        path: the JSON file.
        meta: its contents.
        tensors: every tensor of the safetensors file, on the CPU.
    """

    path: Path
    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    def model_state(self) -> dict[str, torch.Tensor]:
        """The model's ``state_dict``."""
        return _strip(self.tensors, "model.")


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def pack_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Splits an optimiser's state into tensors (for safetensors) and plain values (for JSON)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "state": scalars}


def unpack_optimizer(checkpoint: Checkpoint) -> dict[str, Any]:
    """The ``state_dict`` that :func:`pack_optimizer` split, rebuilt."""
    saved = checkpoint.meta["optimizer"]
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in saved["state"].items()}
    for key, value in _strip(checkpoint.tensors, "optim.").items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": saved["param_groups"]}


def rng_tensors() -> dict[str, torch.Tensor]:
    """The global RNG states (dropout, stochastic depth...) as uint8 tensors."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return tensors


def restore_rng(checkpoint: Checkpoint) -> None:
    """Puts back the RNG states :func:`rng_tensors` saved."""
    torch.set_rng_state(checkpoint.tensors["rng.torch"])
    cuda = [checkpoint.tensors[k] for k in sorted(checkpoint.tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class NonFiniteTensorsError(CnnlabError):
    """Tensors hold NaN or Inf: such a checkpoint is never written, nor loaded unless asked."""


def check_finite(tensors: dict[str, torch.Tensor], where: str) -> None:
    """Raises :class:`NonFiniteTensorsError` naming ``where`` and the first bad tensor.

    One fused reduction and one synchronisation for the whole dict.
    """
    floating = [(k, v) for k, v in tensors.items() if v.is_floating_point()]
    if not floating:
        return
    finite = torch.stack([torch.isfinite(v).all() for _, v in floating])
    if not bool(finite.all()):
        bad = [k for (k, _), ok in zip(floating, finite.tolist()) if not ok]
        raise NonFiniteTensorsError(f"{where}: {len(bad)} tensor(s) hold NaN or Inf (the first is {bad[0]})")


def save_checkpoint(directory: str | Path, name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Writes checkpoint ``name`` atomically and removes tensors files no checkpoint uses.

    Args:
        directory: the checkpoints folder (created if needed).
        name: e.g. "last" or "best".
        tensors: name -> tensor; moved to the CPU and made contiguous.
        meta: JSON-serialisable values; the format, versions and the tensors
            file's name and hash are added.

    Returns:
        The JSON file.

    Raises:
        NonFiniteTensorsError: a tensor holds NaN or Inf; nothing was written.
    """
    directory = Path(directory)
    check_finite(tensors, f"checkpoint {directory / name}")
    directory.mkdir(parents=True, exist_ok=True)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    data = tensors_to_bytes(cpu)
    digest = hashlib.sha256(data).hexdigest()
    tensors_file = directory / f"tensors-{digest[:16]}.safetensors"
    if not tensors_file.exists():
        atomic_write(tensors_file, data)
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, "cnnlab_version": version("cnnlab"),
              "torch_version": torch.__version__, "tensors": tensors_file.name, "sha256": digest, **meta}
    path = directory / f"{name}.json"
    atomic_write(path, json.dumps(record, indent=1).encode())
    _remove_unused(directory)
    return path


def _remove_unused(directory: Path) -> None:
    """Deletes the tensors files no record names, and the temporaries of killed writes.

    A record that cannot be read might name any file, so while one exists nothing
    is deleted: cnnlab never deletes what it cannot prove is its own and unused.
    """
    used = set()
    for record in directory.glob("*.json"):
        try:
            used.add(json.loads(record.read_text())["tensors"])
        except (OSError, ValueError, KeyError, TypeError):
            return
    for tensors_file in directory.glob("tensors-*.safetensors"):
        if tensors_file.name not in used:
            tensors_file.unlink(missing_ok=True)
    remove_stale_temporaries(directory)


def _refuse_pickle(path: Path, head: bytes) -> None:
    if head.startswith(PICKLE_SIGNATURES):
        raise CnnlabError(
            f"{path} carries a pickle payload (a torch.save file?); cnnlab never unpickles, because that can "
            "run arbitrary code: convert the weights to safetensors"
        )


def _read_json(path: Path) -> dict[str, Any]:
    from cnnlab.errors import CnnlabError

    data = path.read_bytes()
    try:
        _refuse_pickle(path, data[:4])
    except ValueError as err:
        raise CnnlabError(str(err)) from None
    try:
        meta = json.loads(data)
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError, too-long integers
        raise CnnlabError(f"{path} is not a cnnlab checkpoint: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CnnlabError(f"{path} is not a cnnlab checkpoint (no '\"format\": \"{FORMAT}\"' entry)")
    expected_types = {"format_version": int, "tensors": str, "sha256": str}
    for key, kind in expected_types.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise CnnlabError(f"{path}: the entry {key!r} must be a {kind.__name__}, found {meta.get(key)!r:.60}; "
                              "the checkpoint is damaged")
    step = meta.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CnnlabError(f"{path}: the entry 'step' must be a non-negative integer, found {step!r:.60}")
    if meta["format_version"] > FORMAT_VERSION:
        raise CnnlabError(f"{path} was written by a newer cnnlab ({meta.get('cnnlab_version')}); upgrade cnnlab")
    return meta


def resolve_checkpoint_path(path: str | Path) -> Path:
    """The JSON file of a checkpoint given as that file, a checkpoints folder or a run directory
    (``best`` there, else ``last``)."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "best.json", path / "checkpoints" / "last.json",
                          path / "best.json", path / "last.json"):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"no checkpoint (best.json or last.json) in {path}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Loads and verifies a checkpoint (see the module docstring for what is accepted).

    Raises:
        CnnlabError: not a cnnlab checkpoint, a pickle payload, a JSON entry of
            the wrong type, a tensors file whose hash does not match (corrupt or
            replaced), or one whose hash matches but which is not a valid
            safetensors file; the message names the file.
        FileNotFoundError: the JSON or its tensors file is missing.
    """
    from safetensors import SafetensorError

    from cnnlab.errors import CnnlabError

    path = resolve_checkpoint_path(path)
    meta = _read_json(path)
    name = Path(meta["tensors"]).name
    if not name or name in (".", ".."):
        raise CnnlabError(f"{path}: the entry 'tensors' ({meta['tensors']!r:.60}) names no file")
    tensors_file = path.parent / name
    try:
        data = tensors_file.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{tensors_file}, the tensors file that {path.name} names, is missing") from None
    except OSError as err:
        raise CnnlabError(f"cannot read {tensors_file} ({err.strerror or err})") from None
    try:
        _refuse_pickle(tensors_file, data[:4])
    except ValueError as err:
        raise CnnlabError(str(err)) from None
    if hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise CnnlabError(f"{tensors_file} does not match the hash in {path.name}: the checkpoint is corrupt")
    try:
        tensors = tensors_from_bytes(data)
    except (SafetensorError, ValueError, RuntimeError, TypeError, OverflowError) as err:
        raise CnnlabError(
            f"{tensors_file} is not a valid safetensors file ({err}); the checkpoint is damaged") from None
    return Checkpoint(path, meta, tensors)


def loadable_checkpoints(directory: str | Path) -> list[Checkpoint]:
    """The checkpoints in ``directory`` that load, newest (highest step) first.

    A checkpoint that does not load is skipped with a warning naming it, so one
    damaged file never blocks a resume. On a tie (best and last of the same step
    hold the same tensors) "last" comes first.
    """
    loaded = []
    for record in sorted(Path(directory).glob("*.json")):
        try:
            loaded.append(load_checkpoint(record))
        except (OSError, ValueError, KeyError) as err:
            warnings.warn(f"skipping checkpoint {record}: {err}", stacklevel=2)
    return sorted(loaded, key=lambda c: (c.step, c.path.stem == "last"), reverse=True)


def latest_checkpoint(directory: str | Path) -> Checkpoint | None:
    """The newest checkpoint in ``directory`` that loads (see :func:`loadable_checkpoints`)."""
    return next(iter(loadable_checkpoints(directory)), None)
