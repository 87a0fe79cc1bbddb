"""Faces of perfgate inside other tools, each thin over the Python API:

    pytest_plugin.py   the pytest plugin (registered through the ``pytest11`` entry point):
                       options, the marker, the session's summary and JSON, pytest-xdist
    pytest_fixture.py  the ``perfgate`` fixture: measure, compare, and their assertions
"""
