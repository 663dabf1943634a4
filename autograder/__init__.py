"""autograder: build and grade notebook assignments (the toolchain behind ``sodl``).

General by design: it knows nothing about deep learning and would grade
another course's notebooks unchanged. The course itself is content
(``solutions/``, ``sodl_ref/``).
"""

__version__ = "0.1.0"
