"""CraneSched's host-list ("bracket") syntax, written for the simulator from CraneSched's sources.

Two dialects, because CraneSched has two implementations that differ on edge cases:

* ``CPP`` — the daemons' ``util::ParseHostList`` / ``util::HostNameListToStr``
  (``src/Utilities/PublicHeader/String.cpp``): cranectld and craned use it for ``Nodes``,
  ``Partitions``, gres device paths and the NODELIST they report.
* ``GO`` — the FrontEnd's copy (``internal/util/string.go``) used by cinfo and ccontrol. It
  splits a bracket body with ``strings.FieldsFunc`` (empty fields vanish: ``cn[1,,2]`` is
  accepted, ``cn[]`` and ``[1-3]`` give no host), keeps empty items (``a,,b`` gives an empty
  name), lets a digit at index 0 start a number when compressing, and its final bracket
  clean-up advances its search position wrongly (reproduced).

``expand`` returns a list of names, or None where CraneSched's parser returns false.
``compress`` returns CraneSched's compressed string. Numbers are Python ints (no overflow).
"""

import re

CPP, GO = "cpp", "go"
_ITEM_PATTERN = re.compile(r".*\[(.*)\](\..*)*")  # RE2::FullMatch / Go MatchString with "$"
_NUMBER = re.compile(r"\d+")
_RANGE = re.compile(r"(\d+)-(\d+)")


# --------------------------------------------------------------------------- parsing
def _split_items(text):
    """The bracket-aware split at top-level commas; None on a bracket error."""
    items, item, group = [], "", ""
    for char in text.replace(" ", "") + ",":
        if char == "[":
            if group:
                return None  # "duplicate brackets"
            group = char
        elif char == "]":
            if not group:
                return None  # "isolated bracket"
            item += group + char
            group = ""
        elif char == "," and not group:
            items.append(item)
            item = ""
        elif group:
            group += char
        else:
            item += char
    return None if group else items


def _unit(head, body_parts, dialect):
    """Names of one ``head[body`` segment; None on a format error."""
    names = []
    for part in body_parts:
        if _NUMBER.fullmatch(part):
            names.append(head + part)
            continue
        scope = _RANGE.fullmatch(part)
        if not scope:
            return None
        start, end = scope.group(1), scope.group(2)
        width = len(start)
        names += [head + str(n).zfill(width) for n in range(int(start), int(end) + 1)]
    return names


def _segment(text, dialect):
    if dialect == GO:  # strings.FieldsFunc drops empty fields
        fields = [f for f in re.split(r"[\[,]", text) if f]
        if not fields:
            return []
        return _unit(fields[0], fields[1:], dialect)
    fields = re.split(r"[\[,]", text)
    return _unit(fields[0], fields[1:], dialect)


def _expand_item(item, dialect):
    """``ParseNodeList``: cartesian product of the bracket groups, then the suffix."""
    *segments, suffix = item.split("]")
    result = [""]
    for segment in segments:
        unit = _segment(segment, dialect)
        if unit is None:
            return None
        result = [left + right for left in result for right in unit]
    return [name + suffix for name in result]


def expand(text, dialect=CPP):
    """``ParseHostList``: the names of ``text`` in order, or None where CraneSched fails."""
    items = _split_items(str(text))
    if items is None:
        return None
    names = []
    for raw in items:
        item = raw.strip(" \t\n\v\f\r") if dialect == CPP else raw.strip()
        if item == "" and dialect == CPP:
            continue
        if not _ITEM_PATTERN.fullmatch(item):
            names.append(item)
            continue
        expanded = _expand_item(item, dialect)
        if expanded is None:
            return None
        names += expanded
    return names


# --------------------------------------------------------------------------- compression
def _first_number(name, dialect):
    """``FoundFirstNumberWithoutBrackets``: (start, end) of the first digit run outside
    brackets, or None. In C++ a digit at index 0 cannot start it (its start is 0 = unset)."""
    start, opens = None, 0
    for i, char in enumerate(name):
        if char == "[":
            opens += 1
        elif char == "]":
            opens -= 1
        elif not opens:
            digit = "0" <= char <= "9"
            unset = start is None or (dialect == CPP and start == 0)
            if unset and digit and (i > 0 or dialect == GO):
                start = i
            elif not unset and not digit:
                return start, i
    if start is None or (dialect == CPP and start == 0):
        return None
    return start, len(name)


def _runs(numbers):
    """Sorted by (length, value), de-duplicated, consecutive values merged into a-b."""
    ordered = []
    for num in sorted(numbers, key=lambda s: (len(s), int(s))):
        if not ordered or ordered[-1] != num:
            ordered.append(num)
    parts, first, last = [], None, None
    for num in ordered:
        if first is not None and int(num) == int(last) + 1:
            last = num
            continue
        if first is not None:
            parts.append(first if first == last else f"{first}-{last}")
        first = last = num
    parts.append(first if first == last else f"{first}-{last}")
    return ",".join(parts)


def _fold_once(names, dialect):
    """``HostNameListToStr_``: (result, done)."""
    if len(names) <= 1:
        return list(names), True
    groups, result = {}, []
    for name in names:
        if not name:
            continue
        found = _first_number(name, dialect)
        if found is None:
            result.append(name)
            continue
        start, end = found
        key = f"{name[:start]}<{name[end:]}"
        groups.setdefault(key, []).append(name[start:end])
    if not groups:
        return result, True
    for key, numbers in groups.items():
        head, _, tail = key.partition("<")
        result.append(f"{head}[{_runs(numbers)}]{tail}")
    return result, False


def _drop_plain_brackets_cpp(text):
    out, pos = text, 0
    while (left := out.find("[", pos)) != -1:
        right = out.find("]", left)
        if right == -1:
            break
        inner = out[left + 1 : right]
        if "-" in inner or "," in inner:
            pos = right + 1
        else:
            out = out[:left] + inner + out[right + 1 :]
            pos = left
    return out


def _drop_plain_brackets_go(text):
    """The Go version, whose next search position is the found offset doubled."""
    out = text
    left = out.find("[")
    while left != -1:
        right = out.find("]", left)
        if right == -1:
            break
        inner = out[left + 1 : right]
        if "-" not in inner and "," not in inner:
            out = out[:left] + inner + out[right + 1 :]
        else:
            left = right + 1
        found = out.find("[", left) - left if left <= len(out) else -1
        left = found + found if found >= 0 else -1
    return out


def compress(names, dialect=CPP):
    """``HostNameListToStr``: fold until stable, sort, join with ``,``, drop plain brackets."""
    current = list(names)
    while True:
        current, done = _fold_once(current, dialect)
        if done:
            joined = ",".join(sorted(current))
            if dialect == GO:
                return _drop_plain_brackets_go(joined)
            return _drop_plain_brackets_cpp(joined)
