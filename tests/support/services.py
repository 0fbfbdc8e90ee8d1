"""Real Mosquitto and PostgreSQL for integration tests, started on free ports in temp folders."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def kill_process(process: subprocess.Popen[bytes]) -> None:
    """kill -9, as a power cut or the OOM killer would."""
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it does not stop in time."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_process(process)


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


@dataclass
class Mosquitto:
    """A Mosquitto on a free port with persistence in ``workdir``; can be killed and restarted."""

    workdir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        conf = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            "max_queued_messages 100000",
            "max_inflight_messages 1000",
            "set_tcp_nodelay true",
            f"log_dest file {self.workdir}/mosquitto.log",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)

    def kill(self) -> None:
        """kill -9: the broker loses what it had not saved."""
        if self.process is not None:
            kill_process(self.process)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[Mosquitto]:
    workdir.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(workdir, free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def postgres_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@dataclass
class Postgres:
    url: str
    port: int
    _count: int = 0

    def new_database(self) -> Postgres:
        """A fresh database in the same cluster (tests must not see each other's rows)."""
        import psycopg

        self._count += 1
        name = f"kioskmatch_{self._count}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return Postgres(url=self.url.rsplit("/", 1)[0] + f"/{name}", port=self.port)


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    """A throwaway cluster; as root it runs as the ``postgres`` user (initdb refuses root).

    Its folder is a fresh one under the system temp dir: pytest's own temp folders are private to
    root, and the ``postgres`` user could not reach into them.
    """
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    workdir = Path(tempfile.mkdtemp(prefix="kioskmatch-pg-"))
    data = workdir / "pgdata"
    sockdir = workdir / "pgsock"
    data.mkdir()
    sockdir.mkdir()
    port = free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
        shutil.chown(data, "postgres")
        shutil.chown(sockdir, "postgres")
        workdir.chmod(0o755)
        prefix = ["runuser", "-u", "postgres", "--"]

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True)

    run(str(bindir / "initdb"), "-A", "trust", "-U", "postgres", "-D", str(data))
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-w",
        "-t",
        "60",
        "-l",
        str(workdir / "pg.log"),
        "-o",
        f"-p {port} -k {sockdir} -c listen_addresses=127.0.0.1 -c fsync=off",
        "start",
    )
    try:
        run(
            str(bindir / "createdb"),
            "-h",
            str(sockdir),
            "-p",
            str(port),
            "-U",
            "postgres",
            "kioskmatch",
        )
        yield Postgres(url=f"postgresql://postgres@127.0.0.1:{port}/kioskmatch", port=port)
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)  # ~140 MB per cluster, one per test session


class CuttableProxy:
    """A TCP forwarder to ``127.0.0.1:target`` whose connections a test can cut.

    Cutting closes both sockets without an MQTT DISCONNECT, as a pulled cable or a dead Wi-Fi
    would: the broker then publishes the client's last will. The proxy keeps listening, so the
    client reconnects through it.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="proxy", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self._open += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every connection through the proxy, abruptly."""
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._listener.close()
        self.cut()
