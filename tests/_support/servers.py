"""moto servers on free local ports, for HTTP-level and out-of-process tests."""

from __future__ import annotations

import logging
import urllib.request

from moto.server import ThreadedMotoServer


class MotoServer:
    """A :class:`ThreadedMotoServer` on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        self.host, self.port = self._server.get_host_and_port()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        """Forget every account's data."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self) -> None:
        self._server.stop()
