"""Put on PYTHONPATH by bench_peers.py: records every optimizer step's wall time in any tool.

Writes one `time.time()` per line to $PEER_STEP_LOG at exit (and every 200 steps), and sets one
thread for torch, so the three tools are timed the same way without touching their code.
"""

import atexit
import os
import time

_PATH = os.environ.get("PEER_STEP_LOG")
if _PATH:
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    torch.set_num_threads(1)
    _times: list[float] = []

    def _flush() -> None:
        with open(_PATH, "a", encoding="utf-8") as handle:
            handle.write("".join(f"{t:.6f}\n" for t in _times))
        _times.clear()

    def _record(optimizer, args, kwargs) -> None:
        _times.append(time.time())
        if len(_times) >= 200:
            _flush()

    register_optimizer_step_post_hook(_record)
    atexit.register(_flush)
