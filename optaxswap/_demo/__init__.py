"""``optaxswap demo``: optimizer strategies compared on real data.

Private: the command line in :mod:`optaxswap._cli` is the interface. Needs the
``demo`` extra (scikit-learn, matplotlib, rich), imported only in here.
"""

from optaxswap._demo._run import PLOT_NAME
from optaxswap._demo._run import RESULTS_NAME
from optaxswap._demo._run import run_demo
from optaxswap._demo._strategies import DEFAULT_STEPS
from optaxswap._demo._strategies import QUICK_STEPS
from optaxswap._demo._strategies import STRATEGIES
from optaxswap._demo._strategies import DemoConfig

__all__ = (
    "DEFAULT_STEPS",
    "PLOT_NAME",
    "QUICK_STEPS",
    "RESULTS_NAME",
    "STRATEGIES",
    "DemoConfig",
    "run_demo",
)
