"""Run an `ls-llm` command that pauses inside one of its functions until told to go on, so a test can start a
second command while the first one is mid-run (the "two writers" cases of issue 23):

    python tests/pause_driver.py MODULE:ATTR[.ATTR] COMMAND [ARGS ...]

The first call of MODULE:ATTR (the $PAUSE_AT-th, if set) writes this process's pid into the file $READY, then
waits until the file $GO exists. Without $READY the command runs unpaused (the other ranks of a launch).
"""

import importlib
import os
import sys
import time


def _pause_in(target: str) -> None:
    module_name, _, path = target.partition(":")
    owner = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    inner = getattr(owner, name)
    calls = [0]

    def paused(*args, **kwargs):
        calls[0] += 1
        if calls[0] == int(os.environ.get("PAUSE_AT", "1")):
            with open(os.environ["READY"] + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(os.environ["READY"] + ".tmp", os.environ["READY"])
            while not os.path.exists(os.environ["GO"]):
                time.sleep(0.05)
        return inner(*args, **kwargs)

    setattr(owner, name, paused)


if __name__ == "__main__":
    if os.environ.get("READY"):
        _pause_in(sys.argv[1])
    from ls_llm.cli import main

    sys.exit(main(sys.argv[2:]))
