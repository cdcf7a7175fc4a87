"""Compiled tree evaluation: a LightGBM booster's predictions from native code, cached per model.

LightGBM predicts by walking each tree's node arrays, row after row; ``lleaves`` (LLVM, a LightGBM
model compiler) turns the trees into branching machine code, several times faster on the
payment-date model's person-period rows (bench/RESULTS.md). Used only where it gives LightGBM's
numbers exactly:

* the trees are compiled as one block: lleaves' default cache blocking sums each block of trees
  apart and then adds the block sums, a different rounding from LightGBM's running sum, tree by
  tree from zero (one block is that same sum). Without inlining the trees into that block: inlined,
  300 trees took minutes to compile, for twice the speed;
* every compiled model is checked against LightGBM on rows of the first prediction it makes
  (``VERIFY_ROWS``): any difference and the process goes back to LightGBM for that model, with a
  warning.

The compiled code is kept in ``<workspace>/artifacts/compiled/``, named by a hash of the model's
text, the compiler's versions and the CPU it was compiled for: a new model (or a new machine)
compiles once, the next runs load it. Compiling is skipped when ``lleaves`` is not installed or
``ENCAISSE_COMPILED_TREES=0``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

VERIFY_ROWS = 4096
"""Rows of a compiled model's first prediction also predicted by LightGBM and compared, bit for bit."""

ENV_SWITCH = "ENCAISSE_COMPILED_TREES"


def enabled() -> bool:
    """Whether compiled trees may be used (``lleaves`` installed, not switched off)."""
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    import importlib.util

    return importlib.util.find_spec("lleaves") is not None


def _target() -> str:
    """The compiler's versions and the CPU its code is for (a cached object runs only there)."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:
        features = ""
    return "|".join([metadata.version("lleaves"), metadata.version("llvmlite"), llvm.get_process_triple(),
                     llvm.get_host_cpu_name(), features])


def model_text(booster) -> str:
    """The text of the trees ``booster.predict`` uses (its best iteration when early-stopped)."""
    best = int(getattr(booster, "best_iteration", 0) or 0)
    return booster.model_to_string(num_iteration=best if best > 0 else -1)


def cache_key(text: str) -> str:
    """The cache file's name for a model's text, on this machine and compiler."""
    return hashlib.sha256((_target() + "\n" + text).encode()).hexdigest()[:32]


class CompiledTrees:
    """Mixin of the estimators holding a LightGBM ``booster_``: ``predictor()`` is its compiled trees
    when attached (``attach_compiled``), else the booster. The compiled code is never pickled."""

    def predictor(self):
        """What predicts for ``booster_``: its ``CompiledBooster`` when attached, else itself."""
        return self.__dict__.get("compiled_") or self.booster_

    def attach_compiled(self, cache_dir: Path | str) -> bool:
        """Predict with ``booster_``'s compiled trees from now on (:func:`compile_booster`); False
        when they are not available here."""
        compiled = compile_booster(self.booster_, cache_dir)
        if compiled is not None:
            self.__dict__["compiled_"] = compiled
        return compiled is not None

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object's own is the live __dict__
        state.pop("compiled_", None)  # native code, attached again by whoever loads the model
        state.pop("day_clocks_memo_", None)  # a cache (PaymentDateModel.day_clock)
        return state


class CompiledBooster:
    """``booster.predict(matrix)`` (probabilities, or raw scores) from lleaves' compiled code.

    Build with :func:`compile_booster`. The first ``predict`` checks ``VERIFY_ROWS`` of its rows
    against the booster; after a mismatch every call is the booster's own ``predict``.
    """

    def __init__(self, booster, compiled, raw_score: bool = False):
        self.booster = booster
        self.compiled = compiled
        self.raw_score = raw_score
        self.verified: bool | None = None  # None: not checked yet

    def _lightgbm(self, matrix: np.ndarray, num_threads: int) -> np.ndarray:
        return self.booster.predict(matrix, raw_score=self.raw_score, num_threads=num_threads)

    def predict(self, matrix: np.ndarray, num_threads: int = 0) -> np.ndarray:
        """The booster's predictions of the rows of ``matrix`` (float64, the booster's columns)."""
        if self.verified is False:
            return self._lightgbm(matrix, num_threads)
        data = np.ascontiguousarray(matrix, dtype=np.float64)
        jobs = num_threads if num_threads > 0 else (os.cpu_count() or 1)
        out = self.compiled.predict(data, n_jobs=jobs if len(data) >= 10_000 else 1)
        if self.verified is None and len(data):
            m = min(VERIFY_ROWS, len(data))
            rows = np.linspace(0, len(data) - 1, m).astype(np.intp) if len(data) > m else slice(None)
            expected = self._lightgbm(data[rows], num_threads)
            self.verified = bool(np.array_equal(out[rows], expected, equal_nan=True))
            if not self.verified:
                log.warning("Compiled trees differ from LightGBM's predictions: using LightGBM for this model")
                return self._lightgbm(matrix, num_threads)
        return out


def compile_booster(booster, cache_dir: Path | str, raw_score: bool = False) -> CompiledBooster | None:
    """``booster`` compiled by lleaves, loaded from ``cache_dir`` when compiled there before.

    None when compiled trees are off or the compile fails (the caller keeps LightGBM).
    """
    if not enabled():
        return None
    try:
        import lleaves

        text = model_text(booster)
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        key = cache_key(text) + ("-raw" if raw_score else "")
        path = cache_dir / f"{key}.o"
        with tempfile.TemporaryDirectory(prefix="encaisse-trees-") as tmp:
            model_file = Path(tmp) / "model.txt"
            model_file.write_text(text)
            model = lleaves.Model(model_file=str(model_file))
            n_trees = max(model.num_trees(), 1)
            if path.exists():
                model.compile(cache=str(path), raw_score=raw_score, fblocksize=n_trees, finline=False)
                log.debug("loaded compiled trees %s", path.name)
            else:
                # Written beside, then renamed: another process never loads a half-written file.
                partial = Path(tmp) / "partial.o"
                model.compile(cache=str(partial), raw_score=raw_score, fblocksize=n_trees, finline=False)
                if partial.exists():
                    staged = cache_dir / f".{key}.{os.getpid()}.tmp"
                    staged.write_bytes(partial.read_bytes())
                    os.replace(staged, path)
                log.info("compiled %d trees to %s", n_trees, path)
    except Exception as exc:  # noqa: BLE001 -- any compiler failure leaves LightGBM in charge
        log.warning("Could not compile the trees (%s): predicting with LightGBM", exc)
        return None
    return CompiledBooster(booster, model, raw_score=raw_score)
