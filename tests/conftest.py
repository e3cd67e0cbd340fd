import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sim import firmware  # noqa: E402  (puts the sim board on sys.path)
from sim.mosquitto import Mosquitto, Subscriber  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_board():
    firmware.reset_board()
    yield
    firmware.reset_board()


@pytest.fixture(scope="session")
def broker():
    with Mosquitto(tls=True) as b:
        yield b


@pytest.fixture
def observer(broker):
    sub = Subscriber(broker)
    yield sub
    sub.close()
