"""The ``verde`` command line (run by the console script ``verde = cli.entry:main``).

Every failure a user can cause ends as one line on stderr and a documented exit code
(cli/exit_codes.py): errors raised on purpose by our packages (``VerdeError``, ``ProofError``,
``RepopsError``) and file-system errors. Anything else is a bug: one line naming it and exit
code 5 (set VERDE_DEBUG=1 to get the traceback).
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from arbiter.status import is_repops_error
from cli import exit_codes
from cli.commands.arbiter_cmd import arbiter_group
from cli.commands.coded import train_coded
from cli.commands.coded_compute import coded_infer, coded_matmul
from cli.commands.completion import completion
from cli.commands.config_cmd import config_group
from cli.commands.data import data
from cli.commands.delegate import delegate
from cli.commands.demo import demo
from cli.commands.disputes import disputes, jobs
from cli.commands.keys import keys
from cli.commands.provider import provider
from cli.commands.verify import verify
from cli.output import error_line
from proofs import ProofError
from verde import VerdeError
from verde.version import PROTOCOL_VERSION


@click.group(context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Exit codes: 0 ok, 1 verification failed, 2 usage, 3 bad input, "
                    "4 unreachable, 5 internal error.")
@click.version_option(package_name="verde",
                      message=f"%(prog)s %(version)s (protocol {PROTOCOL_VERSION})")
def cli() -> None:
    """verde: verified outsourced machine learning."""


for command in (demo, keys, provider, arbiter_group, config_group, delegate, train_coded,
                coded_matmul, coded_infer, verify, disputes, jobs, data, completion):
    cli.add_command(command)


def _code_for(exc: BaseException) -> int:
    from proofs import VerificationError

    if isinstance(exc, VerificationError):
        return exit_codes.FALSE
    unreachable = getattr(exc, "unreachable", False)
    return exit_codes.UNREACHABLE if unreachable else exit_codes.BAD_INPUT


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, turning expected errors into one line and an exit code."""
    try:
        rv = cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        error_line("aborted")
        sys.exit(exit_codes.FALSE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (VerdeError, ProofError, OSError) as exc:
        error_line(str(exc))
        sys.exit(_code_for(exc))
    except Exception as exc:
        if is_repops_error(exc):
            error_line(str(exc))
            sys.exit(exit_codes.BAD_INPUT)
        if os.environ.get("VERDE_DEBUG"):
            traceback.print_exc()
        error_line(f"internal error: {type(exc).__name__}: {exc} (a bug in verde; rerun with "
                   "VERDE_DEBUG=1 for the traceback and report it)")
        sys.exit(exit_codes.INTERNAL)
    sys.exit(rv if isinstance(rv, int) else exit_codes.OK)
