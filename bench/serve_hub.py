"""Serve the hub's web app alone (no Synapse, no bot) for web benchmarks: python -m bench.serve_hub DATA_DIR
Process settings are those of `crossline up`."""

import sys
from pathlib import Path

from aiohttp import web

from crossline.config import load_config
from crossline.runtime import tune_for_serving
from crossline.web.app import create_app

config = load_config(Path(sys.argv[1]))
app = create_app(config, background=False)
tune_for_serving()
web.run_app(app, host="127.0.0.1", port=config.hub.port, access_log=None, print=None)
