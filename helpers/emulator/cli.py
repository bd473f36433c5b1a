"""``python -m helpers emulator serve``: the emulator as a real HTTP server (uvicorn).

::

    python -m helpers emulator serve --host 127.0.0.1 --port 8765 --state-dir .emulator --api-key K

then point the lab's code at it::

    export AZURE_OPENAI_ENDPOINT=http://127.0.0.1:8765 AZURE_OPENAI_API_KEY=K TEMP_AUTH_TOKEN=K

Options fall back to environment variables: ``EMULATOR_API_KEY`` (else a random key, printed),
``EMULATOR_STATE_DIR`` (else ``.emulator``), ``EMULATOR_BACKEND`` (else ``tiny`` in fast mode,
``smollm2`` otherwise), ``EMULATOR_MAX_UPLOAD_BYTES``, ``EMULATOR_STEP_DELAY``,
``EMULATOR_FILE_DELAY`` (seconds an upload stays ``pending``), ``EMULATOR_DEPLOY_DELAY`` (seconds
a deployment takes to reach ``Succeeded``), ``EMULATOR_TODAY`` (the model clock's date).
Azure fine-tunes versioned models only: ``model="gpt-4o-2024-08-06"``, not ``"gpt-4o"``.
This module is cheap to import; FastAPI, uvicorn and torch load in :func:`run`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = sub.add_parser("serve", help="run the emulator as an HTTP server (uvicorn)",
                           description="Run the local Azure OpenAI emulator as an HTTP server.")
    serve.add_argument("--host", default="127.0.0.1",
                       help="interface to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    serve.add_argument("--state-dir", default=None,
                       help="records, files and models (default EMULATOR_STATE_DIR or .emulator)")
    serve.add_argument("--api-key", default=None,
                       help="the key clients must send (default EMULATOR_API_KEY, else random)")
    serve.add_argument("--backend", choices=("tiny", "smollm2"), default=None,
                       help="local model for base models (default EMULATOR_BACKEND, else by mode)")
    serve.add_argument("--max-upload-mb", type=float, default=None,
                       help="largest accepted upload in MiB (default 512)")
    serve.add_argument("--log-level", default="warning",
                       choices=("critical", "error", "warning", "info", "debug"))


def run(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from . import catalog
    from .app import create_app

    # The server shows the emulator's own log records (job failures, recovery after a restart).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    state_dir = args.state_dir or os.environ.get("EMULATOR_STATE_DIR") or ".emulator"
    api_key = args.api_key or os.environ.get("EMULATOR_API_KEY")
    generated = api_key is None
    if generated:
        api_key = f"emu-{secrets.token_hex(16)}"
    max_upload = None if args.max_upload_mb is None else int(args.max_upload_mb * 1024 * 1024)
    app = create_app(state_dir=state_dir, api_key=api_key, backend=args.backend,
                     max_upload_bytes=max_upload)
    emulator = app.state.emulator

    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            lifespan="on")
    server = uvicorn.Server(config)

    # Say where we listen once the socket is bound (port 0 picks a free one).
    original_startup = server.startup

    async def startup(sockets=None) -> None:
        await original_startup(sockets=sockets)
        port = args.port
        for srv in getattr(server, "servers", []):
            for sock in getattr(srv, "sockets", []):
                port = sock.getsockname()[1]
        endpoint = f"http://{args.host}:{port}"
        lines = [
            f"Local Azure OpenAI emulator listening on {endpoint}",
            f"  state dir: {emulator.store.root}",
            f"  backend:   {emulator.backend}",
            (f"  api key:   {api_key}  (generated; choose one with --api-key or "
             "EMULATOR_API_KEY)" if generated else "  api key:   the one given (--api-key or "
             "EMULATOR_API_KEY)"),
            (f"  use it:    export AZURE_OPENAI_ENDPOINT={endpoint} AZURE_OPENAI_API_KEY=<key> "
            "TEMP_AUTH_TOKEN=<key>"),
            f"  fine-tune: a versioned model, e.g. model=\"{catalog.DEFAULT_FT_MODEL}\"",
        ]
        print("\n".join(lines), flush=True)

    server.startup = startup
    try:
        server.run()
    finally:
        emulator.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="python -m helpers.emulator.cli")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
