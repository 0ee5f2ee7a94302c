"""A TLS-terminating TCP forwarder for the sink's TLS tests (standard library only).

Usage: tls_forward.py CERT KEY UPSTREAM_HOST:PORT [CLIENT_CA]

Listens on 127.0.0.1 (a free port), prints {"port": N} as one JSON line, then for every
connection completes a TLS handshake with CERT/KEY (requiring a client certificate signed by
CLIENT_CA when given) and pipes the plaintext to UPSTREAM both ways. Each failed handshake is
printed as {"handshake_error": "..."}. Exits when its stdin closes (the test process died).
"""
import json
import os
import socket
import ssl
import sys
import threading


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(conn, ctx, upstream):
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError) as e:
        print(json.dumps({"handshake_error": str(e)}), flush=True)
        conn.close()
        return
    try:
        up = socket.create_connection(upstream)
    except OSError:
        tls.close()
        return
    threading.Thread(target=pump, args=(tls, up), daemon=True).start()
    pump(up, tls)


def main():
    cert, key, upstream = sys.argv[1], sys.argv[2], sys.argv[3]
    host, port = upstream.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if len(sys.argv) > 4:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(sys.argv[4])
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    print(json.dumps({"port": srv.getsockname()[1]}), flush=True)

    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, ctx, (host, int(port))), daemon=True).start()


if __name__ == "__main__":
    main()
