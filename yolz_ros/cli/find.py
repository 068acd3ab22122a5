"""Search the newest camera frame for registered objects, thoroughly (the node's ~/find action).

    find [NAME ...] [--zoom 2] [--time-limit 10] [--camera TOPIC] [--node /yolz]

No NAME: every registered object. Prints the progress (passes done, the best detection so far)
and then the detections, in the frame's pixels (and in 3D where the node has depth). Ctrl-C
cancels the search and prints what it had found. Exit status: 0 found, 1 nothing found or the
goal refused (the reason is printed), 130 canceled.
"""
from __future__ import annotations

import argparse
import sys
import time


def progress_line(fb) -> str:
    head = f"pass {fb.tiles_done}/{fb.tiles_total} ({fb.elapsed_ms:.0f} ms): "
    if not fb.found:
        return head + "nothing above the threshold yet"
    b = fb.best
    return head + f"best {b.name!r} {b.score:.2f} at ({b.peak_x:.0f}, {b.peak_y:.0f})"


def result_lines(result):
    """The detections of a Find result, one line each (2D, then 3D)."""
    lines = []
    for d in result.detections.detections:
        h = d.results[0].hypothesis
        cx, cy = d.bbox.center.position.x, d.bbox.center.position.y
        lines.append(f"  {h.class_id}  {h.score:.2f}  at ({d.results[0].pose.pose.position.x:.0f}"
                     f", {d.results[0].pose.pose.position.y:.0f})  box centre ({cx:.0f}, "
                     f"{cy:.0f}) size {d.bbox.size_x:.0f}x{d.bbox.size_y:.0f} px")
    for d in result.detections_3d.detections:
        h, p = d.results[0].hypothesis, d.bbox.center.position
        lines.append(f"  {h.class_id}  {h.score:.2f}  at ({p.x:.3f}, {p.y:.3f}, {p.z:.3f}) m in "
                     f"{result.detections_3d.header.frame_id or 'the camera frame'}")
    return lines


def main(argv=None):
    import rclpy
    import rclpy.utilities
    full = list(sys.argv if argv is None else ["find", *argv])
    own = rclpy.utilities.remove_ros_args(full)[1:]
    parser = argparse.ArgumentParser(prog="find", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="objects to look for (none: every registered object)")
    parser.add_argument("--zoom", type=float, default=0.0,
                        help="effort: the tiles' zoom, 1 (the 1x pass alone) to 3; "
                             "0 = the node's default 2")
    parser.add_argument("--time-limit", type=float, default=0.0,
                        help="seconds (0 = the node's default 10; at most 60)")
    parser.add_argument("--camera", default="", help="camera topic ('' = the node's only one)")
    parser.add_argument("--node", default="/yolz", help="the yolz node's name (default /yolz)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the node's ~/find action")
    args = parser.parse_args(own)
    return run(args, full)


def run(args, ros_args) -> int:
    import rclpy
    from action_msgs.msg import GoalStatus
    from rclpy.action import ActionClient
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from yolz_ros.action import Find
    from yolz_ros.ros.client import service_prefix, settle_seconds

    context = rclpy.Context()
    # no rclpy signal handler: Ctrl-C must reach us as KeyboardInterrupt, to cancel the goal
    rclpy.init(args=ros_args, context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("yolz_find", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    name = f"{service_prefix(args.node)}/find"
    client = ActionClient(node, Find, name)

    def spin_until(done, timeout):
        end = time.monotonic() + timeout
        while not done() and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        return done()

    try:
        if not spin_until(client.server_is_ready, args.timeout):
            print(f"failed: no action {name} after {args.timeout:g} s (is the node running? "
                  "--node names it)")
            return 1
        spin_until(lambda: False, settle_seconds())  # the server matches our readers too
        goal = Find.Goal(names=list(args.names), camera=args.camera, zoom=float(args.zoom),
                         time_limit_s=float(args.time_limit))
        what = ", ".join(args.names) or "every registered object"
        print(f"searching for {what} on {args.node}'s newest frame", flush=True)
        sent = client.send_goal_async(
            goal, feedback_callback=lambda m: print(progress_line(m.feedback), flush=True))
        if not spin_until(sent.done, args.timeout) or sent.result() is None:
            print(f"failed: {name} did not answer the goal in {args.timeout:g} s")
            return 1
        handle = sent.result()
        if not handle.accepted:
            print("refused: the node rejected the goal")
            return 1
        answer = handle.get_result_async()
        interrupted = False
        try:
            spin_until(answer.done, float("inf"))
        except KeyboardInterrupt:
            interrupted = True
            print("canceling the search (Ctrl-C)", flush=True)
            handle.cancel_goal_async()
            spin_until(answer.done, 10.0)
        if not answer.done() or answer.result() is None:
            print("failed: no result from the node")
            return 130 if interrupted else 1
        status, result = answer.result().status, answer.result().result
        if status == GoalStatus.STATUS_ABORTED:
            print(f"refused: {result.message}")
            return 1
        label = {GoalStatus.STATUS_SUCCEEDED: "done", GoalStatus.STATUS_CANCELED: "canceled"}
        print(f"{label.get(status, f'status {status}')}: {result.message}")
        for line in result_lines(result):
            print(line)
        if status == GoalStatus.STATUS_CANCELED:
            return 130
        return 0 if result.detections.detections else 1
    except (KeyboardInterrupt, ExternalShutdownException):
        return 130
    finally:
        client.destroy()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)


if __name__ == "__main__":
    sys.exit(main())
