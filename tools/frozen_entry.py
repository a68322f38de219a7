"""Entry script of the frozen bundle (build.spec); one script for both executables of it:
``pmgi-gui`` (windowed) runs the application, ``pmgi`` (console) the command line."""

import multiprocessing
import sys

if __name__ == "__main__":
    # First, before any heavy import: a worker process of a frozen build re-enters here.
    multiprocessing.freeze_support()
    import os

    if os.path.splitext(os.path.basename(sys.executable))[0].lower() == "pmgi":
        from pmgi_gui.cli import main
    else:
        from pmgi_gui.app.main import main
    sys.exit(main())
