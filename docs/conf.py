"""Sphinx configuration of the npystream API reference (make docs)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "client", "python"))
sys.path.insert(0, os.path.join(HERE, "_ext"))

project = "npystream"
author = "the npystream authors"
copyright = "2026, " + author
release = "0.5.0"

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "protodoc"]
protodoc_root = os.path.join(ROOT, "proto")
exclude_patterns = ["_build", "_ext", "Doxyfile", "*.png"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_type_aliases = {}
# The generated stubs (npystream.v1) and numpy are not documented here: their
# names stay as written instead of links.
autodoc_mock_imports = ["matplotlib"]
html_theme = "alabaster"
html_theme_options = {"description": "tensors resident on the GPU, streamed as .npy"}
html_static_path = []
smartquotes = False  # comments keep "--flag" and quotes as written
