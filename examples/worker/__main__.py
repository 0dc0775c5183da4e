"""``python -m examples.worker``: run the welcome-email worker (see :mod:`examples.worker.runner`)."""

from __future__ import annotations

from examples.worker.runner import main

if __name__ == "__main__":
    main()
