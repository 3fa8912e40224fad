"""The console script's process defaults: gRPC's C core stays quiet on a service's stderr.

A real gRPC server on loopback shuts down under a client's open connection, so the client's
core receives a GOAWAY, which it reports at INFO level. Under ``cli.entry``'s defaults nothing
reaches stderr (a JSON log stays JSON); an operator who asks for INFO still gets gRPC's lines.
"""

from __future__ import annotations

import os
import subprocess
import sys

# Waits on events, not sleeps: on a loaded machine a fixed sleep let the server stop before the
# call had reached it, and no GOAWAY was ever sent.
SCENARIO = """
import sys, threading, time
from concurrent import futures
from cli.entry import apply_process_defaults
apply_process_defaults()
import grpc

started = threading.Event()

def slow(request, context):
    started.set()
    time.sleep(2)
    return b""

server = grpc.server(futures.ThreadPoolExecutor(2))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
    "t.S", {"M": grpc.unary_unary_rpc_method_handler(slow)}),))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
channel = grpc.insecure_channel(f"127.0.0.1:{port}")
call = channel.unary_unary("/t.S/M").future(b"")
if not started.wait(60):
    sys.exit("the call never reached the server")
server.stop(None).wait(60)
try:
    call.result(timeout=60)
except grpc.RpcError:
    pass
time.sleep(0.2)
channel.close()
"""


def _stderr_of_scenario(**env: str) -> str:
    child = {k: v for k, v in os.environ.items() if not k.startswith("GRPC_")}
    done = subprocess.run([sys.executable, "-c", SCENARIO], env={**child, **env},
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stderr


def test_the_entry_point_keeps_grpc_core_info_lines_off_stderr() -> None:
    assert _stderr_of_scenario() == ""


def test_an_operator_who_asks_for_grpc_info_lines_gets_them() -> None:
    # gRPC's core answers INFO with its own warning that INFO is verbose, then (usually, it is
    # asynchronous) the GOAWAY line: either shows the operator's setting reached it.
    err = _stderr_of_scenario(GRPC_VERBOSITY="INFO").lower()
    assert "log level info" in err or "goaway" in err, err
