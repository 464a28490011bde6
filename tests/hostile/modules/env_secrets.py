"""Hostile module: Read the host's secrets from the environment."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class EnvSecrets(Hostile):
    """Read the host's secrets from the environment."""

    def attempt(self):
        return dict(os.environ)
