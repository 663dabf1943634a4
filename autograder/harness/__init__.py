"""The grading harness: student code runs in a sandbox, the tests run in
the grader against proxies, and the grader decides.

Which process runs each file (every module's docstring starts with it)::

    grader (sodl grade / sodl check / run_autograder)       batch, grade, trusted, proxy,
      |                                                       sandbox_handle, accounts
      |-- fork server (multiprocessing; imports torch,        autograder.fork_server
      |     the grader and the preload once)
      |     `-- worker (one per --jobs slot; grades one       grade, trusted, proxy,
      |           submission at a time)                       sandbox_handle, accounts
      `-- zygote (one per slot; forked from its worker,       zygote
            or a fresh interpreter; imports the preload)
              `-- sandbox (one per submission: jail,          sandbox_server, jail
                    then the notebook; serves requests)
                    `-- mutant fork (diagnosis only: the      sandbox_server.Server.fork_variant
                          answer key + one mutant)

``protocol`` (the messages' words and the limits record) and ``wire``
(their encoding) are shared by both sides of the boundary.

Process life. A process here is ended by its parent, never left to chance.
The grader kills a submission's processes when it is done
(``Sandbox.close`` -> ``accounts.kill_everything``: everything below the
zygote, a child subreaper, and everything of the sandbox account), and
kills its zygotes at exit (``Zygote.shutdown_all``, registered with
``atexit`` when the first zygote starts). ``sodl`` turns SIGTERM into
KeyboardInterrupt (``cli.main``), so ``kill`` stops a batch as Ctrl-C
does, and the grader terminates its workers (``workers.stop``). A worker
turns SIGTERM into ``sys.exit`` (``workers._worker_init``) and leaves
through multiprocessing, which ends every worker with ``os._exit``: atexit
handlers do not run in workers. What ends a worker's processes is the
worker's death itself: its zygote reads the worker's socket and exits when
it closes, and a sandbox exits when its request pipe closes. A thread in
each worker watches the grader and, when the grader is gone, kills the
worker's zygotes and leaves (``workers._exit_with``). A zygote ignores
SIGINT (the grader decides when it stops) and restores the default
SIGTERM; a sandbox restores both.
Commands and the fork server leave with ``os._exit`` after their atexit
handlers (``shutdown.exit_now``; ``fork_server``, whose one import side
effect is registering that exit, because preloading is the only way into
the fork server), skipping the half second of interpreter teardown.
"""
