"""gunicorn.conf.py: each web worker freezes its start-up objects out of the cyclic GC.

That gunicorn loads the file and runs the hook in the Procfile's web process is checked end to
end by tests/test_processes.py (it waits for the hook's log line from both workers).
"""

from __future__ import annotations

import gc
import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class RecordingLog:
    def __init__(self):
        self.lines: list[str] = []

    def info(self, message, *args):
        self.lines.append(message % args)


class FakeWorker:
    """What the hook uses of gunicorn.workers.base.Worker: its logger."""

    def __init__(self):
        self.log = RecordingLog()


@pytest.fixture
def gc_state():
    """The test process's collector as it was before, however the hook left it."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_post_worker_init_freezes_start_up_objects_and_raises_the_young_threshold(gc_state):
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    survivor = ["built at start-up"]  # a list is always tracked; alive when the hook runs
    assert [o for o in gc.get_objects() if o is survivor]
    assert gc.get_freeze_count() == 0
    worker = FakeWorker()

    config["post_worker_init"](worker)

    frozen = gc.get_freeze_count()
    assert frozen > 1000  # the interpreter, pytest and this module's objects
    # gc.get_objects() lists the three generations, not the permanent one.
    assert not [o for o in gc.get_objects() if o is survivor]
    assert gc.get_threshold() == (config["GEN0_THRESHOLD"], 10, 10)
    assert config["GEN0_THRESHOLD"] == 7000
    # The count is the hook's own: frozen objects that another thread frees meanwhile leave
    # the permanent generation (one CI run read 56 fewer here), and nothing else freezes.
    ((line,),) = [worker.log.lines]
    logged = re.fullmatch(
        r"garbage collector: froze (\d+) start-up objects, first-generation threshold 7000", line
    )
    assert logged and int(logged.group(1)) >= frozen, line
    # Frozen objects are outside every collection: a full collect leaves them frozen.
    gc.collect()
    assert gc.get_freeze_count() == frozen


def test_post_worker_init_keeps_the_older_generations_thresholds(gc_state):
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    gc.set_threshold(700, 25, 40)

    config["post_worker_init"](FakeWorker())

    assert gc.get_threshold() == (7000, 25, 40)


def test_the_configuration_file_sets_nothing_the_procfile_sets():
    """Workers, bind, timeouts and loggers stay on the Procfile's command line, where Heroku and
    honcho show them; the file only adds the hook and its constant."""
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    public = {name for name in config if not name.startswith("_")}
    assert public == {"annotations", "gc", "GEN0_THRESHOLD", "post_worker_init"}
