#!/usr/bin/env python3
"""Holds UDP sockets open and runs a command with them, as systemd socket activation does.

Usage: socket_holder.py HOST:PORT [[HOST6]:PORT ...] -- COMMAND [ARG ...]

The sockets are bound here, with a 4 MiB receive buffer (as wg-bridge.socket asks), and passed
to COMMAND as fds 3, 4, ... with LISTEN_FDS and LISTEN_PID set (sd_listen_fds(3)). SIGUSR1
stops COMMAND (SIGTERM) and starts it again while the sockets stay open, which is what
`systemctl restart` does with a socket unit; SIGTERM or SIGINT stops it and exits. Used by the
tests only; systemd plays this part in production.
"""

import os
import signal
import socket
import subprocess
import sys

BUFFER = 4 << 20
SIGNALS = {signal.SIGUSR1, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}


def bind(text):
    host, _, port = text.rpartition(":")
    family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, BUFFER)  # SO_RCVBUFFORCE (root)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    s.bind((host.strip("[]"), int(port)))
    return s


def main():
    split = sys.argv.index("--")
    sockets = [bind(a) for a in sys.argv[1:split]]
    command = sys.argv[split + 1:]
    # Move the sockets to 3, 4, ... (through high numbers, so none is closed by a dup2 onto it).
    high = [os.dup(s.fileno()) for s in sockets]
    for s in sockets:
        s.close()
    fds = []
    for i, fd in enumerate(high):
        os.dup2(fd, 3 + i)
        os.close(fd)
        fds.append(3 + i)
    launcher = ['sh', '-c', f'LISTEN_PID=$$ LISTEN_FDS={len(fds)} exec "$@"', 'sh'] + command
    env = {k: v for k, v in os.environ.items() if k not in ("LISTEN_PID", "LISTEN_FDS")}

    def start():
        return subprocess.Popen(
            launcher, pass_fds=fds, env=env,
            preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS))

    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    child = start()
    while True:
        sig = signal.sigwait(SIGNALS)
        if sig == signal.SIGUSR1:
            child.terminate()
            child.wait()
            print("socket_holder: restarting", file=sys.stderr, flush=True)
            child = start()
        elif sig in (signal.SIGTERM, signal.SIGINT):
            child.terminate()
            sys.exit(child.wait())
        elif child.poll() is not None:
            sys.exit(child.returncode)


main()
