"""What the before/after equality checks share: save the outputs, or compare them with saved ones.

Frames are compared with ``assert_frame_equal`` (to the letter, or floats to rtol/atol 1e-9),
arrays with ``np.testing.assert_allclose`` (rtol/atol 1e-9), anything else with ``==``.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path


def compare(before: dict, after: dict, exact: bool = False) -> list[str]:
    """One line per output of ``before`` that ``after`` lacks or that differs."""
    import numpy as np
    import pandas as pd

    failures = []
    for name, want in before.items():
        got = after.get(name)
        try:
            if isinstance(want, pd.DataFrame):
                if exact:
                    pd.testing.assert_frame_equal(got, want, check_exact=True)
                else:
                    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9, atol=1e-9)
            elif isinstance(want, np.ndarray):
                np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
            else:
                assert got == want, (got, want)
        except AssertionError as exc:
            failures.append(f"{name}: {str(exc)[:800]}")
    return failures


def save_or_compare(mode: str, path: Path, out: dict, what: str, exact: bool = False) -> None:
    """``save``: pickle ``out`` to ``path``. ``compare``: print the differences and exit 1 on any."""
    if mode == "save":
        path.write_bytes(pickle.dumps(out))
        print(f"saved {len(out)} outputs ({what}) to {path}")
        return
    failures = compare(pickle.loads(path.read_bytes()), out, exact=exact)
    for f in failures:
        print("DIFF", f)
    print(f"{len(out) - len(failures)} of {len(out)} outputs identical ({what})")
    sys.exit(1 if failures else 0)
