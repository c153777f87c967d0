"""The ``certstore`` command: a thin layer over the library.

Each command group lives in its own module and is listed in :data:`COMMAND_MODULES`; the module
defines ``register(group)``. Errors a user can fix print as one line naming what was wrong; a
traceback means a bug.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import sys
from collections.abc import Iterator, Sequence

import click

from certstore import __version__
from certstore.errors import CertstoreError, ConfigError, InvalidKeyError, ObjectNotFoundError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTERRUPTED = 130

COMMAND_MODULES: tuple[str, ...] = (
    "certstore.cli._objects",
    "certstore.cli._flags",
    "certstore.cli._catalog",
    "certstore.cli._backfill",
    "certstore.cli._verify",
    "certstore.cli._lifecycle",
    "certstore.cli._rehearse",
    "certstore.cli._serve",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="certstore")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Move certificate files from a local media root to S3, safely."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(cli)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of exiting (for tests and embedding)."""
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="certstore",
            standalone_mode=False,
        )
    except click.exceptions.Exit as exit_:
        return int(exit_.exit_code)
    except click.ClickException as err:
        err.show()
        return EXIT_USAGE if isinstance(err, click.UsageError) else EXIT_FAILURE
    except click.exceptions.Abort:
        click.echo("certstore: interrupted", err=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        click.echo("certstore: interrupted", err=True)
        return EXIT_INTERRUPTED
    except (ConfigError, InvalidKeyError) as err:
        click.echo(f"certstore: error: {err}", err=True)
        return EXIT_USAGE
    except ObjectNotFoundError as err:
        click.echo(f"certstore: not found: {err}", err=True)
        return EXIT_NOT_FOUND
    except CertstoreError as err:
        click.echo(f"certstore: error: {err}", err=True)
        return EXIT_FAILURE
    except Exception as err:
        database_errors = sys.modules.get("sqlalchemy.exc")
        if database_errors is None or not isinstance(err, database_errors.SQLAlchemyError):
            raise
        # The catalog failed mid-run (server gone, disk full): one line, not a traceback.
        from certstore.catalog._schema import database_message

        click.echo(f"certstore: catalog error: {database_message(err)}", err=True)
        return EXIT_FAILURE
    return int(result) if isinstance(result, int) else EXIT_OK


#: True in the console script's process (set by :func:`run`): it ends with the command.
_one_shot = False


@contextlib.contextmanager
def heavy_imports() -> Iterator[None]:
    """In the console script's process, import a command's heavy modules with the garbage
    collector paused, then move every object that exists out of its reach.

    Why: a full collection walks every tracked object, and after the backfill's imports
    (SQLAlchemy above all) that is ~44,000 of them, ~10 ms per walk; the upload engine's
    ``close()`` runs one on purpose and Python runs its own during a long run. Frozen, the
    same collection takes microseconds (measured: 10.5 ms to under 0.01 ms). The imports
    themselves create nothing to collect, yet the growing heap triggers collections that walk
    it over and over while they run: paused, the backfill's imports cost ~8 % less CPU. Only
    in a process that ends with the command: where ``main()`` is called by a process that
    goes on (a test runner, an application), frozen objects that later became garbage would
    never be freed, so this only imports there.
    """
    if not _one_shot:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def run() -> None:
    """Console-script entry point."""
    global _one_shot
    _one_shot = True
    code = main()
    if "obstore" in sys.modules:
        exit_without_finalizing(code)
    sys.exit(code)


def exit_without_finalizing(code: int) -> None:
    """Leave the process without tearing the interpreter down.

    obstore's shared Tokio runtime keeps its worker threads alive into interpreter shutdown;
    one that wakes while ``Py_Finalize`` dismantles interpreter state panics on a thread with
    no Python frame to catch it, and Rust aborts the process (SIGABRT, exit -6) after every
    object was uploaded and recorded. Seen here once in six benchmark runs. The engine's
    ``close()`` now removes the cause it was traced to (obstore objects in reference cycles
    collected only at finalization); a CLI process, about to end anyway, also skips the
    teardown. So the exit handlers (logging, coverage's data file) run now, while the
    interpreter is intact, the streams are flushed, and the process ends without finalizing.
    """
    import atexit
    import os

    engine = sys.modules.get("certstore._transfer_obstore")
    if engine is not None:
        engine.skip_settle_at_exit()  # no teardown follows, so no race to wait out
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
