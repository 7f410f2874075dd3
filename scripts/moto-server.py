#!/usr/bin/env python3
"""moto's server for Tributary's tests and local stack, with the requests AWS runs atomically serialised.

moto's TransactWriteItems snapshots each table it touches (a deep copy) and restores the snapshot
when a condition fails, so a write made by a concurrent request in between is lost, and the copy
itself can fail ("dictionary changed size during iteration", answered as an HTML 500). Real
DynamoDB isolates transactions from other writes. Serialising the DynamoDB requests, and only
those, gives moto that isolation.

moto's S3 answers a conditional put (`If-None-Match: *`, how delta-rs commits a log entry) by
checking that the key is absent and then writing it, without a lock: two writers racing for the
same table version can both succeed, and one commit silently replaces the other. Real S3 lets
exactly one win. Conditional S3 writes are serialised for the same reason. Every other request
keeps moto's threaded server.

moto's S3 stores any amount of user metadata; real S3 refuses a PUT whose `x-amz-meta-*` names and
values pass 2 KB (400 MetadataTooLarge). The same refusal is made here, so that a test on the local
stack fails where S3 would.

Usage: moto-server.py -H 127.0.0.1 -p 5000   (the same flags as moto_server)
"""

import argparse
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


S3_MAX_METADATA_BYTES = 2048


def metadata_bytes(environ) -> int:
    """UTF-8 bytes of the user metadata of a request: names (without `x-amz-meta-`) and values."""
    total = 0
    for key, value in environ.items():
        if key.startswith("HTTP_X_AMZ_META_"):
            name = key[len("HTTP_X_AMZ_META_"):]
            total += len(name.encode()) + len(value.encode("latin-1", "replace"))
    return total


class SerialisedAtomicRequests:
    """WSGI middleware: one DynamoDB request at a time (its JSON protocol names the target), and
    one conditional S3 write at a time."""

    def __init__(self, app):
        self.app = app
        self.dynamodb = threading.Lock()
        self.conditional_puts = threading.Lock()

    def lock_for(self, environ):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self.dynamodb
        if environ.get("REQUEST_METHOD") == "PUT" and (
            "HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ
        ):
            return self.conditional_puts
        return None

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") == "PUT" and metadata_bytes(environ) > S3_MAX_METADATA_BYTES:
            body = (
                b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>MetadataTooLarge</Code>'
                b"<Message>Your metadata headers exceed the maximum allowed metadata size.</Message></Error>"
            )
            start_response("400 Bad Request", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
            return [body]
        lock = self.lock_for(environ)
        if lock is None:
            return self.app(environ, start_response)
        with lock:
            # The body is produced inside the lock: moto computes it eagerly, but be sure.
            return list(self.app(environ, start_response))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, SerialisedAtomicRequests(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
