"""Workers: threads of the server process that lease jobs from the store and safeguard them.

Each worker loads its own :class:`~veil.pipeline.Safeguarder` once, when it starts, and
keeps it for every job. While a job runs a heartbeat renews its lease; if the process dies
(``kill -9``) the lease runs out and the next worker to ask takes the job again. A result is
committed only under the claim that produced it (:meth:`veil.store.Store.complete`), so it is
committed exactly once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from veil.pipeline import Safeguarder
from veil.server.processing import DEFAULT_NEAR, process_item
from veil.store import Claim, Store

log = logging.getLogger("veil.server")


class Worker(threading.Thread):
    """One worker thread (see the module docs)."""

    def __init__(self, store: Store, make_safeguarder: Callable[[], Safeguarder], *, index: int,
                 wake: threading.Event, stop: threading.Event, lease: float = 30.0, poll: float = 1.0,
                 max_attempts: int = 3, near: float = DEFAULT_NEAR) -> None:
        super().__init__(name=f"veil-worker-{index}", daemon=True)
        self.store, self.make_safeguarder = store, make_safeguarder
        self.wake, self.stop_event = wake, stop
        self.lease, self.poll, self.max_attempts, self.near = lease, poll, max_attempts, near
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{index}"
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.processed = 0

    def run(self) -> None:
        try:
            sg = self.make_safeguarder()  # models loaded once per worker
        except BaseException as exc:  # noqa: BLE001 - reported by the pool, which stops the server
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        while not self.stop_event.is_set():
            try:
                claim = self.store.claim(self.worker_id, lease=self.lease, max_attempts=self.max_attempts)
            except Exception:  # the database may be restarting: keep the worker alive
                log.exception("claiming a job failed; retrying")
                self.stop_event.wait(self.poll)
                continue
            if claim is None:
                self.wake.wait(self.poll)
                self.wake.clear()
                continue
            self._run_job(sg, claim)

    def _run_job(self, sg: Safeguarder, claim: Claim) -> None:
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.lease / 3):
                try:
                    if not self.store.heartbeat(claim, lease=self.lease):
                        return
                except Exception:  # noqa: BLE001 - a missed beat only shortens the lease
                    log.warning("heartbeat for job %s failed", claim.job_id)

        beater = threading.Thread(target=beat, name=f"{self.name}-heartbeat", daemon=True)
        beater.start()
        try:
            item, _job = self.store.item(claim.item_id)
            status, fields = process_item(sg, self.store, item, near=self.near)
            error = (fields.get("result") or {}).get("error") if status == "failed" else None
            if self.store.complete(claim, status=status, fields=fields, error=error):
                self.processed += 1
            else:
                log.warning("job %s was taken over by another worker; its result was not committed", claim.job_id)
        except Exception:
            log.exception("job %s failed unexpectedly; it will be retried when its lease ends", claim.job_id)
        finally:
            done.set()
            beater.join()


class WorkerPool:
    """``n`` :class:`Worker` threads sharing a wake-up event (set when an image is submitted)."""

    def __init__(self, store: Store, make_safeguarder: Callable[[], Safeguarder], n: int, **options: float) -> None:
        self.wake, self.stop_event = threading.Event(), threading.Event()
        self.workers = [Worker(store, make_safeguarder, index=i, wake=self.wake, stop=self.stop_event,
                               **options)  # type: ignore[arg-type]
                        for i in range(n)]

    def start(self) -> None:
        for w in self.workers:
            w.start()
        for w in self.workers:
            w.ready.wait()
            if w.error is not None:
                self.stop()
                raise w.error

    def notify(self) -> None:
        self.wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        self.wake.set()
        for w in self.workers:
            if w.is_alive():
                w.join(timeout)
