"""gunicorn settings that the command line cannot carry: the worker's garbage-collector set-up.

gunicorn reads ./gunicorn.conf.py from its working directory by default (the `--config`
setting, docs.gunicorn.org/en/stable/settings.html#config), so the Procfile's web line, honcho
under script/server and the tests that start gunicorn from the repository root all load it.
Every other setting stays on the Procfile's command line, where the platforms show it.
"""

from __future__ import annotations

import gc

# Python's default first-generation threshold is 700 (gc.get_threshold()): under sign-up load
# a worker ran a young collection every ~9 requests (30 per 270) and an older one every ~90.
# With 7000 it ran 2 per 200, and GC time per sign-up fell from 0.27-0.28 ms to 0.10-0.20 ms
# (BENCHMARKS.md, Web, fourth pass). The young generation stays small: 7000 objects.
GEN0_THRESHOLD = 7000


def post_worker_init(worker) -> None:
    """Freeze everything the worker has built at start-up (the app, its templates, catalogues
    of translations, imported modules) out of the collector's reach, then raise the
    first-generation threshold to GEN0_THRESHOLD; the older generations keep their defaults.

    gunicorn calls this in each worker after it loaded the app and before it serves a request
    (gunicorn.workers.base.Worker.init_process). Without --preload each worker creates the app
    after the fork, so the freeze has to happen here, not in the master: the pattern CPython's
    gc.freeze() was added for (bugs.python.org/issue31558; "a web worker loading application
    after fork ... can call gc.freeze() after loading full application, before starting
    processing request", msg302831). Frozen objects are never freed, which is right for objects
    that live as long as the worker. Logs one INFO line through gunicorn's error log (stderr)
    with the number of frozen objects, so the Procfile's process test and an operator can see
    the hook ran. Returns None; raises nothing.
    """
    gc.collect()  # start-up garbage goes now, so it is not frozen for the worker's lifetime
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
    worker.log.info(
        "garbage collector: froze %d start-up objects, first-generation threshold %d",
        gc.get_freeze_count(),
        GEN0_THRESHOLD,
    )
