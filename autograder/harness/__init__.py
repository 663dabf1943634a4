"""The grading harness: the sandbox that runs student code (untrusted side)
and the trusted side that runs the tests against proxies and decides."""
