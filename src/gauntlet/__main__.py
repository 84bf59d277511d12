import logging
import os
import sys

from gauntlet.cli import main

if __name__ == "__main__":  # importing the package's entry point must not run it
    code = main()
    # Every step's process is one task: skip the interpreter's teardown, which is slow once torch,
    # scikit-learn or GX are loaded (docs/benchmarks.md, pipeline overhead). Steps close their own files and temporary directories;
    # what remains to do at exit is flushing.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
