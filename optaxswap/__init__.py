"""optaxswap: reset or switch optax optimizers mid-run without recompiling."""

from optaxswap import handoff
from optaxswap._helpers import observe
from optaxswap._helpers import phase
from optaxswap._helpers import request_reset
from optaxswap._helpers import request_switch
from optaxswap._helpers import reset_count
from optaxswap._plateau import PlateauState
from optaxswap._plateau import on_plateau
from optaxswap._resettable import ResettableState
from optaxswap._resettable import resettable
from optaxswap._switch import SwitchState
from optaxswap._switch import switch
from optaxswap._switch import switch_at
from optaxswap._switch import switch_on_plateau
from optaxswap._triggers import Trigger
from optaxswap._triggers import TriggerContext
from optaxswap._triggers import any_of
from optaxswap._triggers import at_steps
from optaxswap._triggers import every
from optaxswap._triggers import never
from optaxswap._triggers import when

__version__ = "0.1.0"

__all__ = (
    "PlateauState",
    "ResettableState",
    "SwitchState",
    "Trigger",
    "TriggerContext",
    "any_of",
    "at_steps",
    "every",
    "handoff",
    "never",
    "observe",
    "on_plateau",
    "phase",
    "request_reset",
    "request_switch",
    "reset_count",
    "resettable",
    "switch",
    "switch_at",
    "switch_on_plateau",
    "when",
)
