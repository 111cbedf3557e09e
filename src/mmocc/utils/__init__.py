"""Standard-library helpers any module may use.

:mod:`~mmocc.utils.files` holds atomic writes and UTF-8 reading,
:mod:`~mmocc.utils.text` file-name-safe labels, suggestions, ``KEY=VALUE`` parsing and
the first line of an error.
"""
