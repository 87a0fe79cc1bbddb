"""``python -m perfgate.worker FD``: a worker process answering calls on pipe FD."""

from perfgate.worker.core import main

main()
