import pytest


@pytest.fixture(scope="session")
def minion(local_minion):
    return local_minion
