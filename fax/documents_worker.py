"""``python -m fax.documents_worker``: one blocking step of the document pipeline (pikepdf,
Pillow, img2pdf on a stranger's file) in a process of its own, so the converter can kill it on
timeout or cancel like ghostscript. The request is one JSON object on stdin
(``{"op", "args", "memory", "cpu"}``), the reply one on stdout: ``{"result": ...}`` or
``{"rejected": "sentence for the user"}``. Anything else (a crash, a limit hit) is a non-zero
exit the converter turns into a refusal.
"""

from __future__ import annotations

import json
import resource
import sys


def main() -> int:
    request = json.loads(sys.stdin.buffer.read(1 << 20))
    memory, cpu = int(request["memory"]), int(request["cpu"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))

    from callcenter.faxes.ports import DocumentRejected
    from fax.documents_work import WORKER_OPS

    try:
        result = WORKER_OPS[request["op"]](**request["args"])
    except DocumentRejected as exc:
        reply = {"rejected": exc.reason}
    else:
        reply = {"result": result}
    sys.stdout.write(json.dumps(reply))
    return 0


if __name__ == "__main__":
    sys.exit(main())
