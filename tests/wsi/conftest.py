from __future__ import annotations

import pytest
from slide_helpers import write_slides


@pytest.fixture(scope="session")
def slides(tmp_path_factory):
    return write_slides(tmp_path_factory.mktemp("slides"))
