"""``python -m examples.rest_api``: serve the REST example with uvicorn.

``HOST`` (default 127.0.0.1) and ``PORT`` (default 8000) say where; every
other setting comes from the environment (see ``examples.common.Settings``).
"""

from __future__ import annotations

import logging
import os

import uvicorn

from examples.rest_api import create_app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8000")),
        log_config=None,  # keep the logging configured above
    )


if __name__ == "__main__":
    main()
