"""With progress bars off, a long run still says what it finished: the heartbeat prints one UTC-stamped line
per finished chunk on stderr, in worker processes too; without it nothing extra is printed, and it never
outlives its block (``--no-progress`` turns it on: tests/commands/test_attack_cli.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path


from advwsl.attacks import run_attack
from advwsl.logs import LOGGER, heartbeat, heartbeat_enabled
from advwsl.workers import process_pool

sys.path.insert(0, str(Path(__file__).parent))
from linear_models import central_inputs, linear_model  # noqa: E402

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def _attack(tmp_path=None):
    model = linear_model(3, (3, 8, 8))
    x = central_inputs(10, (3, 8, 8))
    y = model(x).argmax(1)
    return run_attack(model, x, y, attack="ddn", attack_kwargs={"steps": 5}, batch_size=4, progress=False, levels=None,
                      checkpoint=tmp_path)


def test_one_line_per_finished_chunk_only_while_on(capsys, tmp_path):
    _attack()
    assert capsys.readouterr().err == ""  # off by default: a library call prints nothing
    with heartbeat():
        assert heartbeat_enabled()
        _attack(tmp_path / "chunks")
    lines = capsys.readouterr().err.splitlines()
    assert [re.sub(r"in \d+ s", "in N s", line.split(" ", 1)[1]) for line in lines] == [
        "DDN 5: 4 of 10 records done (the last 4 in N s)", "DDN 5: 8 of 10 records done (the last 4 in N s)",
        "DDN 5: 10 of 10 records done (the last 2 in N s)"]
    assert all(re.match(STAMP + " ", line) for line in lines)
    assert not heartbeat_enabled() and LOGGER.level == 0 and LOGGER.propagate
    with heartbeat():
        _attack(tmp_path / "chunks")  # every chunk read back: nothing was attacked, nothing to say
    assert capsys.readouterr().err == ""


def _log_in_worker(text: str) -> None:
    LOGGER.info(text)


def test_spawned_workers_print_theirs_when_the_parent_does(capfd):
    with heartbeat(), process_pool(1) as pool:
        pool.submit(_log_in_worker, "from the worker").result()
    with process_pool(1) as pool:
        pool.submit(_log_in_worker, "unheard").result()
    err = capfd.readouterr().err
    assert re.search(STAMP + " from the worker", err) and "unheard" not in err
