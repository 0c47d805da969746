"""What the tests of scripts/ share: where the tree and its built tools are, and a script
of scripts/ loaded as a module (its file name has a dash, so it cannot be imported)."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("P2PIO_BIN", os.path.join(ROOT, "build", "bin"))


def load(filename, name):
    """scripts/@filename as a module called @name."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", filename))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
