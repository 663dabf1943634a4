"""The grader's handle on a sandbox (``harness.sandbox_handle``): its reply
channel belongs to one reader thread, for the life of that thread."""
import os
import threading
import time

from autograder.harness import wire
from autograder.harness.protocol import SandboxLimits
from autograder.harness.sandbox_handle import Sandbox, Zygote

LATE = 1.0  # how long a reader thread waits before each read after its first (a loaded machine)


def test_a_closed_sandboxs_reader_never_reads_a_channel_opened_after_it(monkeypatch):
    """``Sandbox.close`` used to close the reply descriptor under its reader
    thread. A reader not yet back in ``read`` (descheduled on a loaded
    machine, as in `sodl build --all` on 2 shared cores) then read
    whatever the number was given to next: the next sandbox's channel,
    whose first message lost its first bytes ("the sandbox process did not
    start: message header too large"). Here every reader comes back late,
    and pipes opened just after ``close`` take the lowest free numbers:
    none of their bytes may be read by the old sandbox's reader."""
    read_message = wire.read_message
    reads: dict[threading.Thread, int] = {}

    def late_read(fd, *args, **kwargs):
        me = threading.current_thread()
        reads[me] = reads.get(me, 0) + 1
        if reads[me] > 1:
            time.sleep(LATE)
        return read_message(fd, *args, **kwargs)

    monkeypatch.setattr(wire, "read_message", late_read)
    slot = 9300 + os.getpid() % 100
    sandbox = Sandbox(SandboxLimits(preload=()), None, slot=slot, cells=["x = 1"])
    pipes = []
    try:
        sandbox.start(time.monotonic() + 60)
        sandbox.close()  # its reader is asleep before its next read
        pipes = [os.pipe() for _ in range(4)]
        for r, w in pipes:
            os.write(w, b"abc")
        time.sleep(2 * LATE)  # the old reader has woken and read
        for r, _ in pipes:
            os.set_blocking(r, False)
            try:
                left = os.read(r, 100)
            except BlockingIOError:
                left = b""
            assert left == b"abc", f"the closed sandbox's reader read descriptor {r}, opened after close"
    finally:
        for fds in pipes:
            for fd in fds:
                os.close(fd)
        Zygote.shutdown_all()
