"""Make lava-nc 0.10 / lava-dl 0.6 importable on this Python, and install them.

lava-nc 0.10.0 and lava-dl 0.6.0 declare ``Python < 3.11`` and pin old torch/numpy, but run on
Python 3.11 with current torch and numpy once four things are handled:

* **Installation** ignores their declared pins: ``pip install --no-deps --ignore-requires-python``
  plus the few runtime dependencies their imports really need (:data:`RUNTIME_DEPS`).
* **One import-time incompatibility**: ``lava/magma/compiler/var_model.py`` declares dataclass
  fields with a mutable default (``x: ByteEncoder = ByteEncoder()``), which Python 3.11's
  ``dataclasses`` rejects with ``ValueError: mutable default ... is not allowed``. Every Lava
  process import goes through that module, so nothing in Lava can be imported unpatched.
* **The start method**: ``lava/magma/runtime/message_infrastructure/multiprocessing.py`` calls
  ``mp.set_start_method('fork')`` at import, which raises ``RuntimeError: context has already been
  set`` in a spawned process or after anything else chose a start method; Lava's runtime forks its
  actors, so the call is made with ``force=True``.
* **numpy 2.4**: ``lava/magma/core/process/ports/ports.py`` builds its ``ReshapePort`` transforms
  (used by every ``reshape``/``flatten`` of a port, e.g. netx's ``flatten`` layer between a conv and a
  dense layer) as ``functools.partial(np.reshape, newshape=...)``; numpy 2.4 removed ``newshape``, so the
  first message through such a port raises ``TypeError: reshape() got an unexpected keyword argument
  'newshape'`` inside a Lava actor, which the runtime reports only as ``RuntimeError: 1 Exception(s)
  occurred``. The transform is rewritten to :func:`reshape_to` (positional shape: every numpy).

:func:`ensure_patched` installs a meta-path finder that compiles those modules from rewritten
source (``field(default_factory=ByteEncoder)``, ``force=True``) before their first import.
site-packages is never edited, so ``pip install --force-reinstall`` or a newer fixed Lava keep
working: when a pattern is absent the module is compiled unchanged.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import logging
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType

import numpy as np

from snnx.errors import SnnxError

#: The modules whose source is rewritten before import.
PATCHED_MODULES = frozenset({
    "lava.magma.compiler.var_model",
    "lava.magma.runtime.message_infrastructure.multiprocessing",
    "lava.magma.core.process.ports.ports",
})

#: ``name: Cls = Cls()`` at class level: a shared mutable instance as a dataclass default.
_MUTABLE_DEFAULT = re.compile(r"^(?P<lead>[ \t]+\w+[ \t]*:[ \t]*(?P<cls>\w+)[ \t]*=[ \t]*)(?P=cls)\(\)[ \t]*$", re.M)
#: ``mp.set_start_method('fork')`` without ``force``: raises once a start method is set.
_SET_FORK = re.compile(r"""\bset_start_method\((?P<q>['"])fork(?P=q)\)""")
#: ``ft.partial(np.reshape, newshape=X)``: numpy 2.4 has no ``newshape`` keyword.
_NEWSHAPE = re.compile(r"\b(?P<partial>\w+\.partial)\(np\.reshape,\s*newshape=(?P<shape>[\w.]+)\)")

LAVA_PACKAGES = ("lava-nc==0.10.0", "lava-dl==0.6.0")

#: What ``import lava.lib.dl.slayer`` / ``lava.lib.dl.netx`` / ``lava.magma`` really need beyond
#: torch and numpy (h5py, scipy, matplotlib, pillow are usually there already; pip skips them then).
#: ``opencv-python-headless`` is imported by ``slayer.object_detection``, which ``slayer`` imports
#: eagerly; ``<5`` is lava-dl's own bound and resolves to a numpy-2 build. networkx is left alone:
#: torch already brings a 3.x, and the only calls Lava makes (``DiGraph``, ``simple_cycles``,
#: ``topological_sort``, ``weakly_connected_components``, ``set_node_attributes``) are unchanged
#: in 3.x, so the ``networkx<=2.8.7`` pin (a Python 3.8 leftover) would only downgrade torch's.
#: torchvision is needed too (``slayer.object_detection`` imports it) but is not installed here: an
#: unpinned torchvision can replace torch; ``snnx[all]`` brings the matching one, and a missing one is
#: reported by the import check at the end of :func:`install_lava`.
RUNTIME_DEPS = (
    "asteval>=0.9.31,<0.10", "ninja", "opencv-python-headless<5", "scikit-learn>=1.3", "h5py", "scipy",
    "matplotlib", "pillow",
)

#: Modules checked to decide whether the install is already complete.
_PROBE_MODULES = ("lava.magma", "lava.lib.dl.slayer", "lava.lib.dl.netx", "asteval", "cv2", "sklearn", "matplotlib")


def reshape_to(shape: tuple[int, ...], data: np.ndarray) -> np.ndarray:
    """``np.reshape(data, shape)``: the transform of Lava's ``ReshapePort`` after :func:`patch_source`
    (a module-level function, so the partial stays picklable)."""
    return np.reshape(data, shape)


def patch_source(source: str) -> str:
    """Rewrite class-level ``name: Cls = Cls()`` into ``name: Cls = field(default_factory=Cls)``,
    ``set_start_method('fork')`` into ``set_start_method('fork', force=True)`` and
    ``partial(np.reshape, newshape=X)`` into ``partial(reshape_to, X)``.

    The rewrite keeps line numbers, so tracebacks still point at the file on disk.
    """
    source = _MUTABLE_DEFAULT.sub(
        lambda m: f"{m['lead']}__import__('dataclasses').field(default_factory={m['cls']})", source
    )
    source = _NEWSHAPE.sub(
        lambda m: f"{m['partial']}(__import__('{__name__}', fromlist=['reshape_to']).reshape_to, {m['shape']})", source
    )
    return _SET_FORK.sub("set_start_method('fork', force=True)", source)


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    """Compile the module from patched source, bypassing ``__pycache__`` (which holds the unpatched
    bytecode pip compiled at install time)."""

    def get_code(self, fullname: str):  # noqa: ANN201 - returns a code object
        source = self.get_data(self.path).decode("utf-8")
        return compile(patch_source(source), self.path, "exec", dont_inherit=True)


class LavaCompatFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that hands :data:`PATCHED_MODULES` to :class:`_PatchingLoader`."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None):  # noqa: ANN201
        if fullname not in PATCHED_MODULES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        loader = _PatchingLoader(fullname, spec.origin)
        return importlib.util.spec_from_file_location(fullname, spec.origin, loader=loader)


def ensure_patched() -> bool:
    """Install the finder once (idempotent). Returns True when this call installed it.

    Must run before the first ``import lava...``; :func:`import_lava` and both Lava backends call it.
    """
    if any(isinstance(f, LavaCompatFinder) for f in sys.meta_path):
        return False
    sys.meta_path.insert(0, LavaCompatFinder())
    return True


@contextlib.contextmanager
def quiet_import() -> Iterator[None]:
    """Silence the banners Lava's first import prints (a Prophesee-toolbox notice on stdout from
    ``slayer.object_detection`` and torch's "No CUDA runtime" log line); errors still raise."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def _import_error(module: str) -> Exception | None:
    """Import ``module`` patched and quietly; the exception it raised, or None."""
    ensure_patched()
    try:
        with quiet_import():
            importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - a half-installed Lava can fail with anything
        return exc
    return None


def lava_available() -> str | None:
    """None when lava-nc and lava-dl import here (with the patch); otherwise the reason they don't."""
    for module in ("lava.lib.dl.netx", "lava.lib.dl.slayer", "lava.magma.core.run_configs"):
        exc = _import_error(module)
        if exc is not None:
            return f"{type(exc).__name__}: {exc} (run: snnx install lava)"
    return None


def import_lava(module: str) -> ModuleType:
    """Import a Lava module with the patch in place, turning failures into an actionable SnnxError.

    Any exception counts: a broken install fails with ValueError or RuntimeError as often as with
    ImportError, and it is the user's install to fix, not a bug in the backend.
    """
    exc = _import_error(module)
    if exc is not None:
        msg = f"cannot import {module!r} ({type(exc).__name__}: {exc}); install Lava with: snnx install lava"
        raise SnnxError(msg) from exc
    return sys.modules[module]


# -- installation -------------------------------------------------------------------------------

def _importable(module: str) -> bool:
    return _import_error(module) is None


def pip_commands(python: str = sys.executable, *, upgrade: bool = False) -> list[list[str]]:
    """The pip invocations ``snnx install lava`` runs, in order."""
    force = ["--force-reinstall"] if upgrade else []
    return [
        [python, "-m", "pip", "install", "--no-deps", "--ignore-requires-python", *force, *LAVA_PACKAGES],
        [python, "-m", "pip", "install", *RUNTIME_DEPS],
    ]


def install_lava(
    *, force: bool = False, echo: Callable[[str], None] = print, runner: Callable[..., int] | None = None
) -> bool:
    """Install lava-nc and lava-dl into the running interpreter; idempotent.

    :param force: reinstall even when everything already imports.
    :param echo: where progress lines go.
    :param runner: ``runner(argv) -> returncode``; defaults to running pip in a subprocess.
    :returns: True when pip was run, False when the install was already complete.
    :raises SnnxError: pip failed, or Lava still does not import afterwards.
    """
    run = runner or (lambda argv: subprocess.call(argv))  # noqa: S603 - argv built from constants
    missing = [m for m in _PROBE_MODULES if not _importable(m)]
    if not missing and not force:
        echo("lava-nc 0.10.0 and lava-dl 0.6.0 already installed and importable; nothing to do.")
        return False
    if missing:
        echo(f"Not importable yet: {', '.join(missing)}.")
    echo("lava-nc/lava-dl declare Python < 3.11 and old torch/numpy pins; installing them without")
    echo("their declared dependencies, then the runtime dependencies their imports need.")
    for argv in pip_commands(upgrade=force):
        echo("$ " + " ".join(argv))
        code = run(argv)
        if code != 0:
            msg = f"pip failed with exit code {code}: {' '.join(argv)}"
            raise SnnxError(msg)
    # Check in a fresh interpreter: this one may hold half-imported Lava modules, and Lava cannot be
    # re-imported in-process (it sets the multiprocessing start method at import).
    probe = "import snnx.plugins.loihi.compat as c, sys; r = c.lava_available(); print(r or ''); sys.exit(r is not None)"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        reason = (proc.stdout.strip() or proc.stderr.strip().splitlines()[-1:] or ["unknown error"])[0]
        msg = f"Lava installed but still not importable: {reason}"
        raise SnnxError(msg)
    echo("Lava is importable (snnx patches lava/magma/compiler/var_model.py at import time).")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m snnx.plugins.loihi.compat [--force]``: the same as ``snnx install lava``, without the CLI."""
    args = list(sys.argv[1:] if argv is None else argv)
    unknown = [a for a in args if a not in {"--force", "install", "lava"}]
    if unknown:
        print(f"unknown arguments {unknown!r}; usage: python -m snnx.plugins.loihi.compat [--force]", file=sys.stderr)
        return 2
    try:
        install_lava(force="--force" in args)
    except SnnxError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess in the tests
    sys.exit(main())
