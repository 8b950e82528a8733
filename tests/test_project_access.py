"""Project ids on a shared app: app-made ids are unguessable, typed names are refused there, and a
client naming projects that do not exist is made to wait, without holding up anyone else."""
from __future__ import annotations

import re

import pytest

from facelm.annotation_store import ProjectError, new_project_id
from facelm.project_access import APP_ID_RE, ResumeThrottle, check_typed_id


def test_app_ids_carry_96_random_bits():
    ids = {new_project_id() for _ in range(200)}
    assert len(ids) == 200
    for pid in ids:
        assert APP_ID_RE.fullmatch(pid)
        assert len(re.fullmatch(r"\d{8}-\d{6}-([0-9a-f]+)", pid).group(1)) * 4 >= 96


def test_typed_names_only_off_a_shared_app():
    assert check_typed_id("my-faces", restricted=False) == "my-faces"
    with pytest.raises(ProjectError, match="names you type are not allowed"):
        check_typed_id("my-faces", restricted=True)
    pid = new_project_id()
    assert check_typed_id(pid, restricted=True) == pid
    with pytest.raises(ProjectError, match="project name"):
        check_typed_id("../x", restricted=False)


def test_failed_resumes_back_off_per_client():
    now = [100.0]
    throttle = ResumeThrottle(free=2, base=1.0, cap=8.0, clock=lambda: now[0])
    for _ in range(2):  # the first failures are free (a typo)
        throttle.check("a")
        throttle.failed("a")
    throttle.check("a")
    waits = []
    for _ in range(5):
        throttle.failed("a")
        with pytest.raises(ProjectError, match="wait"):
            throttle.check("a")
        throttle.check("b")  # another client is not held up
        waited = 0.0
        while True:
            try:
                throttle.check("a")
                break
            except ProjectError:
                now[0] += 0.5
                waited += 0.5
        waits.append(waited)
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]  # doubling, capped
    throttle.succeeded("a")
    throttle.check("a")
