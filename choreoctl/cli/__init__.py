"""The thin command-line layer: parse, call one core function, render.

Nothing under ``choreoctl/cli`` holds logic a test would want to call directly; the
core packages never import from here.
"""
