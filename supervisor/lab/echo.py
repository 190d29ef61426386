"""A tiny TCP service for the lab: answers every connection with this host's name.

Stands in for "the application behind the LoadBalancer IP" in the demo, the
failover tests and the failover benchmark: the client learns from the reply
which node served it.

    python -m supervisor.lab.echo --name n1 --port 8080
"""

from __future__ import annotations

import argparse
import socket


def serve(name: str, port: int, host: str = "0.0.0.0") -> None:
    reply = f"{name}\n".encode()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, port))
        srv.listen(128)
        while True:
            conn, _ = srv.accept()
            with conn:
                try:
                    conn.sendall(reply)
                except OSError:
                    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    serve(args.name, args.port)


if __name__ == "__main__":
    main()
