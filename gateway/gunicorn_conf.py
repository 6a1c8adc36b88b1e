"""gunicorn settings for the gateway (`spool gateway` passes this file).

The gevent worker patches the standard library itself, before the app is
imported; `preload_app` must stay off, or ssl would be imported unpatched.
"""

import glob
import importlib.util
import os

from spool.logs import gunicorn_logconfig
from spool.security_config import exit_on_error

# A misconfigured gateway (open by accident, keys without a secret, a CORS
# pattern...) exits here, in the master, with one line naming the setting.
exit_on_error()


def _load_worker_module():
    # By path, like this file: importing the gateway package in the master
    # would import ssl before the gevent workers patch it.
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gunicorn_worker.py")
    spec = importlib.util.spec_from_file_location("spool_gunicorn_worker", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_worker = _load_worker_module()
# gevent's worker, with deadlines for slow peers and JSON error pages.
worker_class = _worker.SpoolWorker
worker_connections = int(os.environ.get("SPOOL_GATEWAY_CONNECTIONS", "4000"))
preload_app = False
# Streams are long-lived; a worker is only "stuck" if it stops heartbeating to the arbiter.
timeout = 60
graceful_timeout = int(os.environ.get("SPOOL_GATEWAY_GRACE", "10"))
# gunicorn's gevent worker bounds the keep-alive wait and the read of the
# request's headers together; SpoolWorker.timeout_ctx uses the same value.
# nginx's idle upstream connections must time out sooner (nginx/templates).
keepalive = max(1, round(_worker.HEADER_TIMEOUT))
accesslog = "-"
# gunicorn's default format logs the request line with its query string, where
# a stream's read token travels (`?token=`): log the path (%(U)s) only, and no
# Referer, which can carry a page's query string.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s "%(a)s"'
errorlog = "-"
loglevel = os.environ.get("SPOOL_LOG_LEVEL", "info").lower()
logconfig_dict = gunicorn_logconfig(loglevel)


def child_exit(server, worker):
    """Drop a dead worker's live gauges (prometheus_client's mark_process_dead,
    without importing prometheus_client, which imports ssl, in the master)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        for path in glob.glob(os.path.join(directory, f"gauge_live*_{worker.pid}.db")):
            os.remove(path)


def post_worker_init(worker):
    """On SIGTERM, end open streams at once (clients resume on another
    gateway) rather than holding them until the graceful timeout."""
    import gevent

    def end_streams_when_stopping():
        while worker.alive:
            gevent.sleep(0.2)
        worker.wsgi.extensions["spool"].hub.close_all()

    gevent.spawn(end_streams_when_stopping)
