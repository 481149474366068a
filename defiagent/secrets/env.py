"""`env:NAME`: an environment variable of the agent's process."""

from __future__ import annotations

import os

from defiagent.secrets.errors import SecretUnavailable
from defiagent.secrets.reference import SecretRef
from defiagent.secrets.source import Fetched


class EnvSource:
    scheme = "env"

    def read(self, ref: SecretRef) -> Fetched:
        value = os.environ.get(ref.body)
        if not value:
            raise SecretUnavailable(f"the environment variable {ref.body} is not set")
        # Not cached: the environment is this process's own memory, read again each time.
        return Fetched(value, cache=False)
