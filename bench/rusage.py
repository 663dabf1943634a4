"""``python -m bench.rusage CMD...``: run CMD, then print the ``ru_maxrss``
of RUSAGE_CHILDREN (kB) as the last line, ``BENCH_MAXRSS_KB=<n>``.

That value is the largest resident set of any descendant that was waited
for (Linux folds a reaped child's own RUSAGE_CHILDREN into its parent's).
Processes nobody waits for are not in it: sodl's zygote ignores SIGCHLD, so
the kernel reaps the sandboxes it forks without recording their usage."""
import resource
import subprocess
import sys

rc = subprocess.call(sys.argv[1:])
sys.stdout.flush()
print(f"BENCH_MAXRSS_KB={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}", flush=True)
sys.exit(rc)
