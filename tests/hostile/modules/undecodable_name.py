"""Hostile module: Give an entry of the data folder a name that is not UTF-8, for the
supervisor to meet when it measures the folder or hands it to the next worker."""

import os

from _hostile import Hostile, data_dir


class UndecodableName(Hostile):
    """Give an entry of the data folder a name that is not UTF-8."""

    PERMISSIONS = {'file_system_access': True}

    def attempt(self):
        os.mkdir(os.path.join(os.fsencode(data_dir()), b"\xff\xfe"))
        with open(os.path.join(os.fsencode(data_dir()), b"\xff\xfe", b"f\xff"), "wb") as f:
            f.write(b"x")
        return sorted(os.listdir(os.fsencode(data_dir())))
