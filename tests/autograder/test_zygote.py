"""The zygote a grading worker forks from itself (``workers``): it must hand
its sandboxes nothing of the worker's, and it must be as usable as one
started on its own."""
import os
import time

from autograder.harness import wire
from autograder.harness.protocol import SandboxLimits
from autograder.harness.sandbox_handle import Sandbox, Zygote


def _fds_seen_by_a_sandbox(slot: int) -> list[str]:
    """What each open descriptor of a sandbox is ("device:inode"), by
    ``fstat`` on every number: Landlock hides /proc from the sandbox, and
    fstat needs no path."""
    sandbox = Sandbox(SandboxLimits(preload=()), None, slot=slot, cells=[
        "import os\nseen = []\nfor fd in range(1024):\n    try:\n        st = os.fstat(fd)\n"
        "    except OSError:\n        continue\n    seen.append(f'{st.st_dev}:{st.st_ino}')"])
    try:
        sandbox.start(time.monotonic() + 60)
        reply = sandbox.request({"op": "get", "name": "seen"}, [], 30)
        return wire.decode(reply["ok"], reply["_blobs"])
    finally:
        sandbox.close()


def test_a_forked_zygote_passes_none_of_the_workers_descriptors_to_sandboxes():
    secret_r, secret_w = os.pipe()  # stands for a worker's job queue, which carries the tests
    st = os.fstat(secret_r)
    secret = f"{st.st_dev}:{st.st_ino}"
    slot = 9100 + os.getpid() % 100
    zygote = Zygote.for_slot(slot, (), 60, fork=True)
    try:
        assert zygote.proc.poll() is None
        seen = _fds_seen_by_a_sandbox(slot)
        assert seen, "the sandbox should see at least its own descriptors"
        assert secret not in seen, seen
    finally:
        os.close(secret_r)
        os.close(secret_w)
        Zygote.shutdown_all()


def test_a_dead_forked_zygote_is_replaced_by_one_started_on_its_own():
    slot = 9200 + os.getpid() % 100
    first = Zygote.for_slot(slot, (), 60, fork=True)
    try:
        first.proc.kill()
        deadline = time.monotonic() + 10
        while first.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        second = Zygote.for_slot(slot, (), 60, fork=True)
        assert second is not first and not hasattr(second.proc, "waitpid")
        assert type(second.proc).__name__ == "Popen"
        assert _fds_seen_by_a_sandbox(slot)
    finally:
        Zygote.shutdown_all()
