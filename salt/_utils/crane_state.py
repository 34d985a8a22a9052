"""The return of a state function, shared by the formula's state modules.

Pure Python (stdlib only); the state modules reach it through ``__utils__``.
"""


def ret(name, result=True, comment="", changes=None):
    """A state's return: ``result`` True, False or None (``test=True``: a change planned)."""
    return {"name": name, "result": result, "comment": comment, "changes": changes or {}}
