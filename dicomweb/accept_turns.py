"""``dicomweb serve --workers N``: the worker processes take turns accepting connections.

uvicorn's workers share one listening socket, and each worker's event loop accepts every
connection waiting on it when it wakes up (libuv and asyncio accept in a loop until the
queue is empty). Clients that connect at once — a benchmark's 4 clients, a viewer's 6
connections — so all land on the first worker awake, and the others idle for as long as
those connections are kept alive: two workers stored no faster than one
(docs/performance.md, "Per-request overhead and workers").

Here each worker accepts in a thread blocked in ``accept()`` on the shared socket. Linux
queues blocked acceptors in order and wakes one per connection (an exclusive wait), and a
worker joins the back of the queue again after each accept: connections are dealt out in
turn. A worker busy with Python work gets back into the queue later (its acceptor waits for
the GIL), so a loaded worker is also passed over. What it cannot help: on a machine with no
idle core, a woken worker may not run before the next connection of a burst arrives, and
the first worker back in ``accept()`` takes it (measured on the shared 2-core machine at load
10: 4 connections opened at the same instant went 2/2 in about half the tries, 3/1 or 4/0
otherwise; connections opened one after another alternate). Each accepted socket is handed to the
worker's event loop (``loop.connect_accepted_socket``) with uvicorn's protocol, so
everything else — the connection guard, keep-alive, graceful shutdown — is uvicorn's.

uvicorn offers no hook for this, so :class:`TurnTakingSupervisor` replaces the worker process
class of its supervisor (only in the ``dicomweb serve`` process), and
:class:`TurnTakingServer` runs uvicorn's start-up with no listener of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable

from uvicorn.config import Config
from uvicorn.server import Server
from uvicorn.supervisors import multiprocess

ACCEPT_RETRY_SECONDS = 0.05
READY_SECONDS = 120.0
"""How long to wait for a worker's start-up before announcing the service anyway."""


class TurnTakingServer(Server):
    """uvicorn's server, accepting on the shared socket from a thread (see the module)."""

    _connecting: set[asyncio.Task[None]]

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._connecting = set()
        if not sockets:
            await super().startup(sockets)
            return
        await super().startup(sockets=[])  # the app's lifespan; no listener of uvicorn's own
        loop = asyncio.get_running_loop()
        for sock in sockets:
            sock.listen(self.config.backlog)
            threading.Thread(target=self._accept, args=(sock, loop), name="dicomweb-accept", daemon=True).start()

    def _protocol(self) -> asyncio.Protocol:
        # What uvicorn's own start-up builds for each connection.
        protocol: asyncio.Protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state)
        return protocol

    def _accept(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        """Take this worker's turns: block in ``accept()``, hand the connection to the loop."""
        while not self.should_exit:
            try:
                connection, _ = sock.accept()
            except OSError:
                if self.should_exit or sock.fileno() == -1:  # the worker is stopping
                    return
                # Out of file descriptors or memory, or a connection reset before its
                # accept: the next one may succeed (uvicorn's loop would carry on too).
                time.sleep(ACCEPT_RETRY_SECONDS)
                continue
            try:
                loop.call_soon_threadsafe(self._adopt, connection)
            except RuntimeError:  # the loop has closed: the worker is gone
                connection.close()
                return

    def _adopt(self, connection: socket.socket) -> None:
        if self.should_exit:  # taken during shutdown: refused at once (the client retries elsewhere)
            connection.close()
            return
        connection.setblocking(False)
        task = asyncio.get_running_loop().create_task(self._connect(connection))
        self._connecting.add(task)  # a reference until it is done (the loop keeps only a weak one)
        task.add_done_callback(self._connecting.discard)

    async def _connect(self, connection: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(self._protocol, connection, ssl=self.config.ssl)
        except OSError:  # the client went away, or TLS failed: nothing to serve
            with contextlib.suppress(OSError):
                connection.close()


class TurnTakingProcess(multiprocess.Process):
    """A worker process of uvicorn's supervisor running :class:`TurnTakingServer`."""

    @property
    def server(self) -> Server:
        if self._server is None:
            self._server = TurnTakingServer(config=self.config)
        return self._server


class TurnTakingSupervisor(multiprocess.Multiprocess):
    """uvicorn's supervisor with :class:`TurnTakingProcess` workers, calling ``on_ready`` once
    every worker serves: a client that starts when the service root is announced finds all
    of them taking turns (a worker still importing would be passed over until it is done)."""

    def __init__(self, config: Config, sockets: list[socket.socket], on_ready: Callable[[], None]) -> None:
        super().__init__(config, sockets)
        self._on_ready = on_ready
        # The supervisor makes its workers (and their replacements after a crash) from the
        # module's ``Process``; there is no parameter for it.
        multiprocess.Process = TurnTakingProcess  # type: ignore[misc]

    def init_processes(self) -> None:
        super().init_processes()
        for process in self.processes:
            process.wait_until_ready(READY_SECONDS, self.should_exit)
        self._on_ready()

