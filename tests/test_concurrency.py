"""Two users annotating at once, through the running app (two gradio_client sessions): each gets its
own project, and neither sees nor overwrites the other's work while both load and edit concurrently."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from _app_helpers import one_face, open_item, shared_app, tiny_photo
from facelm.annotation_store import Project

EDITS = 12


def _edit(item: str, revision: int, x: float) -> dict:
    return {"item": item, "revision": revision, "dirty": True, "faces": one_face(x)}


def _run_concurrently(*fns):
    errors: list[BaseException] = []

    def wrap(fn):
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=wrap, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)


@pytest.mark.slow
def test_two_users_never_see_or_overwrite_each_others_work(tmp_path: Path) -> None:
    from gradio_client import handle_file
    server = shared_app()
    users = {"alice": {"base": 1000.0}, "bob": {"base": 2000.0}}
    for k, (name, u) in enumerate(users.items()):
        u["client"] = server.client()
        u["photos"] = [tiny_photo(tmp_path / f"{name}_{i}.png", seed=10 * k + i) for i in range(2)]

    # Both press "New project" and "Load" at the same moment.
    def load(u):
        def go():
            pid = u["client"].predict(api_name="/new_project")[0]
            out = u["client"].predict(pid, [handle_file(str(p)) for p in u["photos"]], "", 2, "prediction", "",
                                      api_name="/annotate_load")
            u["project"], u["value"], u["queue"] = out[0], out[1], out[2]
            assert u["project"] == pid
        return go
    _run_concurrently(*(load(u) for u in users.values()))
    alice, bob = users["alice"], users["bob"]
    assert alice["project"] != bob["project"]
    for name, u in users.items():
        # Each sees exactly their own photos, nobody else's.
        assert sorted(row[1] for row in u["queue"]["data"]) == sorted(p.name for p in u["photos"]), name
        u["items"] = [row[0] for row in u["queue"]["data"]]

    # Both edit the same item numbers ("0001", "0002": each project numbers its own) at the same time.
    def edit(u):
        def go():
            for n in range(EDITS):
                item = u["items"][n % 2]
                u["last"] = {**u.get("last", {}), item: u["base"] + n}
                api = "/annotate_next" if n % 4 == 3 else "/save_edit"
                revision = open_item(u["client"], u["project"], item)
                md = u["client"].predict(u["project"], _edit(item, revision, u["base"] + n), api_name=api)[2]
                assert "Not saved" not in md, md
        return go
    _run_concurrently(*(edit(u) for u in users.values()))
    assert sorted(alice["items"]) == sorted(bob["items"]) == ["0001", "0002"]

    for name, u in users.items():
        proj = Project.open(server.annotations, u["project"])
        for item in u["items"]:
            saved = proj.get(item).faces[0]["points"]
            assert {tuple(p) for p in saved} == {(u["last"][item], u["last"][item] + 0.5)}, (name, item)
        # What the app shows each user on resume is their own work.
        resumed = u["client"].predict(u["project"], api_name="/annotate_resume")
        assert sorted(row[1] for row in resumed[2]["data"]) == sorted(p.name for p in u["photos"])
        assert all(row[4] == "edited" for row in resumed[2]["data"])
        shown = resumed[1]
        assert shown["project"] == u["project"]
        assert shown["faces"][0]["points"][0][0] == u["last"][shown["item"]]
        u["client"].close()


@pytest.mark.slow
def test_blank_project_ids_are_distinct_even_at_the_same_moment(tmp_path: Path) -> None:
    from gradio_client import handle_file
    server = shared_app()
    clients = [server.client() for _ in range(2)]
    photos = [tiny_photo(tmp_path / f"p{i}.png", seed=i) for i in range(2)]
    ids: dict[str, str] = {}
    # Load with an empty project box: the app makes up an id for each, in the same second.
    _run_concurrently(*(lambda c=c, p=p: ids.setdefault(p.name, c.predict("", [handle_file(str(p))], "", 1,
                                                                          "prediction", "", api_name="/annotate_load")[0])
                        for c, p in zip(clients, photos)))
    assert len(set(ids.values())) == 2
    for name, pid in ids.items():
        assert [it.name for it in Project.open(server.annotations, pid).items()] == [name]
    for c in clients:
        c.close()
