"""The benchmark row type and the table printer."""

from dataclasses import dataclass

COLUMNS = ("SECTION", "FIGURE", "OURS", "BASELINE", "BASELINE VALUE", "RATIO", "NOTE")


@dataclass(frozen=True)
class Row:
    """One figure of ours, and what it was compared against in the same run.

    ``ours`` and ``baseline_value`` are in ``unit``; ``None`` means "not measured" (say why
    in ``note``). ``higher_is_better`` is False for times, True for rates.
    """

    section: str
    figure: str
    ours: float | None
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    note: str = ""
    higher_is_better: bool = False

    @property
    def ratio(self):
        """How many times better ours is than the baseline (above 1: ours is better)."""
        if not self.ours or not self.baseline_value:
            return None
        if self.higher_is_better:
            return self.ours / self.baseline_value
        return self.baseline_value / self.ours

    def cells(self):
        """The row as table cells, in ``COLUMNS`` order."""
        ratio = self.ratio
        return (
            self.section,
            self.figure,
            format_value(self.ours, self.unit),
            self.baseline or "-",
            format_value(self.baseline_value, self.unit) if self.baseline else "-",
            f"{ratio:.1f}x" if ratio is not None else "-",
            self.note,
        )


def format_value(value, unit):
    """``71.3 ms``; three significant digits, no exponent; ``n/a`` when not measured."""
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def format_table(rows, title="crane-formula benchmarks"):
    """All rows as one left-aligned text table; RATIO is baseline/ours (above 1: ours wins)."""
    cells = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = [title, ""]
    for line in cells:
        padded = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        lines.append("  ".join(padded).rstrip())
    lines += ["", "RATIO: how many times better ours is than the baseline (above 1: ours wins)."]
    return "\n".join(lines)
