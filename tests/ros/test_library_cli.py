"""`library export/import` (yolz_ros/cli/library.py) with the node's client replaced by a fake:
what is asked of the node, what is written and sent, the output and the exit codes. No DDS
traffic (the end-to-end run against a node lives with the node's tests)."""
import zipfile

import numpy as np
import pytest

from yolz_ros.runtime.archive import read_archive, write_archive
from yolz_ros.cli import common
from yolz_ros.cli import library as cli
from yolz_ros.ros.image_msgs import image_msg_to_view, view_to_image_msg
from yolz_ros.msg import ViewFeedback
from yolz_ros.ros.client import Outcome
from yolz_ros.srv import AddViews, GetObjectViews, RegisterObject


def views():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (10, 14, 3), dtype=np.uint8),
            rng.integers(0, 256, (12, 9, 4), dtype=np.uint8)]


class FakeService:
    """Stands in for the node's client (common.connect): records the calls (service name,
    request), answers with ``response`` (a change's as a client Outcome)."""

    def __init__(self, response=None, error=None):
        self.response, self.error, self.calls = response, error, []

    def __call__(self, node, client_name):
        self.node = node
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def _answer(self, service, request):
        self.calls.append((f"{self.node}/{service}", request))
        if self.error:
            raise self.error
        return self.response

    def get_object_views(self, name, timeout):
        return self._answer("get_object_views", GetObjectViews.Request(name=name))

    def register(self, request, timeout):
        response = self._answer("register_object", request)
        return Outcome(response.success, response.message, response, list(response.names))

    def add_views(self, request, timeout):
        response = self.add_views_response
        self.calls.append((f"{self.node}/add_views", request))
        return Outcome(response.success, response.message, response, list(response.names))


@pytest.fixture()
def fake(monkeypatch):
    def install(**kwargs):
        service = FakeService(**kwargs)
        monkeypatch.setattr(common, "connect", service)
        return service
    return install


def test_export_writes_the_nodes_views(tmp_path, fake, capsys):
    response = GetObjectViews.Response(success=True, model_id="yolz-v2", created="2025-01-01",
                                       views=[view_to_image_msg(v) for v in views()])
    service = fake(response=response)
    out = tmp_path / "mug.yolz"
    assert cli.main(["export", "mug", "-o", str(out), "--node", "/ns/yolz"]) == 0
    (name, request), = service.calls
    assert isinstance(request, GetObjectViews.Request) and name == "/ns/yolz/get_object_views"
    assert request.name == "mug"
    got = read_archive(out)
    assert (got.name, got.model_id, got.created) == ("mug", "yolz-v2", "2025-01-01")
    assert all(np.array_equal(a, b) for a, b in zip(got.views, views()))
    assert capsys.readouterr().out.startswith("ok: exported mug (2 views")


def test_export_refuses_existing_file_before_calling(tmp_path, fake, capsys):
    service = fake(response=None)
    out = tmp_path / "mug.yolz"
    out.write_bytes(b"old")
    assert cli.main(["export", "mug", "-o", str(out)]) == 1
    assert service.calls == [] and out.read_bytes() == b"old"
    assert "error: " in capsys.readouterr().out


def test_export_of_unknown_object_fails_cleanly(tmp_path, fake, capsys):
    fake(response=GetObjectViews.Response(success=False, message="unknown object 'cup'"))
    assert cli.main(["export", "cup", "-o", str(tmp_path / "cup.yolz")]) == 1
    assert capsys.readouterr().out == "error: unknown object 'cup'\n"
    assert not (tmp_path / "cup.yolz").exists()


def register_response(n):
    feedback = [ViewFeedback(index=i, used=True, agreement=0.9) for i in range(n)]
    return RegisterObject.Response(success=True, message="registered", num_views_used=n,
                                   view_feedback=feedback, names=["jar"])


@pytest.mark.parametrize("extra, name", [([], "mug"), (["--name", "jar"], "jar")])
def test_import_sends_the_archives_views(tmp_path, fake, capsys, extra, name):
    path = write_archive(tmp_path / "mug.yolz", "mug", views(), model_id="other-model")
    service = fake(response=register_response(2))
    assert cli.main(["import", str(path), "--replace", *extra]) == 0
    (service_name, request), = service.calls
    assert isinstance(request, RegisterObject.Request)
    assert service_name == "/yolz/register_object"
    assert request.name == name and request.replace
    assert [m.encoding for m in request.views] == ["rgb8", "rgba8"]
    assert all(np.array_equal(image_msg_to_view(m), v) for m, v in zip(request.views, views()))
    out = capsys.readouterr().out
    assert "ok: registered" in out and "view 1 views/view_001.png: used" in out


def test_import_of_a_bad_archive_exits_1_without_calling(tmp_path, fake, capsys):
    path = tmp_path / "bad.yolz"
    path.write_bytes(b"not a zip at all")
    service = fake(response=None)
    assert cli.main(["import", str(path)]) == 1
    assert service.calls == []
    assert capsys.readouterr().out.startswith("error: not a zip archive")


def test_import_with_bad_new_name_exits_1(tmp_path, fake, capsys):
    path = write_archive(tmp_path / "mug.yolz", "mug", views())
    service = fake(response=None)
    assert cli.main(["import", str(path), "--name", "no/slash"]) == 1
    assert service.calls == [] and "error: invalid object name" in capsys.readouterr().out


def test_import_of_an_archive_repacked_by_plain_zipfile(tmp_path, fake, capsys):
    """An archive re-packed member by member with Python's zipfile (modes 0o600, no file type)
    imports: the same views go to the node."""
    original = write_archive(tmp_path / "mug.yolz", "mug", views())
    copy = tmp_path / "copy.yolz"
    with zipfile.ZipFile(original) as src, zipfile.ZipFile(copy, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    service = fake(response=register_response(2))
    assert cli.main(["import", str(copy)]) == 0, capsys.readouterr().out
    (_, request), = service.calls
    assert request.name == "mug"
    assert all(np.array_equal(image_msg_to_view(m), v) for m, v in zip(request.views, views()))


def test_lost_answer_confirmed_by_the_listing_is_ok(tmp_path, fake, capsys, monkeypatch):
    path = write_archive(tmp_path / "mug.yolz", "mug", views())
    service = fake(response=register_response(2))
    monkeypatch.setattr(service, "register", lambda request, timeout: Outcome(
        True, "registered 'mug' with 2 views (answer lost, confirmed by list_objects)",
        None, ["mug"], answer_lost=True))
    assert cli.main(["import", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ok: registered 'mug' with 2 views (answer lost, confirmed by list_objects)" in out
    assert "registered objects: mug" in out


def test_timeout_is_an_error_line(tmp_path, fake, capsys):
    path = write_archive(tmp_path / "mug.yolz", "mug", views())
    fake(error=TimeoutError("service /yolz/register_object is not available"))
    assert cli.main(["import", str(path)]) == 1
    assert "error: service /yolz/register_object is not available" in capsys.readouterr().out


# -- negative views (look-alikes the object is not): carried by yolz-object/2 archives -----------
def negatives():
    rng = np.random.default_rng(8)
    return [rng.integers(0, 256, (11, 13, 3), dtype=np.uint8)]


def test_export_carries_the_negative_views(tmp_path, fake, capsys):
    response = GetObjectViews.Response(success=True, model_id="m", created="c",
                                       views=[view_to_image_msg(v) for v in views()],
                                       negative_views=[view_to_image_msg(v) for v in negatives()])
    fake(response=response)
    out = tmp_path / "mug.yolz"
    assert cli.main(["export", "mug", "-o", str(out)]) == 0
    got = read_archive(out)
    assert len(got.views) == 2 and len(got.negatives) == 1
    assert np.array_equal(got.negatives[0], negatives()[0])
    assert "ok: exported mug (2 views, 1 negative view," in capsys.readouterr().out


def test_import_registers_then_adds_the_negative_views(tmp_path, fake, capsys):
    path = write_archive(tmp_path / "mug.yolz", "mug", views(), negatives=negatives())
    service = fake(response=register_response(2))
    service.add_views_response = AddViews.Response(success=True, names=["mug"],
                                                   message="added 1 negative view to 'mug'",
                                                   num_views_used=2, num_negative_views=1)
    assert cli.main(["import", str(path), "--name", "cup"]) == 0
    (first, _), (second, more) = service.calls
    assert (first, second) == ("/yolz/register_object", "/yolz/add_views")
    assert isinstance(more, AddViews.Request) and more.negative and more.name == "cup"
    assert [image_msg_to_view(m).shape for m in more.views] == [negatives()[0].shape]
    out = capsys.readouterr().out
    assert "object mug, 2 views, 1 negative view" in out
    assert "negative views of the object: 1" in out


def test_import_whose_negatives_are_refused_exits_1_and_says_so(tmp_path, fake, capsys):
    path = write_archive(tmp_path / "mug.yolz", "mug", views(), negatives=negatives())
    service = fake(response=register_response(2))
    service.add_views_response = AddViews.Response(success=False, names=["mug"],
                                                   message="negative view 0 refused")
    assert cli.main(["import", str(path)]) == 1
    out = capsys.readouterr().out
    assert "ok: registered" in out
    assert "failed: negative view 0 refused ('mug' is registered without its negative views" in out


def test_import_without_negatives_sends_no_add_views(tmp_path, fake):
    path = write_archive(tmp_path / "mug.yolz", "mug", views())
    service = fake(response=register_response(2))
    assert cli.main(["import", str(path)]) == 0
    assert [name for name, _ in service.calls] == ["/yolz/register_object"]
