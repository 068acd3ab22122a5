"""The ROS user's own tools in the tests: the `ros2` command (launch, run, service, topic, param,
lifecycle) and launch_testing, run as a user runs them, over DDS.

On the pip environment they come from ../shared/vendor/ros2/<distro> (scripts/bootstrap.sh); on
apt ROS with ROS. Where they are missing (a plain clone without ../shared) the tests that need them
skip with that reason, except under CI (env CI set), where they fail.
"""
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def missing() -> str:
    """Why the ROS 2 tools cannot run here, or '' when they can."""
    lacking = [m for m in ("launch", "launch_ros", "launch_testing", "ros2cli",
                           "composition_interfaces")
               if not _importable(m)]
    if shutil.which("ros2") is None:
        lacking.insert(0, "the ros2 command")
    if not lacking:
        return ""
    distro = os.environ.get("ROS_DISTRO", "kilted")
    vendor = ROOT.parent / "shared" / "vendor" / "ros2" / distro
    where = (f"{vendor} is absent (a plain clone)" if not vendor.is_dir()
             else f"{vendor} is there: run make setup")
    return (f"the ROS 2 tools are not installed ({', '.join(lacking)} missing): {where}; "
            "make setup installs them from there")


def _importable(module: str) -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module_level: bool = False):
    """Skip (or, under CI, fail) when the ROS 2 tools are missing."""
    reason = missing()
    if not reason:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run these tests, but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)


def env(home: Path, **extra) -> dict:
    """The environment of a user's shell: this test run's domain, ROS_HOME in ``home`` (logs and
    the node's default library stay out of ~/.ros), unbuffered Python output."""
    return dict(os.environ, ROS_HOME=str(home), PYTHONUNBUFFERED="1", **extra)


def _default_sigint():
    # A terminal's Ctrl-C: SIGINT must reach the process even where this test runs with SIGINT
    # ignored (a shell's background job).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ros2(*args, home: Path, timeout: float = 60.0, cwd=None, shell: str = "",
         check=True) -> subprocess.CompletedProcess:
    """`ros2 ARGS...` (or, with ``shell``, that command line in bash: globs as typed), to the end;
    its output (stdout and stderr together) in ``.stdout``. With ``check``, a non-zero exit fails
    the test with the output."""
    cmd = ["bash", "-c", shell] if shell else ["ros2", *args]
    try:
        out = subprocess.run(cmd, env=env(home), cwd=cwd or home, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=timeout,
                             preexec_fn=_default_sigint)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout:.0f} s:\n{exc.stdout}",
                    pytrace=False)
    if check:
        assert out.returncode == 0, f"{' '.join(cmd)} -> {out.returncode}:\n{out.stdout}"
    return out


class Background:
    """A long-running command (ros2 launch, ros2 topic echo, ros2 run ... watch), its output in a
    file; ``interrupt()`` is Ctrl-C: SIGINT, then the exit code. ``processes()`` is it and all
    its descendants, as seen now."""

    def __init__(self, args, home: Path, log: Path, cwd=None):
        self.args, self.log = list(args), log
        with open(log, "w") as f:
            self.proc = subprocess.Popen(self.args, env=env(home), cwd=cwd or home, stdout=f,
                                         stderr=subprocess.STDOUT, preexec_fn=_default_sigint,
                                         start_new_session=True)
        self.seen = {}

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def processes(self):
        import psutil
        try:
            me = psutil.Process(self.proc.pid)
            found = [me, *me.children(recursive=True)]
        except psutil.NoSuchProcess:
            found = []
        for p in found:
            self.seen.setdefault(p.pid, p)
        return found

    def wait_for(self, text: str, timeout: float = 60.0, poll=None) -> str:
        """Wait until ``text`` is in the output (calling ``poll()`` meanwhile); the output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if text in out:
                return out
            assert self.proc.poll() is None, \
                f"{' '.join(self.args)} exited ({self.proc.returncode}) before {text!r}:\n{out}"
            if poll:
                poll()
            else:
                time.sleep(0.1)
            self.processes()
        pytest.fail(f"no {text!r} from {' '.join(self.args)} in {timeout:.0f} s:\n"
                    f"{self.output()[-4000:]}", pytrace=False)

    def interrupt(self, timeout: float = 30.0) -> int:
        """Ctrl-C, as a terminal sends it: SIGINT to the command's process group (it runs in a
        session of its own, like a shell's foreground job); its exit code."""
        self.processes()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{' '.join(self.args)} did not exit within {timeout:.0f} s of SIGINT:\n"
                        f"{self.output()[-4000:]}", pytrace=False)

    def orphans(self):
        """The processes it ever had that are still running after it exited."""
        return [p for p in self.seen.values() if p.pid != self.proc.pid and _alive(p)]

    def kill(self):
        """Clean-up after a failure: SIGKILL to it and everything it started."""
        for p in [*self.processes(), *self.seen.values()]:
            if _alive(p):
                try:
                    p.kill()
                except Exception:
                    pass
        self.proc.wait()


def _alive(p) -> bool:
    import psutil
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_daemon(home: Path):
    """`ros2 daemon stop`: the ros2 command starts a daemon for this run's domain; it goes with
    the tests that started it."""
    if shutil.which("ros2"):
        subprocess.run(["ros2", "daemon", "stop"], env=env(home), capture_output=True,
                       timeout=30)
