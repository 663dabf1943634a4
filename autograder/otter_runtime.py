"""What an otter master's grading needs beyond its notebook: its ``files:``
in the working folder and otter's intercell seed. Imported by grading, so
light (no nbformat)."""
from __future__ import annotations

import base64
import json


def runtime_cells(packaged, cells: list[str], submitted=()) -> list[str]:
    """The cells the sandbox runs for ``cells``: each prefixed with otter's
    intercell seed (``otter/execute/preprocessor.py``), and, first, a cell
    of ours that writes the master's ``files:``, then the student's own
    ``submitted`` files ((relative path, bytes): otter's ``student_files``),
    into the working folder (inside the sandbox, as the student: the files
    are the student's own data, never tests)."""
    if packaged.seed is not None:
        if packaged.seed_variable:
            prefix = f"{packaged.seed_variable} = {int(packaged.seed)}\n"
        else:
            prefix = (f"import numpy as __sodl_np\nimport random as __sodl_random\n"
                      f"__sodl_np.random.seed({int(packaged.seed)})\n__sodl_random.seed({int(packaged.seed)})\n")
        cells = [prefix + c for c in cells]
    files = [*packaged.files, *encode_files(submitted)]
    if files:
        payload = json.dumps([[name, data] for name, data in files])
        cells = [_WRITE_FILES.format(payload=payload)] + cells
    return cells


_WRITE_FILES = '''import base64 as __sodl_b64, json as __sodl_json, os as __sodl_os
for __sodl_name, __sodl_data in __sodl_json.loads({payload!r}):
    if __sodl_os.path.dirname(__sodl_name):
        __sodl_os.makedirs(__sodl_os.path.dirname(__sodl_name), exist_ok=True)
    with open(__sodl_name, "wb") as __sodl_f:
        __sodl_f.write(__sodl_b64.b64decode(__sodl_data))
del __sodl_b64, __sodl_json, __sodl_os, __sodl_name, __sodl_data, __sodl_f
'''


def encode_files(pairs) -> tuple[tuple[str, str], ...]:
    """(relative path, bytes) pairs as the packaged assignment stores them."""
    return tuple((name, base64.b64encode(data).decode()) for name, data in pairs)
