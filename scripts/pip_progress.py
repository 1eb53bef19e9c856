"""Run a long `pip install --verbose` build and show its progress in a few lines.

`python scripts/pip_progress.py pip install --verbose ...`: the compiler's lines are kept out of
the terminal; ninja's `[N/M]` counter becomes a line every 5% with the elapsed time. On failure
the last 60 lines of output are printed. The exit status is pip's.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import time

STEP = re.compile(r"^\s*\[(\d+)/(\d+)\]")


def main(argv: list[str]) -> int:
    started = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=60)
    shown = -5
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip())
            match = STEP.match(line)
            if match:
                done, total = int(match.group(1)), int(match.group(2))
                percent = 100 * done // total
                if percent >= shown + 5 or done == total:
                    shown = percent
                    elapsed = time.monotonic() - started
                    print(f"  build {percent:3d}% ({done}/{total}), {elapsed / 60:.1f} min",
                          flush=True)
            elif line.startswith(("Successfully", "ERROR", "error:")):
                print(line.rstrip(), flush=True)
    if proc.returncode != 0:
        print("\n".join(tail), file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
