"""Hostile module: Follow links the test planted in the data folder (for the supervisor)."""

import os

from _hostile import Hostile, data_dir, libc, outcome, syscall_outcome  # noqa: F401


class PlantedLink(Hostile):
    """Follow links the test planted in the data folder (for the supervisor)."""

    PERMISSIONS = {'file_system_access': True}

    def attempt(self):
        d = data_dir()
        return {"listing": sorted(os.listdir(d)),
                "read_file_link": outcome(lambda: open(os.path.join(d, "secret-link")).read()),
            "read_shadow_link": outcome(lambda: open(os.path.join(d, "shadow-link")).read()),
                "read_dir_link": outcome(lambda: os.listdir(os.path.join(d, "root-link")))}
