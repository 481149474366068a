"""One guard rule per module. The registry (defiagent.guard.registry) lists them all."""
