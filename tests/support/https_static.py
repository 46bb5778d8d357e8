"""A static https file server for the tests, run as its own process: what a fleet's web server (nginx,
a CDN) is to `avatar-kiosk provision https://…`. Serves DIR on 127.0.0.1:PORT with CERT/KEY and logs
every request path to stdout, one line each (the tests read which files were fetched).

    python https_static.py DIR PORT CERT KEY
"""

from __future__ import annotations

import functools
import http.server
import ssl
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_request(self, code="-", size="-"):
        print(f"{self.command} {self.path} {code}", flush=True)

    def log_message(self, fmt, *args):  # errors: their request line above says enough
        pass


def main() -> None:
    root, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Handler, directory=root))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("serving", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
