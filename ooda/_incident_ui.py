"""``ooda serve-ui``: the incident pages over HTTP, built from the audit log on each request.

The standard library's threading HTTP server is enough for a page a person opens now and
then; each request reads the log afresh, so a running loop's new incidents show on reload.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock

from ooda._audit import AuditStore
from ooda._incident_page import incident_html, index_html
from ooda._incidents import incidents

_PAGE = re.compile(r"^/incident-(\d+)\.html$")


def serve_incidents(audit: AuditStore, host: str, port: int) -> ThreadingHTTPServer:
    """A server (not yet serving) for the index at ``/`` and ``/incident-ID.html``."""
    lock = Lock()  # one reader of the store at a time (a SQLite connection is not shared)

    class Pages(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            with lock:
                found = incidents(audit)
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, index_html(found))
                return
            match = _PAGE.match(path)
            incident = next((i for i in found if match and i.id == int(match[1])), None)
            if incident is None:
                self._send(HTTPStatus.NOT_FOUND, f"<p>no page {path}</p>")
                return
            self._send(HTTPStatus.OK, incident_html(incident))

        def _send(self, status: HTTPStatus, body: str) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return  # a quiet terminal

    return ThreadingHTTPServer((host, port), Pages)
