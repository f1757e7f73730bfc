"""``optaxswap demo``: optimizer strategies compared on digits and on a PINN.

Private: the command line in :mod:`optaxswap._cli` is the interface. Needs the
``demo`` extra (scikit-learn, matplotlib, rich), imported only in here.
"""

from optaxswap._demo._pinn_run import PINN_PLOT_NAME
from optaxswap._demo._pinn_run import PINN_RESULTS_NAME
from optaxswap._demo._pinn_run import run_pinn_demo
from optaxswap._demo._pinn_training import PINN_DEFAULT_STEPS
from optaxswap._demo._pinn_training import PINN_QUICK_STEPS
from optaxswap._demo._pinn_training import PINN_STRATEGIES
from optaxswap._demo._pinn_training import PinnConfig
from optaxswap._demo._run import PLOT_NAME
from optaxswap._demo._run import RESULTS_NAME
from optaxswap._demo._run import run_demo
from optaxswap._demo._strategies import DEFAULT_STEPS
from optaxswap._demo._strategies import QUICK_STEPS
from optaxswap._demo._strategies import STRATEGIES
from optaxswap._demo._strategies import DemoConfig

__all__ = (
    "DEFAULT_STEPS",
    "PINN_DEFAULT_STEPS",
    "PINN_PLOT_NAME",
    "PINN_QUICK_STEPS",
    "PINN_RESULTS_NAME",
    "PINN_STRATEGIES",
    "PLOT_NAME",
    "QUICK_STEPS",
    "RESULTS_NAME",
    "STRATEGIES",
    "DemoConfig",
    "PinnConfig",
    "run_demo",
    "run_pinn_demo",
)
