"""Clients of the yolz node's services that never lose an acknowledged change.

The problem: with rmw_fastrtps a server sends an answer only once its response writer has matched
the client's response reader, and gives up after a short wait ("failed to send response
(timeout): client will not receive response"). A client whose first call goes out the moment
the service is discovered can have its request carried out and never hear so. Waiting longer
does not help, and sending a registration again is refused ("already exists"): a false failure.

The pattern (docs/service_clients.md):

1. Wait until the service is ready, then give discovery a moment (``settle``) so the server can
   match its response writer to our reader too.
2. Read the library first (~/list_objects, harmless to repeat): it proves the round trip and says
   what the change will look like in a listing.
3. Send the change and wait for the answer. While waiting, a change a listing can show (a new
   name, a name gone, more views or negative views) is looked for in the listing every
   POLL_S; once it shows, the answer gets GRACE_S more, then counts as lost.
4. No answer: list again. The change is there -> done ("answer lost, confirmed by
   list_objects"). Not there and sending again is safe (register, replace, remove: the same
   request cannot do more the second time) -> send it once more; a refusal of that resend is
   checked against the listing too, so "already exists" for our own change is no failure.
   Otherwise report what the listing shows ("not registered ..."), never a guess.

Plain use (its own rclpy context, so it works beside other rclpy code in the process):

    from yolz_ros.ros.client import connect
    from yolz_ros.srv import RegisterObject

    with connect("/yolz") as yolz:
        outcome = yolz.register(RegisterObject.Request(name="mug", views=views), timeout=30)
    print(outcome.success, outcome.message)   # the library's true state, answer or no answer

Reads (list_objects, get_object_views) are simply asked again when an answer does not come.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import rclpy
from rclpy.executors import SingleThreadedExecutor

from yolz_ros.srv import (AddViews, GetObjectViews, ListObjects, RegisterFromCamera,
                          RegisterObject, RemoveObject)

SETTLE_S = 0.5   # after a service is first ready: time for the server to match our reader
SETTLE_ENV = "YOLZ_SERVICE_SETTLE"  # overrides SETTLE_S (seconds)
POLL_S = 1.0     # while a change's answer is awaited: how often the library is listed
GRACE_S = 2.0    # once a listing shows the change: how long its answer may still take
READ_TRY_S = 3.0  # a read's first wait for its answer; doubled on each new try

SERVICES = {
    "list_objects": ListObjects,
    "get_object_views": GetObjectViews,
    "register_object": RegisterObject,
    "register_from_camera": RegisterFromCamera,
    "add_views": AddViews,
    "remove_object": RemoveObject,
}


def service_prefix(node: str) -> str:
    """'/yolz', 'yolz', '/ns/yolz/' -> the node's absolute name, where its services live."""
    node = node.rstrip("/") or "/yolz"
    return node if node.startswith("/") else "/" + node


def settle_seconds(settle: Optional[float] = None) -> float:
    if settle is not None:
        return max(0.0, float(settle))
    try:
        return max(0.0, float(os.environ.get(SETTLE_ENV, SETTLE_S)))
    except ValueError:
        return SETTLE_S


def _plural(n: int, word: str = "view") -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


# ------------------------------------------------------------------------------------------
# what a change does to the library, as ~/list_objects shows it
@dataclass(frozen=True)
class Change:
    """A change request's effect on a listing: object ``name`` with ``views`` views (None: the
    name gone) and, unless None, ``negatives`` negative views. ``visible``: the listing before
    the call differs from that, so a listing can tell whether it happened. ``resend_safe``:
    sending the request again cannot do more than the first did."""
    name: str
    views: Optional[int]
    visible: bool
    resend_safe: bool
    done_text: str      # "registered 'mug' with 8 views"
    not_done_text: str  # "not registered"
    negatives: Optional[int] = None

    def done(self, listing) -> bool:
        counts = _counts(listing)
        if self.views is None:
            return self.name not in counts
        if counts.get(self.name) != self.views:
            return False
        return self.negatives is None or _negatives(listing).get(self.name) == self.negatives

    def state(self, listing) -> str:
        counts = _counts(listing)
        if self.name not in counts:
            return f"list_objects does not list {self.name!r}"
        text = f"list_objects lists {self.name!r} with {_plural(counts[self.name])}"
        if self.negatives is not None:
            text += f" and {_plural(_negatives(listing)[self.name], 'negative view')}"
        return text


def _counts(listing) -> dict:
    return dict(zip(listing.names, (int(n) for n in listing.num_views)))


def _negatives(listing) -> dict:
    """{name: negative views} of a listing (0 each where the node sends no counts)."""
    negatives = list(getattr(listing, "num_negative_views", ()))
    if len(negatives) != len(listing.names):
        negatives = [0] * len(listing.names)
    return dict(zip(listing.names, (int(n) for n in negatives)))


def register_change(name: str, num_views: int, replace: bool, before) -> Change:
    """RegisterObject / RegisterFromCamera: ``name`` with ``num_views`` views afterwards (and
    no negative views: replacing an object drops its)."""
    had = _counts(before).get(name)
    had_negatives = _negatives(before).get(name, 0)
    verb = "replaced" if replace and had is not None else "registered"
    return Change(name, num_views, visible=(had, had_negatives) != (num_views, 0),
                  resend_safe=True, done_text=f"{verb} {name!r} with {_plural(num_views)}",
                  not_done_text="not registered", negatives=0)


def add_views_change(name: str, num_added: int, before) -> Change:
    """AddViews / RegisterFromCamera with append: ``num_added`` more views (not resend-safe)."""
    had = _counts(before).get(name)
    total = (had or 0) + num_added
    return Change(name, total, visible=had is not None, resend_safe=False,
                  done_text=f"added {_plural(num_added)} to {name!r}, now {_plural(total)}",
                  not_done_text="no views added")


def negatives_change(name: str, num_added: int, before) -> Change:
    """AddViews / RegisterFromCamera with negative: ``num_added`` more negative views, the
    object's views unchanged (not resend-safe: a second send would store them twice)."""
    had = _counts(before).get(name)
    total = _negatives(before).get(name, 0) + num_added
    return Change(name, had, visible=had is not None, resend_safe=False,
                  done_text=(f"added {_plural(num_added, 'negative view')} to {name!r}, now "
                             f"{_plural(total, 'negative view')}"),
                  not_done_text="no negative views added", negatives=total)


def remove_change(name: str, before) -> Change:
    return Change(name, None, visible=name in before.names, resend_safe=True,
                  done_text=f"removed {name!r}", not_done_text="not removed")


@dataclass
class Outcome:
    """The true result of a change request. ``response`` is the node's answer, None when it
    never came (then ``answer_lost`` and the listing decided); ``names`` the registered objects
    afterwards as far as known; ``resent``: the request went out a second time."""
    success: bool
    message: str
    response: object = None
    names: List[str] = field(default_factory=list)
    answer_lost: bool = False
    resent: bool = False


# ------------------------------------------------------------------------------------------
# the logic, over any transport
class YolzClient:
    """Calls of the yolz node's services over ``transport`` (RosTransport, or a test double):
    ``wait_ready(services, timeout)`` (TimeoutError when one is not there);
    ``call(service, request, timeout, changed=None)`` -> the answer, or None when none came
    (``changed()`` true = the change is visible, stop waiting soon); ``name(service)``;
    ``close()``."""

    def __init__(self, transport, on_note: Optional[Callable[[str], None]] = None):
        self.transport = transport
        self.on_note = on_note  # told of every answer that did not come (e.g. to stderr)
        self.notes: List[str] = []

    def _note(self, text: str) -> None:
        self.notes.append(text)
        if self.on_note is not None:
            self.on_note(text)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- reads: asked again until an answer comes ------------------------------------------
    def _read(self, service: str, request, timeout: float):
        self.transport.wait_ready([service], timeout)
        deadline = time.monotonic() + timeout
        wait = READ_TRY_S
        while True:
            left = deadline - time.monotonic()
            answer = self.transport.call(service, request, max(0.05, min(wait, left)))
            if answer is not None:
                return answer
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no answer from {self.transport.name(service)} within "
                                   f"{timeout:g} s (raise --timeout)")
            self._note(f"no answer from {self.transport.name(service)}; asking again")
            wait *= 2

    def list_objects(self, timeout: float = 10.0):
        """ListObjects.Response; TimeoutError when no answer comes within ``timeout``."""
        return self._read("list_objects", ListObjects.Request(), timeout)

    def get_object_views(self, name: str, timeout: float = 30.0):
        return self._read("get_object_views", GetObjectViews.Request(name=name), timeout)

    def _listing(self, timeout: float):
        """A listing, or None when the node does not answer one either."""
        try:
            return self.list_objects(timeout)
        except TimeoutError:
            return None

    def _shows(self, change: Change) -> bool:
        answer = self.transport.call("list_objects", ListObjects.Request(), READ_TRY_S)
        return answer is not None and change.done(answer)

    # -- changes -------------------------------------------------------------------------
    def register(self, request, timeout: float = 30.0) -> Outcome:
        """Send a RegisterObject request; the library's true outcome."""
        return self._change("register_object", request, timeout, lambda before: register_change(
            request.name, len(request.views), request.replace, before))

    def add_views(self, request, timeout: float = 30.0) -> Outcome:
        """Send an AddViews request (more views, or with ``negative`` more negative views)."""
        change = negatives_change if request.negative else add_views_change
        return self._change("add_views", request, timeout,
                            lambda before: change(request.name, len(request.views), before))

    def register_from_camera(self, request, timeout: float = 30.0) -> Outcome:
        """The node cuts one view: a new object of 1 view, or (append) one view more, or
        (negative) one negative view more."""
        def expect(before):
            if request.negative:
                return negatives_change(request.name, 1, before)
            if request.append:
                return add_views_change(request.name, 1, before)
            return register_change(request.name, 1, request.replace, before)
        return self._change("register_from_camera", request, timeout, expect)

    def remove(self, name: str, timeout: float = 10.0) -> Outcome:
        return self._change("remove_object", RemoveObject.Request(name=name), timeout,
                            lambda before: remove_change(name, before))

    def _change(self, service: str, request, timeout: float,
                expect: Callable[[object], Change]) -> Outcome:
        self.transport.wait_ready(["list_objects", service], timeout)
        change = expect(self.list_objects(timeout))
        watch = (lambda: self._shows(change)) if change.visible else None
        attempts = 2 if change.resend_safe else 1
        listing = None
        for attempt in range(attempts):
            resent = attempt > 0
            answer = self.transport.call(service, request, timeout, watch)
            if answer is not None and answer.success:
                note = " (sent a second time: no answer came to the first)" if resent else ""
                return Outcome(True, answer.message + note, answer, list(answer.names),
                               resent=resent)
            if answer is not None and not resent:
                return Outcome(False, answer.message, answer, list(answer.names))
            # no answer, or the resend refused (perhaps only because the first one was done)
            if answer is None:
                self._note(f"no answer from {self.transport.name(service)}; checking "
                           "list_objects")
            listing = self._listing(timeout)
            if change.visible and listing is not None and change.done(listing):
                return Outcome(True, f"{change.done_text} (answer lost, confirmed by "
                               "list_objects)", None, list(listing.names), answer_lost=True,
                               resent=resent)
            if answer is not None:  # the resend's refusal is the node's word
                return Outcome(False, answer.message, answer, list(answer.names),
                               answer_lost=True, resent=True)
        return self._unresolved(service, timeout, change, listing, attempts > 1)

    def _unresolved(self, service, timeout, change, listing, resent) -> Outcome:
        said = (f"no answer from {self.transport.name(service)} within {timeout:g} s"
                + (" (sent twice)" if resent else ""))
        if listing is None:
            message = (f"outcome unknown: {said}, and none from list_objects either: is the "
                       "node running? check with list_objects")
            return Outcome(False, message, answer_lost=True, resent=resent)
        if not change.visible:
            message = (f"outcome unknown: {said}; {change.state(listing)}, as before the call, "
                       "which cannot tell whether it was carried out")
        else:
            message = f"{change.not_done_text}: {said}, and {change.state(listing)}"
        return Outcome(False, message, None, list(listing.names), answer_lost=True,
                       resent=resent)


# ------------------------------------------------------------------------------------------
# the ROS transport
class RosTransport:
    """The yolz node's services from an rclpy context of this object's own. All clients are
    created at once, so discovery announces them together. ``add_service`` adds any other
    service by its full name (a test asks the node's parameter and lifecycle services so);
    ``node`` and ``spin_for`` serve subscriptions and publishers made beside the clients."""

    def __init__(self, node: str = "/yolz", client_name: str = "yolz_client", args=None,
                 settle: Optional[float] = None):
        self.prefix = service_prefix(node)
        self.settle = settle_seconds(settle)
        self.context = rclpy.Context()
        rclpy.init(args=args, context=self.context)
        try:
            self.node = rclpy.create_node(client_name, context=self.context)
            self.executor = SingleThreadedExecutor(context=self.context)
            self.executor.add_node(self.node)
            self.clients = {service: self.node.create_client(srv, self.name(service))
                            for service, srv in SERVICES.items()}
        except Exception:
            rclpy.try_shutdown(context=self.context)
            raise
        self._ready = set()
        self.unanswered: List[str] = []  # services whose answer did not come, in order

    def name(self, service: str) -> str:
        """The full name of ``service``: one of the node's (SERVICES) or one added by its name."""
        return service if service.startswith("/") else f"{self.prefix}/{service}"

    def add_service(self, srv_type, name: str) -> str:
        """A client of the service called ``name`` (absolute) as well, created once; its key for
        wait_ready, call and send is ``name``."""
        if name not in self.clients:
            self.clients[name] = self.node.create_client(srv_type, name)
        return name

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(0.0, end - time.monotonic())))

    def wait_ready(self, services: Sequence[str], timeout: float) -> None:
        """Wait until every one of ``services`` is ready; then, if one of them was not ready
        before (a server that restarted counts as new), ``settle`` seconds more. TimeoutError
        naming the one missing."""
        waiting = [s for s in services
                   if s not in self._ready or not self.clients[s].service_is_ready()]
        if not waiting:
            return
        deadline = time.monotonic() + timeout
        for service in waiting:
            client = self.clients[service]
            while not client.service_is_ready():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"service {self.name(service)} is not available after "
                                       f"{timeout:.0f} s: is the yolz node running (check "
                                       "--node and ROS_DOMAIN_ID)?")
                self.executor.spin_once(timeout_sec=0.05)
        self.spin_for(self.settle)
        self._ready.update(waiting)

    def _send(self, client, request):
        """The request on its way; the future of its answer (a test double drops answers here)."""
        return client.call_async(request)

    def send(self, service: str, request, timeout: float):
        """``request`` on its way once the service is ready; the future of its answer, for a
        caller that spins (``spin_for``) while it waits. ``forget`` it if it stays undone."""
        self.wait_ready([service], timeout)
        return self._send(self.clients[service], request)

    def forget(self, service: str, future) -> None:
        """An answer no longer awaited: rclpy would keep its slot forever."""
        if not future.done():
            self.clients[service].remove_pending_request(future)

    def call(self, service: str, request, timeout: float,
             changed: Optional[Callable[[], bool]] = None):
        """The answer to ``request``, or None when none came within ``timeout`` s, or within
        GRACE_S of ``changed()`` (asked every POLL_S) becoming true."""
        future = self.send(service, request, timeout)
        deadline = time.monotonic() + timeout
        next_poll = time.monotonic() + POLL_S
        seen = None
        try:
            while not future.done():
                now = time.monotonic()
                if now >= deadline or (seen is not None and now >= seen + GRACE_S):
                    self.unanswered.append(service)
                    return None
                if changed is not None and seen is None and now >= next_poll:
                    if changed():
                        seen = time.monotonic()
                    next_poll = time.monotonic() + POLL_S
                    continue
                self.executor.spin_once(timeout_sec=0.05)
            return future.result()
        finally:
            self.forget(service, future)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def connect(node: str = "/yolz", client_name: str = "yolz_client", args=None,
            settle: Optional[float] = None,
            on_note: Optional[Callable[[str], None]] = None) -> YolzClient:
    """A YolzClient of the node ``node`` over DDS (its own rclpy context; close it, or use it
    as a context manager). ``args``: ROS arguments (None: the command line's); ``on_note``:
    told of each answer that did not come."""
    return YolzClient(RosTransport(node, client_name, args, settle), on_note)
