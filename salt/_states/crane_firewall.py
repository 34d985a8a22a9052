"""
Open and close CraneSched's ports with ufw or firewalld, touching only the formula's own
rules (``crane_firewall`` utility: ufw rules commented ``crane-formula``, the firewalld
service ``crane-formula``). Both states read the rules present first, honour ``test=True``
(result None and the planned change) and change nothing when the rules are as wanted.
"""

__virtualname__ = "crane_firewall"

BACKENDS = ("ufw", "firewalld")
UFW_CONF = "/etc/ufw/ufw.conf"


def __virtual__():
    return __virtualname__


def _ret(name, result=True, comment="", changes=None):
    return __utils__["crane_state.ret"](name, result, comment, changes)


def _run(cmd):
    out = __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True)
    return out["retcode"], out["stdout"], out["stderr"] or out["stdout"]


def _inactive(backend, closing):
    """Why the firewall cannot or need not be changed, or None. ufw keeps its rules while
    disabled, so closing still removes the formula's; firewall-cmd needs a running firewalld."""
    program = "ufw" if backend == "ufw" else "firewall-cmd"
    if not __salt__["cmd.which"](program):
        return f"{backend} is not installed"
    if backend == "ufw":
        return None if closing or _ufw_active() else "ufw is not active"
    return None if _run(["firewall-cmd", "--state"])[0] == 0 else "firewalld is not running"


def _ufw_active():
    """``ufw status`` says active; asked only when ufw.conf has ufw enabled (without it ufw
    loads no rules: no need to start ufw, a Python program, on every run to hear so)."""
    try:
        with open(UFW_CONF, encoding="utf-8") as handle:
            if not __utils__["crane_firewall.ufw_conf_enabled"](handle.read()):
                return False
    except OSError:
        pass  # no ufw.conf where ufw expects it: ask ufw
    return "Status: active" in _run(["ufw", "status"])[1]


def opened(name, backend, ports, sources=None, zone=""):
    """
    The node's CraneSched ``ports`` (TCP) open in ``backend`` (``ufw`` or ``firewalld``),
    from anywhere or, with ``sources``, only from those networks (CIDR); the formula's rules
    for other ports or sources are removed. firewalld: the ports are the service
    ``crane-formula``, in ``zone`` (default: firewalld's default zone) or in rich rules for
    the sources. Nothing happens where the firewall is not active.
    """
    rules = __utils__["crane_firewall.wanted"](ports, sources)
    return _converge(name, backend, rules, zone, closing=False)


def closed(name, backend):
    """
    Every rule the formula opened in ``backend`` removed (ufw rules commented
    ``crane-formula``; the firewalld service ``crane-formula`` and what refers to it), and
    nothing else.
    """
    return _converge(name, backend, [], "", closing=True)


def _converge(name, backend, rules, zone, closing):
    if backend not in BACKENDS:
        return _ret(name, False, f"firewall backend '{backend}' is not one of ufw, firewalld")
    inactive = _inactive(backend, closing)
    if inactive:
        ports = ", ".join(sorted({f"{port}/tcp" for _, port in rules}))
        return _ret(name, comment=f"{inactive}: {ports or 'its rules'} left as they are")
    if backend == "ufw":
        return _ufw(name, rules)
    return _firewalld(name, rules, zone)


def _done(name, commands, changes, wanted_text):
    """Run ``commands`` (unless test=True); the state's return."""
    if not commands:
        return _ret(name, comment=wanted_text)
    if __opts__["test"]:
        return _ret(name, None, f"would change the firewall: {wanted_text}", changes)
    for cmd in commands:
        code, _, err = _run(cmd)
        if code:
            text = f"`{' '.join(cmd)}` failed ({code}): {err.strip()}"
            return _ret(name, False, text, {"failed": " ".join(cmd)})
    return _ret(name, comment=wanted_text, changes=changes)


def _wanted_text(backend, rules):
    shown = [__utils__["crane_firewall.describe"](rule) for rule in rules]
    return f"{backend}: " + ("; ".join(shown) + " open" if shown else "no crane-formula rules")


def _ufw(name, rules):
    fw = __utils__
    code, out, err = _run(["ufw", "show", "added"])
    if code:
        return _ret(name, False, f"`ufw show added` failed ({code}): {err.strip()}")
    add, remove = fw["crane_firewall.plan"](fw["crane_firewall.ufw_present"](out), rules)
    changes = {}
    if add:
        changes["opened"] = [fw["crane_firewall.describe"](rule) for rule in add]
    if remove:
        changes["closed"] = [fw["crane_firewall.describe"](rule) for rule in remove]
    commands = fw["crane_firewall.ufw_commands"](add, remove)
    return _done(name, commands, changes, _wanted_text("ufw", rules))


def _service_ports():
    """The ports of the formula's firewalld service, None when it does not exist."""
    code, out, _ = _run(__utils__["crane_firewall.service_query"]())
    return None if code else __utils__["crane_firewall.service_ports"](out)


def _firewalld(name, rules, zone):
    fw = __utils__
    listing = {}
    for where, extra in (("permanent", ["--permanent"]), ("runtime", [])):
        code, out, err = _run(["firewall-cmd", *extra, "--list-all-zones"])
        if code:
            return _ret(name, False, f"`firewall-cmd --list-all-zones` failed: {err.strip()}")
        listing[where] = fw["crane_firewall.zones_present"](out)
    zone = zone or _run(["firewall-cmd", "--get-default-zone"])[1].strip()
    if rules and zone not in listing["permanent"]:
        known = ", ".join(sorted(listing["permanent"]))
        text = f"crane:firewall_zone: no firewalld zone '{zone}' on this node (zones: {known})"
        return _ret(name, False, text)
    networks = list(dict.fromkeys(net for net, _ in rules))
    ports = sorted({port for _, port in rules})
    commands, added, removed = fw["crane_firewall.firewalld_changes"](
        listing["permanent"], zone, networks, _service_ports(), ports
    )
    changes = {key: value for key, value in (("opened", added), ("closed", removed)) if value}
    if commands or listing["runtime"] != listing["permanent"]:
        # a service is defined in the permanent configuration only: reload to use it
        commands = [*commands, ["firewall-cmd", "--reload"]]
        changes["reloaded"] = "firewall-cmd --reload (runtime = permanent configuration)"
    return _done(name, commands, changes, _wanted_text(f"firewalld zone {zone}", rules))
