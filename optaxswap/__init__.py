"""optaxswap: reset or switch optax optimizers mid-run without recompiling."""

from optaxswap import handoff
from optaxswap import recipes
from optaxswap._helpers import observe
from optaxswap._helpers import phase
from optaxswap._helpers import request_reset
from optaxswap._helpers import request_switch
from optaxswap._helpers import reset_count
from optaxswap._plateau import PlateauState
from optaxswap._plateau import on_plateau
from optaxswap._resettable import ResettableState
from optaxswap._resettable import resettable
from optaxswap._resume import check_structure
from optaxswap._resume import restore_checkpoint
from optaxswap._resume import wrap_state
from optaxswap._spike import SpikeState
from optaxswap._spike import on_spike
from optaxswap._summary import summary
from optaxswap._swats import swats
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
    "SpikeState",
    "SwitchState",
    "Trigger",
    "TriggerContext",
    "any_of",
    "at_steps",
    "check_structure",
    "every",
    "handoff",
    "never",
    "observe",
    "on_plateau",
    "on_spike",
    "phase",
    "recipes",
    "request_reset",
    "request_switch",
    "reset_count",
    "resettable",
    "restore_checkpoint",
    "summary",
    "swats",
    "switch",
    "switch_at",
    "switch_on_plateau",
    "when",
    "wrap_state",
)
