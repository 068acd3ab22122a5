"""Clients that never lose an acknowledged change (yolz_ros/ros/client.py).

rmw_fastrtps drops a service answer when the server's response writer has not yet matched the
client's reader: the change is made, the client never hears so. The client reconciles with
~/list_objects and reports the library's true state.

1. The logic over a scripted transport (no DDS): every branch -- answer lost, request lost,
   slow node, refused resend, unsafe resend, no listing -- made to happen on purpose.
2. Real DDS, the node as its own process (tiny model): answers dropped on arrival by a transport
   double (the node really carries the request out), through the Python client and the CLIs.
3. The real race: cold node starts with several fresh CLI processes firing their first call as
   soon as the node's services appear; every exit code and message must match the final library.
"""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import rclpy.task

import node_harness as harness
from node_harness import NODE, object_views, start_node, stop_node, wait_ready
from yolz_ros.cli import common
from yolz_ros.cli import register as register_cli
from yolz_ros.cli import remove_object as remove_cli
from yolz_ros.ros import client as client_mod
from yolz_ros.ros.client import RosTransport, YolzClient
from yolz_ros.srv import (AddViews, ListObjects, RegisterFromCamera, RegisterObject,
                          RemoveObject)


# ------------------------------------------------------------------------------------------
# 1. the logic, over a scripted transport
class ScriptedNode:
    """A yolz node's library behind a transport with faults on purpose. ``faults[service]`` is a
    list consumed one per call: "ok", "lose_answer" (carried out, answer lost), "lose_request"
    (never carried out), "late" (answer lost; carried out only just before the next change request
is, as a node still busy with it would: a listing in between does not show it)."""

    def __init__(self, objects=None, faults=None):
        self.objects = dict(objects or {})  # name -> views
        self.negatives = {name: 0 for name in self.objects}  # name -> negative views
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.calls = []  # (service, fault)
        self.late = []
        self.listing_down = False
        self.closed = False

    # the transport interface
    def name(self, service):
        return f"/yolz/{service}"

    def wait_ready(self, services, timeout):
        pass

    def close(self):
        self.closed = True

    def call(self, service, request, timeout, changed=None):
        fault = self.faults.get(service, []).pop(0) if self.faults.get(service) else "ok"
        self.calls.append((service, fault))
        if service != "list_objects":  # a late request is done before the next change
            for run in self.late:
                run()
            self.late.clear()
        elif self.listing_down:
            return None
        if fault == "lose_request":
            return None
        if fault == "late":
            self.late.append(lambda: self.serve(service, request))
            return None
        answer = self.serve(service, request)
        if fault == "lose_answer":
            if changed is not None:
                changed()  # the client's look at the listing while it waits
            return None
        return answer

    # the node's behaviour
    def serve(self, service, request):
        names = lambda: list(self.objects)  # noqa: E731
        if service == "list_objects":
            return ListObjects.Response(success=True, message="", names=names(),
                                        num_views=list(self.objects.values()),
                                        num_negative_views=[self.negatives.get(n, 0)
                                                            for n in self.objects])
        if service == "register_object":
            if request.name in self.objects and not request.replace:
                return RegisterObject.Response(
                    success=False, names=names(),
                    message=f"object {request.name!r} already exists: set replace=true")
            self.objects[request.name] = len(request.views)
            self.negatives[request.name] = 0
            return RegisterObject.Response(success=True, names=names(),
                                           message=f"registered {request.name!r}",
                                           num_views_used=len(request.views))
        if service == "add_views":
            if request.name not in self.objects:
                return AddViews.Response(success=False, names=names(),
                                         message=f"no object named {request.name!r}")
            if request.negative:
                self.negatives[request.name] += len(request.views)
            else:
                self.objects[request.name] += len(request.views)
            return AddViews.Response(success=True, names=names(),
                                     message=f"added to {request.name!r}")
        if service == "remove_object":
            if request.name not in self.objects:
                return RemoveObject.Response(success=False, names=names(),
                                             message=f"no object named {request.name!r}")
            del self.objects[request.name]
            return RemoveObject.Response(success=True, names=names(),
                                         message=f"removed {request.name!r}")
        raise AssertionError(service)

    def sent(self, service):
        return [fault for s, fault in self.calls if s == service]


def views(n):
    return [harness.image_msg(v, "rgb8") for v in object_views(n, size=32)]


def register(node, name="mug", n=3, replace=False):
    return YolzClient(node).register(RegisterObject.Request(name=name, views=views(n),
                                                            replace=replace), timeout=5)


def test_answer_that_comes_is_the_outcome():
    node = ScriptedNode()
    outcome = register(node)
    assert outcome.success and not outcome.answer_lost and outcome.message == "registered 'mug'"
    assert node.objects == {"mug": 3} and node.sent("register_object") == ["ok"]
    assert node.sent("list_objects") == ["ok"]  # the listing before the call


def test_lost_answer_confirmed_by_the_listing():
    node = ScriptedNode(faults={"register_object": ["lose_answer"]})
    outcome = register(node)
    assert outcome.success and outcome.answer_lost and outcome.response is None
    assert outcome.message == ("registered 'mug' with 3 views (answer lost, confirmed by "
                               "list_objects)")
    assert outcome.names == ["mug"] and node.objects == {"mug": 3}
    assert node.sent("register_object") == ["lose_answer"]  # not sent again


def test_lost_request_is_sent_again():
    node = ScriptedNode(faults={"register_object": ["lose_request"]})
    outcome = register(node)
    assert outcome.success and outcome.resent and not outcome.answer_lost
    assert "sent a second time: no answer came to the first" in outcome.message
    assert node.objects == {"mug": 3}


def test_slow_node_resend_refused_as_existing_is_confirmed_not_a_failure():
    """The first request is carried out after the client gave up on it and after its listing:
    the resend is refused "already exists" -- for our own change, so the outcome is success."""
    node = ScriptedNode(faults={"register_object": ["late"]})
    outcome = register(node)
    assert node.sent("register_object") == ["late", "ok"]
    assert outcome.success and outcome.answer_lost and outcome.resent
    assert "(answer lost, confirmed by list_objects)" in outcome.message
    assert "already exists" not in outcome.message and node.objects == {"mug": 3}


def test_nothing_arrives_reports_not_registered():
    node = ScriptedNode(faults={"register_object": ["lose_request", "lose_request"]})
    outcome = register(node)
    assert not outcome.success and node.objects == {}
    assert outcome.message == ("not registered: no answer from /yolz/register_object within "
                               "5 s (sent twice), and list_objects does not list 'mug'")


def test_existing_object_is_a_true_refusal_even_after_a_lost_answer():
    for faults in ([], ["lose_answer"]):
        node = ScriptedNode({"mug": 3}, faults={"register_object": list(faults)})
        outcome = register(node, n=3)
        assert not outcome.success and "already exists" in outcome.message, faults
        assert node.objects == {"mug": 3}


def test_replace_with_an_unchanged_listing_is_sent_again():
    """Replacing 'mug' (3 views) by 3 other views: a listing cannot tell, so a lost answer means
    sending the (idempotent) replace again."""
    node = ScriptedNode({"mug": 3}, faults={"register_object": ["lose_answer"]})
    outcome = register(node, n=3, replace=True)
    assert outcome.success and outcome.resent and node.sent("register_object") == [
        "lose_answer", "ok"]


def test_replace_unknown_twice_is_reported_unknown():
    node = ScriptedNode({"mug": 3}, faults={"register_object": ["lose_answer", "lose_answer"]})
    outcome = register(node, n=3, replace=True)
    assert not outcome.success and outcome.message.startswith("outcome unknown:")
    assert "as before the call" in outcome.message


def test_remove_lost_answer_confirmed_and_unknown_name_refused():
    node = ScriptedNode({"mug": 3, "cup": 1}, faults={"remove_object": ["lose_answer"]})
    outcome = YolzClient(node).remove("mug", timeout=5)
    assert outcome.success and outcome.answer_lost and outcome.names == ["cup"]
    assert outcome.message == "removed 'mug' (answer lost, confirmed by list_objects)"
    outcome = YolzClient(node).remove("mug", timeout=5)
    assert not outcome.success and "no object named 'mug'" in outcome.message


def test_add_views_is_never_sent_twice():
    node = ScriptedNode({"mug": 2}, faults={"add_views": ["lose_answer"]})
    outcome = YolzClient(node).add_views(AddViews.Request(name="mug", views=views(2)), 5)
    assert outcome.success and outcome.answer_lost
    assert outcome.message.startswith("added 2 views to 'mug', now 4 views (answer lost")
    node = ScriptedNode({"mug": 2}, faults={"add_views": ["lose_request"]})
    outcome = YolzClient(node).add_views(AddViews.Request(name="mug", views=views(2)), 5)
    assert not outcome.success and node.sent("add_views") == ["lose_request"]
    assert outcome.message == ("no views added: no answer from /yolz/add_views within 5 s, and "
                               "list_objects lists 'mug' with 2 views")
    assert node.objects == {"mug": 2}


def test_negative_views_lost_answer_is_confirmed_by_their_count_never_sent_twice():
    """A negative add leaves the object's views as they are: its listing shows one more negative
    view, which is what a lost answer is checked against."""
    request = AddViews.Request(name="mug", views=views(1), negative=True)
    node = ScriptedNode({"mug": 2}, faults={"add_views": ["lose_answer"]})
    outcome = YolzClient(node).add_views(request, 5)
    assert outcome.success and outcome.answer_lost, outcome.message
    assert outcome.message == ("added 1 negative view to 'mug', now 1 negative view (answer "
                               "lost, confirmed by list_objects)")
    assert node.objects == {"mug": 2} and node.negatives == {"mug": 1}
    node = ScriptedNode({"mug": 2}, faults={"add_views": ["lose_request"]})
    outcome = YolzClient(node).add_views(request, 5)
    assert not outcome.success and node.sent("add_views") == ["lose_request"]
    assert outcome.message == ("no negative views added: no answer from /yolz/add_views within "
                               "5 s, and list_objects lists 'mug' with 2 views and 0 negative "
                               "views")
    assert node.negatives == {"mug": 0}


def test_register_from_camera_negative_expects_one_negative_view_more():
    node = ScriptedNode({"mug": 2}, faults={"register_from_camera": ["lose_answer"]})
    serve = node.serve

    def cut_one_negative(service, request):
        if service != "register_from_camera":
            return serve(service, request)
        node.negatives[request.name] += 1
        return RegisterFromCamera.Response(success=True, message="ok", names=list(node.objects))
    node.serve = cut_one_negative
    outcome = YolzClient(node).register_from_camera(
        RegisterFromCamera.Request(name="mug", negative=True), 5)
    assert outcome.success and outcome.answer_lost, outcome.message
    assert outcome.message.startswith("added 1 negative view to 'mug', now 1 negative view (")
    assert node.sent("register_from_camera") == ["lose_answer"]


def test_register_from_camera_expects_one_view_or_one_more():
    node = ScriptedNode({"mug": 2}, faults={"register_from_camera": ["lose_answer"] * 2})
    serve = node.serve

    def cut_one_view(service, request):  # the node cuts one view from its camera's frame
        if service != "register_from_camera":
            return serve(service, request)
        if request.append:
            node.objects[request.name] += 1
        else:
            node.objects[request.name] = 1
        return RegisterFromCamera.Response(success=True, message="ok", names=list(node.objects))
    node.serve = cut_one_view
    outcome = YolzClient(node).register_from_camera(
        RegisterFromCamera.Request(name="mug", append=True), 5)
    assert outcome.success and "now 3 views (answer lost" in outcome.message
    outcome = YolzClient(node).register_from_camera(
        RegisterFromCamera.Request(name="cup"), 5)
    assert outcome.success and outcome.message.startswith("registered 'cup' with 1 view (")


def test_no_listing_at_all_is_unknown_not_failure():
    node = ScriptedNode(faults={"register_object": ["lose_request"] * 2})
    client = YolzClient(node)
    real_call = node.call

    def call(service, request, timeout, changed=None):
        node.listing_down = service == "register_object" or node.listing_down
        return real_call(service, request, timeout, changed)
    node.call = call
    outcome = client.register(RegisterObject.Request(name="mug", views=views(1)), timeout=0.2)
    assert not outcome.success and outcome.message.startswith("outcome unknown:")
    assert "none from list_objects either" in outcome.message


def test_reads_are_asked_again(monkeypatch):
    monkeypatch.setattr(client_mod, "READ_TRY_S", 0.01)
    node = ScriptedNode({"mug": 1}, faults={"list_objects": ["lose_answer", "lose_request"]})
    listing = YolzClient(node).list_objects(timeout=5)
    assert list(listing.names) == ["mug"] and node.sent("list_objects") == [
        "lose_answer", "lose_request", "ok"]
    node = ScriptedNode({"mug": 1})
    node.listing_down = True
    with pytest.raises(TimeoutError, match="no answer from /yolz/list_objects within 0.1 s"):
        YolzClient(node).list_objects(timeout=0.1)


@pytest.mark.parametrize("faults, code, fragment, stored", [
    ([], 0, "ok: registered 'mug'", True),
    (["lose_answer"], 0, "ok: registered 'mug' with 2 views (answer lost, confirmed", True),
    (["late"], 0, "(answer lost, confirmed by list_objects)", True),
    (["lose_request", "lose_request"], 1, "failed: not registered: no answer", False),
])
def test_register_cli_exit_code_matches_the_library(tmp_path, monkeypatch, capsys, faults,
                                                    code, fragment, stored):
    paths = []
    for i, view in enumerate(object_views(2, size=32)):
        paths.append(str(tmp_path / f"v{i}.png"))
        cv2.imwrite(paths[-1], view)
    node = ScriptedNode(faults={"register_object": faults})
    monkeypatch.setattr(common, "connect", lambda node_name, client_name: YolzClient(node))
    assert register_cli.main(["mug", *paths]) == code
    out = capsys.readouterr().out
    assert fragment in out, out
    assert ("mug" in node.objects) == stored and node.closed


def test_register_cli_negative_and_append_add_to_the_object(tmp_path, monkeypatch, capsys):
    from yolz_ros.cli import list_objects as list_cli
    path = str(tmp_path / "v.png")
    cv2.imwrite(path, object_views(1, size=32)[0])
    node = ScriptedNode({"mug": 2}, faults={"add_views": ["lose_answer"]})
    monkeypatch.setattr(common, "connect", lambda node_name, client_name: YolzClient(node))
    assert register_cli.main(["mug", path, "--negative"]) == 0
    out = capsys.readouterr().out
    assert "ok: added 1 negative view to 'mug', now 1 negative view (answer lost" in out, out
    assert node.objects == {"mug": 2} and node.negatives == {"mug": 1}
    assert node.sent("register_object") == [] and node.sent("add_views") == ["lose_answer"]
    assert register_cli.main(["mug", path, "--append"]) == 0
    assert node.objects == {"mug": 3} and node.negatives == {"mug": 1}
    capsys.readouterr()
    assert list_cli.main([]) == 0
    assert "  mug  (3 views, 1 negative view)" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse: not allowed with
        register_cli.main(["mug", path, "--negative", "--replace"])
    assert register_cli.main(["cup", path, "--negative"]) == 1
    assert "failed: no object named 'cup'" in capsys.readouterr().out


def test_remove_cli_after_a_lost_answer(monkeypatch, capsys):
    node = ScriptedNode({"mug": 2}, faults={"remove_object": ["lose_answer"]})
    monkeypatch.setattr(common, "connect", lambda node_name, client_name: YolzClient(node))
    assert remove_cli.main(["mug"]) == 0
    out = capsys.readouterr().out
    assert out == ("ok: removed 'mug' (answer lost, confirmed by list_objects)\n"
                   "registered objects: (none)\n")


# ------------------------------------------------------------------------------------------
# 2. real DDS, answers dropped on purpose by a transport double
class DropAnswers(RosTransport):
    """The ROS transport with faults: for ``lose_answer[service]`` calls the request goes out
    and the node carries it out, but its answer is thrown away (a future that never completes
    stands in; the real one is kept in ``dropped`` to show the node did answer); for
    ``lose_request[service]`` calls the request is not sent at all."""

    def __init__(self, *args, lose_answer=None, lose_request=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lose_answer, self.lose_request = dict(lose_answer or {}), dict(lose_request or {})
        self.dropped = []

    def _send(self, client, request):
        service = client.service_name.rsplit("/", 1)[-1]
        if self.lose_request.get(service, 0) > 0:
            self.lose_request[service] -= 1
            return rclpy.task.Future()
        future = super()._send(client, request)
        if self.lose_answer.get(service, 0) > 0:
            self.lose_answer[service] -= 1
            self.dropped.append(future)
            return rclpy.task.Future()
        return future


@pytest.fixture(scope="class")
def node(ros, tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clients")
    proc = start_node(tiny_model, tmp / "library", tmp / "node.log")
    wait_ready(ros, proc)
    yield proc
    stop_node(proc)  # before the race below starts nodes of the same name


def stored(ros):
    listing = harness.list_objects(ros)
    return dict(zip(listing.names, listing.num_views))


def dropping(**faults):
    return YolzClient(DropAnswers(NODE, "yolz_test_drop", args=[], **faults))


class TestDroppedAnswers:
    """The node (tiny model) answers; the transport double drops what the test says."""

    def test_dds_lost_register_answer_is_confirmed_quickly(self, ros, node):
        with dropping(lose_answer={"register_object": 1}) as yolz:
            start = time.monotonic()
            outcome = yolz.register(RegisterObject.Request(name="dropped", views=views(3)), 20)
            took = time.monotonic() - start
            transport = yolz.transport
            (real,) = transport.dropped
            assert real.done() and real.result().success  # the node did answer; we threw it away
        assert outcome.success and outcome.answer_lost, outcome.message
        assert outcome.message == ("registered 'dropped' with 3 views (answer lost, confirmed by "
                                   "list_objects)")
        assert stored(ros)["dropped"] == 3
        assert took < 10, took  # seen in the listing, not waited out for the full 20 s
        assert transport.unanswered == ["register_object"]


    def test_dds_lost_request_is_sent_again(self, ros, node):
        with dropping(lose_request={"register_object": 1}) as yolz:
            outcome = yolz.register(RegisterObject.Request(name="resent", views=views(2)), 3)
        assert outcome.success and outcome.resent and not outcome.answer_lost, outcome.message
        assert outcome.message.startswith("registered 'resent'")
        assert stored(ros)["resent"] == 2


    def test_dds_lost_remove_answer_is_confirmed(self, ros, node):
        assert harness.register(ros, "gone", object_views(2, size=32)).success
        with dropping(lose_answer={"remove_object": 1}) as yolz:
            outcome = yolz.remove("gone", 20)
        assert outcome.success and outcome.message == ("removed 'gone' (answer lost, confirmed by "
                                                       "list_objects)")
        assert "gone" not in stored(ros)


    def test_dds_lost_list_answer_is_asked_again(self, ros, node, monkeypatch):
        monkeypatch.setattr(client_mod, "READ_TRY_S", 0.5)
        with dropping(lose_answer={"list_objects": 2}) as yolz:
            listing = yolz.list_objects(10)
            assert len(yolz.transport.dropped) == 2
        assert set(listing.names) == set(stored(ros))


    def test_dds_clis_report_the_true_outcome(self, ros, node, tmp_path, monkeypatch, capsys):
        """The CLIs over real DDS with their answers dropped: exit code and message match the
        library; a genuine duplicate is still refused."""
        paths = []
        for i, view in enumerate(object_views(3, seed=4, size=48)):
            paths.append(str(tmp_path / f"v{i}.png"))
            cv2.imwrite(paths[-1], cv2.cvtColor(view, cv2.COLOR_RGB2BGR))
        faults = {"lose_answer": {"register_object": 1, "remove_object": 1}}
        monkeypatch.setattr(common, "connect", lambda node_name, client_name: dropping(**faults))
        assert register_cli.main(["cli_lost", *paths, "--node", NODE]) == 0
        out = capsys.readouterr().out
        assert ("ok: registered 'cli_lost' with 3 views (answer lost, confirmed by "
                "list_objects)") in out
        assert stored(ros)["cli_lost"] == 3
        monkeypatch.setattr(common, "connect", lambda node_name, client_name: dropping())
        assert register_cli.main(["cli_lost", paths[0], "--node", NODE]) == 1  # a true refusal
        assert "failed: " in capsys.readouterr().out and stored(ros)["cli_lost"] == 3
        monkeypatch.setattr(common, "connect", lambda node_name, client_name: dropping(**faults))
        assert remove_cli.main(["cli_lost", "--node", NODE]) == 0
        assert "ok: removed 'cli_lost' (answer lost" in capsys.readouterr().out
        assert "cli_lost" not in stored(ros)


# ------------------------------------------------------------------------------------------
# 3. the real race: first calls from fresh processes as the node's services appear
RACE_STARTS = int(os.environ.get("YOLZ_RACE_STARTS", "2"))
RACE_CLIENTS = int(os.environ.get("YOLZ_RACE_CLIENTS", "8"))


def test_race_first_calls_at_cold_start_report_the_true_outcome(ros, tiny_model, tmp_path):
    """Cold node starts; per start RACE_CLIENTS `register` processes, half started before the
    node (they wait for its services and call the moment they appear), half right after it,
    half of all without the settle (YOLZ_SERVICE_SETTLE=0). Each exit code and message must
    match the library the node holds afterwards; lost answers are counted, not required (they
    are rare: the deterministic cases are above)."""
    paths = []
    for i, view in enumerate(object_views(8, seed=5, size=64)):
        paths.append(str(tmp_path / f"v{i}.png"))
        cv2.imwrite(paths[-1], cv2.cvtColor(view, cv2.COLOR_RGB2BGR))
    totals = {"calls": 0, "ok": 0, "failed": 0, "answer_lost": 0, "resent": 0,
              "unanswered_reads": 0, "unanswered_changes": 0, "server_send_failures": 0}
    for start in range(RACE_STARTS):
        clients = []

        def launch(k):
            env = os.environ.copy()
            if k % 2:
                env["YOLZ_SERVICE_SETTLE"] = "0"
            cmd = [sys.executable, "-m", "yolz_ros.cli.register", f"race{start}_{k}", *paths,
                   "--node", NODE, "--timeout", "30"]
            clients.append((f"race{start}_{k}", subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                cwd=harness.ROOT)))
        for k in range(RACE_CLIENTS // 2):
            launch(k)
        time.sleep(3.0)  # the first half is up and waiting for the node's services
        proc = start_node(tiny_model, tmp_path / f"library{start}", tmp_path / f"node{start}.log")
        for k in range(RACE_CLIENTS // 2, RACE_CLIENTS):
            launch(k)
        try:
            results = []
            for name, p in clients:
                out, err = p.communicate(timeout=150)
                results.append((name, p.returncode, out, err))
            wait_ready(ros, proc)
            library = stored(ros)
        finally:
            stop_node(proc)
        log = Path(proc.log_path).read_text()
        totals["server_send_failures"] += log.count("failed to send response")
        for name, code, out, err in results:
            totals["calls"] += 1
            totals["unanswered_reads"] += err.count("; asking again")
            totals["unanswered_changes"] += err.count("; checking list_objects")
            in_library = library.get(name) == len(paths)
            assert (code == 0) == in_library, (name, code, library, out, err)
            if code == 0:
                totals["ok"] += 1
                assert out.startswith("ok: "), out
                totals["answer_lost"] += "(answer lost, confirmed by list_objects)" in out
                totals["resent"] += "sent a second time" in out
            else:
                totals["failed"] += 1
                assert re.match(r"(failed|error): ", out), out
    print(f"\nrace: {RACE_STARTS} cold starts x {RACE_CLIENTS} clients: {totals}")
    assert totals["calls"] == RACE_STARTS * RACE_CLIENTS
    # every request was a new name: the node can have refused none of them
    assert totals["ok"] == totals["calls"], totals
