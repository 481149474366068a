"""Fork simulation: run the exact transaction on a fork and read what it did."""

from defiagent.simulation.fork import ForkManager
from defiagent.simulation.models import ApprovalChange, Log, SimulationOutcome, TokenMeta
from defiagent.simulation.simulator import Simulator

__all__ = ["ApprovalChange", "ForkManager", "Log", "SimulationOutcome", "Simulator", "TokenMeta"]
