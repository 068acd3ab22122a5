"""Negative views ("not that one") over real DDS: the node as its own process (tiny model), an
rclpy client of ~/add_views, the CLIs (register --negative, list_objects, library export /
import), a restart on the same library, and the frames they change."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from sensor_msgs.msg import RegionOfInterest
from vision_msgs.msg import Detection2DArray

from node_harness import (NODE, ROOT, image_msg, list_objects, object_views, register, remove,
                          scene, start_node, stop_node, wait_ready)
from yolz_ros.msg import ObjectProbabilities
from yolz_ros.runtime.archive import read_archive
from yolz_ros.srv import AddViews, GetObjectViews, RegisterFromCamera


def look_alike(seed=0, size=64):
    """The object's sibling: a disc of another colour, other stripes."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 114, np.uint8)
    cv2.circle(img, (size // 2, size // 2), size // 3, (40, 40, 220), -1)
    for x in range(0, size, 12):
        cv2.line(img, (x, 0), (x + 4, size), (30, 220, 250), 2)
    return cv2.add(img, rng.integers(0, 8, img.shape, dtype=np.uint8))


def the_frame(view=None):
    """A frame with the object's view (or ``view``) at x 40..104, y 20..84."""
    frame = scene(5)
    frame[20:84, 40:104] = object_views(1)[0] if view is None else view
    return frame


class Outputs:
    """The node's ~/probabilities and ~/detections, per frame stamp."""

    def __init__(self, ros):
        self.ros, self.probs, self.dets = ros, {}, {}
        self.subs = [
            ros.node.create_subscription(ObjectProbabilities, f"{NODE}/probabilities",
                                         lambda m: self.probs.__setitem__(m.header.stamp.sec, m),
                                         10),
            ros.node.create_subscription(Detection2DArray, f"{NODE}/detections",
                                         lambda m: self.dets.__setitem__(m.header.stamp.sec, m),
                                         10)]

    def send(self, stamp, frame=None):
        """Publish the frame (again until it is processed); its probabilities [K, r, c]."""
        msg = image_msg(the_frame() if frame is None else frame, "rgb8", stamp_sec=stamp)

        def done():
            self.ros.frames.publish(msg)
            self.ros.spin_for(0.2)
            return stamp in self.probs and stamp in self.dets
        assert self.ros.spin_until(done, 20.0), f"frame {stamp} was not processed"
        m = self.probs[stamp]
        return np.asarray(m.probabilities, np.float32).reshape(len(m.names), m.rows, m.cols)

    def close(self):
        for sub in self.subs:
            self.ros.node.destroy_subscription(sub)


def cli(*args):
    return subprocess.run([sys.executable, "-m", *args, "--node", NODE], capture_output=True,
                          text=True, env=os.environ.copy(), cwd=ROOT, timeout=90)


def add_negatives(ros, name, views):
    request = AddViews.Request(name=name, negative=True,
                               views=[image_msg(v, "rgb8") for v in views])
    return ros.call(AddViews, f"{NODE}/add_views", request)


def negative_counts(ros):
    listing = list_objects(ros)
    return dict(zip(listing.names, listing.num_negative_views))


def test_negative_views_over_dds_cli_restart_and_archive(ros, tiny_model, tmp_path):
    library = tmp_path / "library"
    proc = start_node(tiny_model, library, tmp_path / "first.log")
    try:
        wait_ready(ros, proc)
        out = Outputs(ros)
        assert register(ros, "mug", object_views(3)).success
        plain = out.send(1)

        # an rclpy client: one look-alike; the object's own views are refused (it is itself)
        r = add_negatives(ros, "mug", [look_alike(0)])
        assert r.success, r.message
        assert (r.num_views_used, r.num_negative_views, list(r.names)) == (3, 1, ["mug"])
        r = add_negatives(ros, "mug", object_views(3))
        assert not r.success and "itself" in r.message, r.message
        r = add_negatives(ros, "cup", [look_alike(0)])
        assert not r.success and "no object named 'cup'" in r.message
        assert negative_counts(ros) == {"mug": 1}

        # register_from_camera: a box around the look-alike on the newest frame
        out.send(10, the_frame(look_alike(2)))

        def from_camera(**flags):
            request = RegisterFromCamera.Request(name="mug", negative=True, **flags)
            request.box = RegionOfInterest(x_offset=40, y_offset=20, width=64, height=64)
            return ros.call(RegisterFromCamera, f"{NODE}/register_from_camera", request)
        r = from_camera(append=True)
        assert not r.success and "leave replace and append unset" in r.message
        r = from_camera()
        assert r.success, r.message
        assert (r.num_views_used, r.num_negative_views, r.frame_header.stamp.sec) == (3, 2, 10)

        # the CLI: one more; list_objects shows them
        path = str(tmp_path / "sibling.png")
        cv2.imwrite(path, cv2.cvtColor(look_alike(1), cv2.COLOR_RGB2BGR))
        run = cli("yolz_ros.cli.register", "mug", path, "--negative")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "ok: added 1 negative view to 'mug'" in run.stdout and "now 3" in run.stdout
        run = cli("yolz_ros.cli.list_objects")
        assert run.returncode == 0 and "  mug  (3 views, 3 negative views)" in run.stdout, \
            run.stdout
        listing = list_objects(ros)
        assert list(listing.num_views) == [3] and list(listing.num_negative_views) == [3]

        # the frames: the object's map is lowered where its look-alikes match better
        suppressed = out.send(2)
        assert suppressed.shape == plain.shape and (suppressed <= plain + 1e-6).all()
        assert (suppressed < plain - 1e-3).any()
        out.close()
    finally:
        assert stop_node(proc) == 0, Path(proc.log_path).read_text()[-3000:]

    # a restart on the same library keeps them, and the frames still publish, as before
    proc = start_node(tiny_model, library, tmp_path / "second.log")
    try:
        wait_ready(ros, proc)
        out = Outputs(ros)
        assert negative_counts(ros) == {"mug": 3}
        got = ros.call(GetObjectViews, f"{NODE}/get_object_views",
                       GetObjectViews.Request(name="mug"))
        assert got.success and len(got.views) == 3 and len(got.negative_views) == 3
        again = out.send(3)
        np.testing.assert_allclose(again, suppressed, atol=1e-5)

        # export -> remove -> import round-trips the negative views (yolz-object/2)
        archive = tmp_path / "mug.yolz"
        run = cli("yolz_ros.cli.library", "export", "mug", "-o", str(archive))
        assert run.returncode == 0 and "3 negative views" in run.stdout, run.stdout + run.stderr
        assert len(read_archive(archive).negatives) == 3
        assert remove(ros, "mug").success
        run = cli("yolz_ros.cli.library", "import", str(archive))
        assert run.returncode == 0, run.stdout + run.stderr
        assert negative_counts(ros) == {"mug": 3}
        np.testing.assert_allclose(out.send(4), suppressed, atol=1e-5)
        out.close()
    finally:
        assert stop_node(proc) == 0, Path(proc.log_path).read_text()[-3000:]
    assert "Traceback" not in Path(proc.log_path).read_text()
