"""The Qt layer: main window, views, panels, worker, settings."""
