import pytest

from tests.analysis.tiny_sweep import tiny_sweep


@pytest.fixture(scope="session")
def sweep_root(tmp_path_factory):
    return tiny_sweep(tmp_path_factory)
