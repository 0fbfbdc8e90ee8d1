"""The gateway and simulated kiosks as separate processes, so tests can kill -9 them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.services import free_port, kill_process, stop_process

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSKMATCH_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def kioskmatch(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kioskmatch", *args],
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class GatewayProcess:
    data_dir: Path
    mqtt_url: str
    database_url: str | None = None
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        extra = {
            "KIOSKMATCH_MQTT_URL": self.mqtt_url,
            "KIOSKMATCH_DATA_DIR": str(self.data_dir),
            "KIOSKMATCH_HTTP_PORT": str(self.port),
            "KIOSKMATCH_WORKER_ID": "fault",
        }
        if self.database_url:
            extra["KIOSKMATCH_DATABASE_URL"] = self.database_url
        return _env(**{**extra, **self.extra_env})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "gateway.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kioskmatch", "gateway", "serve"],
            env=self.env,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the gateway exited with {self.process.returncode}; "
                    f"see {self.data_dir}/gateway.log"
                )
            try:
                if httpx.get(self.url + "/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError("the gateway did not become healthy")

    def kill(self) -> None:
        if self.process is not None:
            kill_process(self.process)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def create_key(self, role: str, org: str) -> str:
        result = kioskmatch("gateway", "create-key", "--role", role, "--org", org, env=self.env)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]


def start_simulation(
    broker: str,
    outbox_dir: Path,
    *,
    kiosks: int,
    appraisals: int,
    rate: float = 0.0,
    log_name: str = "sim.log",
) -> subprocess.Popen[bytes]:
    outbox_dir.mkdir(parents=True, exist_ok=True)
    log = (outbox_dir / log_name).open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kioskmatch",
            "simulate",
            "--broker",
            broker,
            "--kiosks",
            str(kiosks),
            "--appraisals",
            str(appraisals),
            "--outbox-dir",
            str(outbox_dir),
            "--rate",
            str(rate),
            "--resend-after",
            "2",
            "--fast-valuation",
            "--timeout",
            "180",
        ],
        env=_env(),
        stdout=log,
        stderr=log,
    )
    log.close()
    return proc
