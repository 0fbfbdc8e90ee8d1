from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import Mosquitto, Postgres, mosquitto, postgres


@pytest.fixture(scope="session")
def mosquitto_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    with mosquitto(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Postgres]:
    with postgres() as pg:
        yield pg


@pytest.fixture
def postgres_db(postgres_cluster: Postgres) -> Postgres:
    """A new, empty database of the test's own in the session's cluster."""
    return postgres_cluster.new_database()


@pytest.fixture
def fresh_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of the test's own, for tests that kill or restart it."""
    with mosquitto(tmp_path / "mosq") as broker:
        yield broker
