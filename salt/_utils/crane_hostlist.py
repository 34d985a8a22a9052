"""CraneSched host lists ("bracket" syntax), with CraneSched's exact semantics.

``expand`` behaves like ``util::ParseHostList`` and ``compress`` like ``util::HostNameListToStr``
(CraneSched ``src/Utilities/PublicHeader/String.cpp``): the same names, in the same order, for
every input CraneSched accepts. Where CraneSched fails without saying why, ``expand`` raises
``HostListError`` with the expression and the reason.

Pure Python and standard library only: loaded by Salt's loader as a ``_utils`` module and
imported directly by the other utilities and the CraneSched simulator.

Corners that follow from CraneSched's code (not stated by its docs):

* ``expand``: the bracket checks run over the whole expression before any item is expanded,
  so ``cn[x],a]`` reports the isolated bracket, not the bad body. A range end or start above
  2**64-1 fails, as CraneSched's ``from_chars`` into ``size_t`` does (a range ending at
  exactly 2**64-1 never ends there: its counter wraps; here it just ends). Items containing a
  newline never match the expansion pattern (``.`` does not match it) and stay literal.
* ``compress``: even a single host goes through the final bracket removal
  (``["cn[5]"]`` gives ``cn5``). Empty names are dropped unless the list has exactly one name.
  Number runs that touch a bracket (``a1[2]3``) take the bracket with them, and CraneSched
  orders such runs by their leading digits; ties are broken by the string here, where
  CraneSched's ``std::sort`` leaves them in an unspecified order. Groups are keyed as
  ``prefix + "<" + suffix`` and split at the first ``<``, so a ``<`` in a prefix moves into the
  suffix, as in CraneSched. Numbers above 2**31-1 make CraneSched's ``stoi`` throw; here they
  fold like any other number.
"""

import re
from collections.abc import Iterable
from operator import sub

__all__ = ["MAX_HOSTS", "HostListError", "compress", "count", "expand"]

# The most names one expression may expand to. Far above any real cluster (the largest
# machines have a few hundred thousand nodes), far below what a typo like ``cn[1-99999999]``
# would allocate: the size is computed before any name is built.
MAX_HOSTS = 1_000_000
SIZE_MAX = 2**64 - 1  # CraneSched parses range bounds into a size_t
_ITEM_WHITESPACE = " \t\n\v\f\r"  # absl::StripAsciiWhitespace

_GROUP = r"\[[^\[\]]*\]"
# Compression, names each after a newline: the prefix (a digit at index 0 never starts a
# number; bracket groups are skipped), then the first run of digits, possibly empty;
# ``split`` leaves the rest of the name between matches.
_FIRST_NUMBER_LINES = re.compile(r"\n([0-9]?[^0-9\n]*)([0-9]*)")
_FIRST_NUMBER_BRACKETED_LINES = re.compile(r"\n([0-9]?(?:[^0-9\[\]\n]|\[[^\[\]\n]*\])*)([0-9]*)")
# One name with well-formed brackets: prefix, first digit run outside brackets (which runs
# on through bracket groups glued to it, as CraneSched's scan does), rest.
_FIRST_NUMBER = re.compile(rf"([0-9]?(?:[^0-9\[\]]|{_GROUP})*)([0-9](?:[0-9]|{_GROUP})*)")
_WELL_FORMED = re.compile(rf"[^\[\]]*(?:{_GROUP}[^\[\]]*)*")
# Final clean-up: a bracket pair around neither "-" nor ",", and a "[" before a "]" closes.
_SINGLE_BRACKET = re.compile(r"\[([^\[\]\-,]*)\]")
_NESTED_BRACKET = re.compile(r"\[[^\]]*\[")


class HostListError(ValueError):
    """A host-list expression CraneSched would reject; the message says which and why."""

    def __init__(self, expr, reason):
        self.expr = expr
        self.reason = reason
        super().__init__(f"invalid host list {expr!r}: {reason}")


# --------------------------------------------------------------------------- expand


def expand(expr: str, max_hosts: int = MAX_HOSTS, *, any_suffix: bool = False) -> list[str]:
    """Expand a CraneSched host-list expression into host names, in CraneSched's order.

    ``cn[01-03],gpu1`` -> ``['cn01', 'cn02', 'cn03', 'gpu1']``. Raises ``HostListError``
    where CraneSched's ``ParseHostList`` fails, and when the expression would give more than
    ``max_hosts`` names (default ``MAX_HOSTS``; a caller may ask for less): the count comes
    first, so a typo like ``cn[1-99999999]`` fails at once instead of eating memory.

    ``any_suffix=True`` departs from CraneSched on purpose: bracket groups are expanded
    whatever follows them. CraneSched's own compressed output (cinfo's NODELIST) can be
    ``cn[01-02]-ib`` or ``r[01-03]n05``, which its parser keeps as one literal name; this
    reads such output back into the names.
    """
    limit = MAX_HOSTS if max_hosts is None else min(max_hosts, MAX_HOSTS)
    items, plain = _parsed_items(expr, any_suffix)
    total = len(items) if plain else sum(_item_count(item) for item in items)
    if total > limit:
        raise HostListError(expr, f"expands to {total} hosts, more than {limit} hosts")
    if plain:
        return items  # a list of names without brackets: nothing to build
    hosts = []
    for item in items:
        if isinstance(item, str):
            hosts.append(item)
        else:
            hosts.extend(_item_names(*item))
    return hosts


def count(expr: str, *, any_suffix: bool = False) -> int:
    """How many names ``expand(expr)`` gives, without building them (no bound applies)."""
    return sum(_item_count(item) for item in _parsed_items(expr, any_suffix)[0])


def _parsed_items(expr, any_suffix):
    """``(items, plain)``: each item a literal name, or (groups, suffix) with each group as
    (prefix, parsed elements); ``plain`` when there is no bracket at all. Raises
    ``HostListError`` as CraneSched's parser fails."""
    if not isinstance(expr, str):
        raise TypeError(f"host list must be a string, not {type(expr).__name__}")
    text = expr.replace(" ", "")
    if "[" not in text and "]" not in text:
        return _plain_items(text), True
    items = []
    for raw in _split_items(text, expr):
        item = raw.strip(_ITEM_WHITESPACE)
        if not item:
            continue
        if _is_expandable(item) or (any_suffix and "]" in item and "\n" not in item):
            items.append(_parse_item(item, expr))
        else:
            items.append(item)
    return items, False


def _plain_items(text):
    """Items of a bracket-free expression, empty ones skipped."""
    items = text.split(",")
    if any(ws in text for ws in _ITEM_WHITESPACE):
        items = [item.strip(_ITEM_WHITESPACE) for item in items]
    return [item for item in items if item]


def _split_items(text, expr):
    """Split at top-level commas, checking bracket balance left to right like CraneSched."""
    items = []
    current = ""
    pos = 0
    while True:
        left = text.find("[", pos)
        stop = left if left >= 0 else len(text)
        if text.find("]", pos, stop) >= 0:
            raise HostListError(expr, "isolated bracket (']' without '[')")
        first, *rest = text[pos:stop].split(",")
        current += first
        if rest:
            items.append(current)
            *middle, current = rest
            items.extend(middle)
        if left < 0:
            items.append(current)
            return items
        right = text.find("]", left + 1)
        nested = text.find("[", left + 1, right if right >= 0 else len(text))
        if nested >= 0:
            raise HostListError(expr, "duplicate brackets ('[' inside '[...]')")
        if right < 0:
            raise HostListError(expr, "isolated bracket ('[' never closed)")
        current += text[left : right + 1]
        pos = right + 1


def _is_expandable(item):
    r"""Whether ``item`` fully matches ``.*\[(.*)\](\..*)*$`` (brackets known balanced).

    That is: some ``]`` ends the item or is followed by ``.``, and no newline anywhere.
    """
    return (item[-1] == "]" or "]." in item) and "\n" not in item


def _parse_item(item, expr):
    """``(groups, suffix)`` of an expandable item: each group is (prefix, elements)."""
    *groups, suffix = item.split("]")
    parsed = []
    for group in groups:
        prefix, _, body = group.partition("[")
        parsed.append((prefix, _parse_body(body, expr)))
    return parsed, suffix


def _item_count(item):
    """Names an item gives: 1 for a literal, else the product of its groups' sizes."""
    if isinstance(item, str):
        return 1
    total = 1
    for _prefix, elements in item[0]:
        total *= _count(elements)
    return total


def _item_names(groups, suffix):
    """The cartesian product of an item's bracket groups, left group varying slowest."""
    if any(not _count(elements) for _prefix, elements in groups):
        return []  # a reversed range empties the product: build none of the other groups
    names = [""]
    for index, (prefix, elements) in enumerate(groups):
        last = index == len(groups) - 1
        units = _body_names(prefix, elements, suffix if last else "")
        names = units if names == [""] else [left + right for left in names for right in units]
    return names


def _parse_body(body, expr):
    """Elements of a bracket body: a digit string, or (start string, low, high) for a range."""
    elements = []
    for element in body.split(","):
        if _is_digits(element):
            elements.append(element)
            continue
        start, dash, end = element.partition("-")
        if not (dash and _is_digits(start) and _is_digits(end)):
            raise HostListError(expr, f"bad bracket body [{body}]: {element!r} is not N or N-M")
        low, high = int(start), int(end)
        if high > SIZE_MAX or low > SIZE_MAX:
            raise HostListError(expr, f"bad bracket body [{body}]: {element!r} is out of range")
        elements.append((start, low, high))
    return elements


def _count(elements):
    """How many names the parsed elements give (a reversed range gives none)."""
    return sum(1 if isinstance(e, str) else max(0, e[2] - e[1] + 1) for e in elements)


def _body_names(prefix, elements, suffix):
    """Names for one ``prefix[body]`` group, ``suffix`` appended, in CraneSched's order."""
    names = []
    for element in elements:
        if isinstance(element, str):
            names.append(prefix + element + suffix)
        else:
            names += _range_names(prefix, *element, suffix)
    return names


def _range_names(prefix, start, low, high, suffix):
    """Names for ``low..high``, zero-padded to the width of the range's start string."""
    template = prefix.replace("%", "%%") + f"%0{len(start)}d" + suffix.replace("%", "%%")
    return map(template.__mod__, range(low, high + 1))


def _is_digits(text):
    """``\\d+`` in RE2: one or more ASCII digits."""
    return text.isdigit() and text.isascii()


# --------------------------------------------------------------------------- compress


def compress(names: Iterable[str]) -> str:
    """Fold host names into CraneSched's compressed form (what cinfo prints).

    ``['cn01', 'cn02', 'cn03', 'gpu1']`` -> ``'cn[01-03],gpu1'``. Follows
    ``util::HostNameListToStr``: repeated passes fold the first bare number of every name,
    then the results are sorted, joined with ``,`` and single-number brackets are dropped.
    """
    if isinstance(names, str):
        raise TypeError("compress() takes a list of host names, not a string")
    hosts, done = list(names), False
    while not done:
        hosts, done = _fold_pass(hosts)
    hosts.sort()
    return _drop_single_brackets(",".join(hosts))


def _fold_pass(hosts):
    """One ``HostNameListToStr_`` pass: (names, whether that was the last pass).

    The last pass is the one that finds no bare number; it still drops empty names.
    """
    if len(hosts) <= 1:
        return hosts, True
    joined = "\n".join(hosts)
    grouped = None
    if joined.count("\n") == len(hosts) - 1 and "" not in hosts:
        grouped = _group_lines(joined)
    groups, impure, folded = grouped or _group_any_names(hosts)
    if not groups:
        return folded, True
    if "<" in joined:
        groups, impure = _merge_cranesched_keys(groups, impure)
    for (prefix, suffix), numbers in groups.items():
        body = _fold_numbers(numbers, (prefix, suffix) in impure)
        folded.append(f"{prefix}[{body}]{suffix}")
    return folded, False


def _group_lines(joined):
    """Fast path of ``_group_any_names`` for non-empty names joined by newlines.

    One regex split over all names. None when a name has a stray bracket or a number
    glued to a bracket (the rest after the number starts with a bracket): those need
    CraneSched's character scan.
    """
    bracketed = "[" in joined or "]" in joined
    pattern = _FIRST_NUMBER_BRACKETED_LINES if bracketed else _FIRST_NUMBER_LINES
    parts = pattern.split("\n" + joined)
    prefixes, numbers, suffixes = parts[1::3], parts[2::3], parts[3::3]
    if bracketed:
        starts = "\n" + "\n".join(suffixes)
        if "\n[" in starts or "\n]" in starts:
            return None
    groups = {}
    plain = []
    for key, number in zip(zip(prefixes, suffixes, strict=True), numbers, strict=True):
        if not number:
            plain.append(key[0])  # no number: the prefix is the whole name
            continue
        found = groups.get(key)
        if found is None:
            groups[key] = [number]
        else:
            found.append(number)
    return groups, set(), plain


def _group_any_names(hosts):
    """Map (prefix, suffix) to the first bare numbers of the names.

    Returns ``(groups, impure, plain)``: ``impure`` holds the keys whose numbers carry
    brackets, ``plain`` the non-empty names without a bare number.
    """
    groups = {}
    impure = set()
    plain = []
    for host in hosts:
        if not host:
            continue
        split = _split_first_number(host)
        if split is None:
            plain.append(host)
            continue
        prefix, number, suffix = split
        groups.setdefault((prefix, suffix), []).append(number)
        if not number.isdigit():
            impure.add((prefix, suffix))
    return groups, impure, plain


def _merge_cranesched_keys(groups, impure):
    """Regroup as CraneSched does: key ``prefix + "<" + suffix``, split at the first ``<``."""
    merged = {}
    merged_impure = set()
    for key, numbers in groups.items():
        prefix, _, rest = ("<".join(key)).partition("<")
        merged.setdefault((prefix, rest), []).extend(numbers)
        if key in impure:
            merged_impure.add((prefix, rest))
    return merged, merged_impure


def _split_first_number(host):
    """(prefix, number, suffix) around the first digit run outside brackets, or None."""
    match = _FIRST_NUMBER.match(host)
    if match is not None:
        start, end = match.span(2)
        if start and (end == len(host) or host[end] not in "[]"):
            return host[:start], host[start:end], host[end:]
    elif _WELL_FORMED.fullmatch(host):
        return None
    return _scan_first_number(host)


def _scan_first_number(host):
    """Character scan of ``FoundFirstNumberWithoutBrackets``, for malformed brackets.

    Bracket depth counts ``[`` up and ``]`` down (a stray ``]`` makes the rest "inside"); a
    digit at index 0 never starts a number; brackets never end one.
    """
    depth = 0
    start = 0
    for index, char in enumerate(host):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif not depth:
            digit = "0" <= char <= "9"
            if not start:
                start = index if digit else 0
            elif not digit:
                return host[:start], host[start:index], host[index:]
    return (host[:start], host[start:], "") if start else None


def _fold_numbers(numbers, impure=False):
    """``1,2,3,5`` -> ``1-3,5``: sorted by (length, value), unique, consecutive runs merged."""
    if len(numbers) == 1:
        return numbers[0]
    unique = sorted(set(numbers))
    if impure:
        unique.sort(key=lambda number: (len(number), _leading_int(number)))
        return ",".join(_runs(unique, list(map(_leading_int, unique))))
    unique.sort(key=len)
    if len(unique) == 1:
        return unique[0]
    # One width: values strictly increase, so a single run spans exactly len-1.
    one_width = len(unique[0]) == len(unique[-1])
    if one_width and int(unique[-1]) - int(unique[0]) == len(unique) - 1:
        return unique[0] + "-" + unique[-1]
    return ",".join(_runs(unique, list(map(int, unique))))


def _runs(numbers, values):
    """``first-last`` (or ``first``) for each run of consecutive ``values``."""
    starts = [0, *(i for i, step in enumerate(map(sub, values[1:], values), 1) if step != 1)]
    ends = [*starts[1:], len(values)]
    return [
        numbers[first] if end - first == 1 else f"{numbers[first]}-{numbers[end - 1]}"
        for first, end in zip(starts, ends, strict=True)
    ]


def _leading_int(number):
    """``stoi``: the value of the leading digits (``1[2]3`` -> 1)."""
    end = 0
    while end < len(number) and "0" <= number[end] <= "9":
        end += 1
    return int(number[:end])


def _drop_single_brackets(text):
    """``RemoveBracketsWithoutDashOrComma``: ``cn[5]`` -> ``cn5``; ``[1-2]``, ``[1,3]`` stay."""
    if _NESTED_BRACKET.search(text):
        return _drop_single_brackets_literally(text)
    # Without nesting, CraneSched's scan drops exactly the brackets this pattern finds.
    return "".join(_SINGLE_BRACKET.split(text))


def _drop_single_brackets_literally(text):
    """The same, editing the string step by step as CraneSched does, for nested brackets."""
    left = 0
    while (left := text.find("[", left)) >= 0:
        right = text.find("]", left)
        if right < 0:
            break
        body = text[left + 1 : right]
        if "-" not in body and "," not in body:
            text = text[:left] + body + text[right + 1 :]
        else:
            left = right + 1
    return text


def try_expand(expr):
    """``(names, None)``, or ``([], CraneSched's complaint)`` when ``expr`` does not parse."""
    try:
        return expand(str(expr)), None
    except HostListError as exc:
        return [], str(exc)


def natural_key(name):
    """Sort key for host names in natural order: cn9 before cn10."""
    parts = re.split(r"([0-9]+)", str(name))  # digit runs land at the odd indices
    return [int(part) if index % 2 else part for index, part in enumerate(parts)]
