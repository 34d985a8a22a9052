"""Where CraneSched's ``pam_crane.so`` goes in sshd's PAM stack, and whether a node may get it.

Pure Python (stdlib only). Loaded by Salt's loader as a ``_utils`` module and imported
directly by the tests.

CraneSched's PAM guide puts the module in ``/etc/pam.d/sshd`` twice: an ``account`` line
*before* the account include (RHEL ``account include password-auth``, Debian
``@include common-account``) and a ``session`` line *after* the session include, both with
the control ``[success=ok module_unknown=ignore default=bad]``. The formula adds one line
before each: ``pam_succeed_if.so uid eq 0`` jumps over pam_crane for root. pam_crane lets
root in by itself, but only once it runs; the jump keeps root's SSH working whatever the
module does (a hung craned socket, a broken build, a config it cannot read), which is the
console-free way back that CraneSched's guide asks admins to keep open.
"""

import re

#: The control CraneSched's guide gives pam_crane.so in both phases.
CONTROL = "[success=ok module_unknown=ignore default=bad]"
#: Marks the formula's lines, so clean removes exactly them.
MARK = "# Managed by Salt (crane formula, crane:pam:manage): pam_crane.so, root skips it"
PHASES = ("account", "session")


def module_arg(module_path, absolute, config_path=None, default_config="/etc/crane/config.yaml"):
    """The module as the PAM line names it: the absolute path where PAM's own directory is
    elsewhere (Debian: CraneSched installs to /usr/lib64/security), else the file name; with
    ``config_path=`` when config.yaml is not where pam_crane looks by default."""
    name = module_path if absolute else module_path.rsplit("/", 1)[-1]
    if config_path and config_path != default_config:
        return f"{name} config_path={config_path}"
    return name


def block(phase, module):
    """The formula's lines for one phase: the mark, root's jump over pam_crane, pam_crane."""
    return [
        MARK,
        f"{phase:<10} [success=1 default=ignore] pam_succeed_if.so quiet uid eq 0",
        f"{phase:<10} {CONTROL} {module}",
    ]


def _include_re(phase, include):
    """``@include <include>`` (Debian) or ``<phase> include|substack <include>`` (RHEL)."""
    name = re.escape(include)
    return re.compile(
        rf"^\s*(@include\s+{name}|{phase}\s+(include|substack)\s+{name})\s*(#.*)?$",
    )


def _strip(lines, module):
    """The lines without the formula's blocks (matched line by line, exactly)."""
    ours = {line for phase in PHASES for line in block(phase, module)}
    return [line for line in lines if line.rstrip() not in ours]


def foreign_lines(text, module):
    """pam_crane lines that are not the formula's (an admin's own): ``[(number, line)]``."""
    ours = {line for phase in PHASES for line in block(phase, module)}
    return [
        (number, line)
        for number, line in enumerate(text.splitlines(), 1)
        if "pam_crane" in line and not line.lstrip().startswith("#") and line.rstrip() not in ours
    ]


def _anchor(lines, phase, include, path):
    pattern = _include_re(phase, include)
    for index, line in enumerate(lines):
        if pattern.match(line):
            return index
    raise ValueError(
        f"{path} has no {phase} include of {include} "
        f"(`@include {include}` or `{phase} include {include}`), where CraneSched's guide "
        f"puts pam_crane.so"
    )


def place(text, module, account_include, session_include, path="/etc/pam.d/sshd"):
    """``text`` with the formula's account block right before the account include and its
    session block right after the session include; blocks elsewhere are moved there. Raises
    ValueError naming the file when an include is missing or an admin's own pam_crane line
    is in the way."""
    foreign = foreign_lines(text, module)
    if foreign:
        number, line = foreign[0]
        raise ValueError(
            f"{path} line {number} already has a pam_crane line the formula did not write: "
            f"{line.strip()!r}; remove it or leave crane:pam:manage off"
        )
    lines = _strip(text.splitlines(), module)
    account = _anchor(lines, "account", account_include, path)
    session = _anchor(lines, "session", session_include, path)
    # the later position first, so the earlier one stays valid
    for index, phase in sorted([(account, "account"), (session + 1, "session")], reverse=True):
        lines[index:index] = block(phase, module)
    return "\n".join(lines) + "\n"


def remove(text, module):
    """``text`` without the formula's lines (and nothing else)."""
    lines = _strip(text.splitlines(), module)
    if not lines:
        return ""
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def readiness_problems(node, *, module_path, module_exists, socket_path, socket_ok, health):
    """Why pam_crane would lock users out of ``node`` now: the module file is missing, craned
    does not serve PAM on its socket, or cranectld does not list the node up. ``health`` is
    crane_cinfo.health's report for the node, or the error text when cinfo failed."""
    problems = []
    if not module_exists:
        problems.append(f"{node}: {module_path} does not exist (CraneSched's craned package)")
    if not socket_ok:
        problems.append(
            f"{node}: craned does not serve PAM: {socket_path} is not a socket (craned down?)"
        )
    if isinstance(health, str):
        problems.append(f"{node}: cannot ask cranectld whether the node is up: {health}")
    elif not health.get("healthy"):
        problems.append(f"{node} is not up in cinfo: {health.get('summary')}")
    return problems
