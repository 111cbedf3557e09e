"""The model file.

Its format on disk (:mod:`~mmocc.io.format`), the JSON header schema
(:mod:`~mmocc.io.header`) and the checks of its tensors
(:mod:`~mmocc.io.tensors`).
"""
