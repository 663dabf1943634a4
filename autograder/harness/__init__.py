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
does, and the grader kills its workers with everything below them
(``workers.run``, ``workers._kill``). A worker
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

Invariants (process side). Each: where it is enforced, the test that proves it.

1. Only regular files with one name, inside the submission folder, are
   read: no link is followed, a FIFO cannot block, a device is not read,
   nothing past the size limit is read, and the student is told.
   ``submission._regular_files``, ``submission.read_submission_file``
   (``O_NOFOLLOW``, ``fstat`` after open). test_adversarial
   ``test_submission_file_attack_*`` (sodl grade, Gradescope, batch).
2. Student code reads only the Python folders (less the hidden packages)
   and writes only its scratch folder, with or without ``CAP_SYS_ADMIN``:
   the jail (``jail.build_jail``, where namespaces exist) and Landlock
   (``jail.confinement_paths``, ``jail.allow_list`` carving the hidden
   packages out of site-packages, ``confinement.restrict_filesystem``)
   stack; descriptors opened before are replaced by /dev/null
   (``jail.seal_descriptors``). test_adversarial
   ``test_sandbox_reach_*`` and ``test_files_network_and_reference_*``, run
   by ``make adversarial-nocap`` without the capability too;
   test_confinement; test_zygote.
3. No network, no signal or ptrace of the grader: network namespace,
   Landlock TCP rules and scoping, seccomp (``confinement.install_seccomp``:
   inet sockets, ptrace, process_vm_readv), and a separate account.
   test_adversarial ``test_sandbox_reach_*`` (tcp, udp, signal, ptrace).
4. The same notebook gets the same grade with and without the jail:
   imports after the privilege drop work in both (``jail._files_through_landlock``).
   ``setpriv ... sodl check week01`` / ``make adversarial-nocap``.
5. Every protection layer, active or missing, is logged and recorded
   (``jail.enter_sandbox`` -> STARTED event -> ``sandbox_handle.protection_layers``
   -> ``grading.json``'s ``protection``). test_adversarial
   ``test_sandbox_reach_in_one_parallel_batch``.
6. A test that hangs or kills the sandbox costs that test only: the
   sandbox restarts and the question's other tests get the limit afresh
   (``trusted.grade_question``). test_adversarial ``test_a_loop_costs_only_the_tests_that_call_it``.
7. A batch always finishes and always writes its gradebook: a worker
   that dies, raises or outlives the per-submission watchdog is killed
   with its zygote and sandboxes and replaced (``workers.run``); one
   submission graded in the grader has the same watchdog
   (``batch._grade_here``), and so has a Gradescope run, which writes a
   results.json saying so (``run_autograder``, ``batch.call_with_watchdog``;
   test_adversarial ``test_a_stuck_grader_never_hangs_the_gradescope_layout``);
   a grader failure is recorded, never a grade,
   and after two a submission gets 0, flagged (``batch.record_grader_failure``).
   A worker writes a grade only while the batch waits for it (its pipe
   open, ``workers.final_write``), so an interrupted batch never records a
   sandbox killed by the shutdown as the student's crash.
   test_workers; test_adversarial ``test_a_stuck_grader_never_hangs_*``;
   test_batch_robustness.

Invariants (trusted side). Each: where it is enforced; the test that proves it.

- A test sees of the student only the names the answer key declares
  (``names.declared_names``, packaged as ``Assignment.student_names``) and
  reads before binding them (``names.test_reads``); builtins, ``seed``,
  ``device`` and the master's module aliases always resolve in the grader
  (``trusted.test_namespace``). test_adversarial ``shadow_builtins``,
  ``seed_override``, ``shadow_module_alias``.
- A student definition shadowing a builtin, a grader name or a module
  alias is flagged and told (``trusted.shadowed_names``, called by
  ``grade.grade_cells``). test_trusted_side_attack_gets_the_honest_grade.
- The grader never imports, looks up or dispatches on a name or module
  name the sandbox sent: modules come from ``Assignment.modules``
  (``trusted.master_module``). test_adversarial ``module_name_lies``.
- A module the student submits (otter's ``student_files``) is imported
  only in the sandbox: a test's import of it is a handle
  (``trusted.test_builtins``, ``Op.IMPORT``), the names are fixed at build
  time (``Assignment.student_modules``) and never preloaded
  (``build.student_modules``). test_otter_format
  ``test_a_submitted_module_is_imported_in_the_sandbox_never_by_the_grader``.
- Only ``WireError`` leaves the decoder, whatever the tree
  (``wire.decode``); a test's failure of any kind but the grader being
  stopped is a failed test (``trusted._run_test`` catches BaseException,
  re-raises KeyboardInterrupt and SystemExit). test_fuzz_wire
  ``test_decode_any_tree_gives_a_value_or_a_wire_error``.
- A reply is within budget: blobs at most ``wire.reply_budget(memory_mb)``
  each (dropped unread past it, ``wire.read_message``), a header a
  sixteenth of that (16 MB at least), a question's replies four budgets in all
  (``proxy.Session.send``). test_fuzz_wire
  ``test_a_message_over_budget_is_dropped_and_the_channel_stays_in_step``;
  test_adversarial ``giant_reply``. The calls kept for the diagnosis (after
  the last question) hold one reply budget in all (``trusted.grade_sandbox``).
  test_adversarial ``test_recordings_for_the_diagnosis_do_not_add_up_across_questions``.
- The dtype decoded is the dtype sent: blob length is prod(shape) *
  itemsize, bool bytes are 0 or 1, a tensor's claimed dtype is its data's
  (bfloat16 over float32 only), one blob backs one array (or one table
  column) and is not copied (``wire._array``, ``wire.decode``). test_wire
  ``test_a_tensor_whose_claimed_dtype_is_not_its_data_is_refused``;
  test_fuzz_wire ``test_decoding_never_allocates_more_than_twice_what_was_sent``;
  test_adversarial ``test_a_table_reply_costs_the_grader_at_most_what_was_sent``.
- Every string from the sandbox is cleaned of lone surrogates and control
  characters and clipped before a report (``wire.clean_text``, in
  ``wire.decode``, ``trusted._student_error_message``,
  ``gradescope.results_json``, ``report.feedback_markdown``). test_fuzz_wire
  ``test_results_writers_make_valid_utf8_whatever_the_text``; test_adversarial
  ``surrogates_in_exception``, ``hostile_error_record``.
- While the notebook executes, an event is believed only in the protocol's
  order (STARTED, then CELL_START and CELL_DONE of each cell sent, then
  READY), and no event moves a wait's end but the next one owed: an event
  out of turn is student code writing to the grader's pipe, and stops its
  cell as a crash; a grader failure only before any student code ran
  (``sandbox_handle.Sandbox._launch``). test_adversarial ``event_flood``,
  ``forged_*``, ``exit_after_last_cell``.
- A question's deadline bounds the grader's own work on it too (SIGALRM in
  the main thread, ``trusted.grade_question``). test_adversarial
  ``test_the_question_deadline_bounds_the_graders_own_work``.
- results.json holds Gradescope's documented keys only, finite numbers,
  UTF-8 strings (``gradescope.validate_results``; ``run_autograder`` writes
  a failure rather than an invalid file). The session fixture
  ``every_results_json_validates`` in tests/autograder/conftest.py.
"""

