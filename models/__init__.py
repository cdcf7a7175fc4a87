"""Estimators and decision logic (scikit-learn contract). Code only: artifacts live in MLflow."""

import os

# LightGBM's OpenMP threads busy-wait between parallel regions unless told otherwise. On shared
# cores (API workers beside a batch job, a loaded CI machine) the spinning threads take the CPU the
# working ones need: a 2-thread fit ran 3x slower than a 1-thread one at load 5 on 2 cores. Passive
# waiting is read when the OpenMP runtime loads, so it is set before anything imports LightGBM; a
# value already in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
