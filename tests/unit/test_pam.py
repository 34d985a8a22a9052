"""pam_crane.so in sshd's PAM stack: where the lines go (CraneSched's PAM guide), what clean
removes, and the readiness gate before they are added."""

import crane_pam
import pytest

from tests.support.dunder import load
from tests.support.pam_files import DEBIAN_SSHD, ROCKY_SSHD

DEBIAN_MODULE = "/usr/lib64/security/pam_crane.so"
CASES = {
    "debian": (DEBIAN_SSHD, DEBIAN_MODULE, "common-account", "common-session"),
    "rocky": (ROCKY_SSHD, "pam_crane.so", "password-auth", "password-auth"),
}
HEALTHY = {"healthy": True, "summary": "1/1 nodes up"}


def placed(case):
    text, module, account, session = CASES[case]
    return crane_pam.place(text, module, account, session)


def index(lines, pattern):
    return next(i for i, line in enumerate(lines) if pattern in line)


@pytest.mark.parametrize("case", sorted(CASES))
def test_account_right_before_the_account_include_session_right_after(case):
    _, module, account, session = CASES[case]
    lines = placed(case).splitlines()
    crane = [i for i, line in enumerate(lines) if "pam_crane" in line and line[0] != "#"]
    assert len(crane) == 2
    account_line = next(i for i in crane if lines[i].startswith("account"))
    session_line = next(i for i in crane if lines[i].startswith("session"))
    assert account in lines[account_line + 1]
    assert "include" in lines[account_line + 1]
    # session: mark, root's jump, pam_crane right after the include
    assert session in lines[session_line - 3] and "include" in lines[session_line - 3]
    assert lines[session_line].split() == [
        "session",
        "[success=ok",
        "module_unknown=ignore",
        "default=bad]",
        module,
    ]


@pytest.mark.parametrize("case", sorted(CASES))
def test_root_jumps_over_exactly_the_pam_crane_line(case):
    lines = placed(case).splitlines()
    for phase in ("account", "session"):
        crane = index(lines, f"{phase}    [success=ok module_unknown=ignore default=bad]")
        jump = lines[crane - 1].split()
        assert jump[:3] == [phase, "[success=1", "default=ignore]"]
        assert jump[3:] == ["pam_succeed_if.so", "quiet", "uid", "eq", "0"]
        assert lines[crane - 2] == crane_pam.MARK


def test_debian_names_the_module_by_its_absolute_path_rocky_by_name():
    assert crane_pam.module_arg(DEBIAN_MODULE, absolute=True) == DEBIAN_MODULE
    assert crane_pam.module_arg(DEBIAN_MODULE, absolute=False) == "pam_crane.so"
    assert crane_pam.module_arg(DEBIAN_MODULE, False, "/etc/crane/config.yaml") == "pam_crane.so"
    assert (
        crane_pam.module_arg(DEBIAN_MODULE, False, "/opt/crane/config.yaml")
        == "pam_crane.so config_path=/opt/crane/config.yaml"
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_placing_twice_changes_nothing_and_other_lines_are_untouched(case):
    text, module, account, session = CASES[case]
    once = placed(case)
    assert crane_pam.place(once, module, account, session) == once
    assert [line for line in once.splitlines() if line not in text.splitlines()] == [
        *crane_pam.block("account", module),
        *crane_pam.block("session", module),
    ]


@pytest.mark.parametrize("case", sorted(CASES))
def test_remove_gives_back_the_file_byte_for_byte(case):
    text, module, _, _ = CASES[case]
    assert crane_pam.remove(placed(case), module) == text
    assert crane_pam.remove(text, module) == text


def test_misplaced_blocks_are_moved_back():
    text, module, account, session = CASES["debian"]
    moved = crane_pam.block("session", module) + text.splitlines()
    assert crane_pam.place("\n".join(moved) + "\n", module, account, session) == placed("debian")


def test_remove_leaves_an_admins_own_pam_crane_line():
    text, module, _, _ = CASES["rocky"]
    own = "account    required     pam_crane.so\n"
    assert crane_pam.remove(placed("rocky") + own, module) == text + own


def test_an_admins_own_pam_crane_line_is_an_error_naming_it():
    text, module, account, session = CASES["rocky"]
    lines = text.splitlines()
    lines.insert(3, "account    required     pam_crane.so")
    with pytest.raises(ValueError, match=r"/etc/pam.d/sshd line 4 .*'account    required"):
        crane_pam.place("\n".join(lines), module, account, session)
    commented = text + "# account required pam_crane.so\n"
    assert "pam_crane" in crane_pam.place(commented, module, account, session)


@pytest.mark.parametrize("phase", ["account", "session"])
def test_a_missing_include_is_an_error_naming_file_and_include(phase):
    text, module, account, session = CASES["debian"]
    broken = text.replace(f"@include common-{phase}\n", "")
    with pytest.raises(ValueError, match=f"/etc/pam.d/sshd has no {phase} include of common-"):
        crane_pam.place(broken, module, account, session)


def test_substack_counts_as_an_include():
    text = "account substack password-auth\nsession  include password-auth # site\n"
    lines = crane_pam.place(text, "pam_crane.so", "password-auth", "password-auth").splitlines()
    assert lines[3] == "account substack password-auth"
    assert lines[4] == "session  include password-auth # site"
    assert lines[-1].endswith("pam_crane.so")


def facts(**changed):
    ready = {"module_path": "/m", "module_exists": True, "socket_path": "/s", "socket_ok": True}
    return {**ready, "health": HEALTHY, **changed}


def test_ready_node_has_no_problem():
    assert crane_pam.readiness_problems("cn01", **facts()) == []


def test_every_readiness_problem_names_the_node_and_what_is_missing():
    problems = crane_pam.readiness_problems(
        "cn01",
        **facts(
            module_path="/m.so",
            module_exists=False,
            socket_path="/var/crane/craned/craned_pam.sock",
            socket_ok=False,
            health="cinfo not found",
        ),
    )
    assert problems == [
        "cn01: /m.so does not exist (CraneSched's craned package)",
        "cn01: craned does not serve PAM: /var/crane/craned/craned_pam.sock is not a socket "
        "(craned down?)",
        "cn01: cannot ask cranectld whether the node is up: cinfo not found",
    ]
    down = {"healthy": False, "summary": "0/1 nodes up; down: cn01"}
    assert crane_pam.readiness_problems("cn01", **facts(health=down)) == [
        "cn01 is not up in cinfo: 0/1 nodes up; down: cn01"
    ]


# --- the states ---------------------------------------------------------------------------

STATE_ARGS = {
    "node": "cn01",
    "module_path": DEBIAN_MODULE,
    "absolute": True,
    "account_include": "common-account",
    "session_include": "common-session",
    "config_path": "/etc/crane/config.yaml",
    "timeout": 0,
    "interval": 0,
}


class Gate:
    """crane.pam_check as the states call it: ready or not, counting the calls."""

    def __init__(self, errors=()):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, node, module_path):
        self.calls += 1
        return {"valid": not self.errors, "node": node, "errors": self.errors}


def sshd_file(tmp_path, text=DEBIAN_SSHD):
    path = tmp_path / "sshd"
    path.write_text(text)
    path.chmod(0o640)
    return path


def pam_states(gate, test=False):
    return load("_states", __salt__={"crane.pam_check": gate}, __opts__={"test": test})


def test_state_adds_the_lines_once_keeping_the_file_mode(tmp_path):
    path = sshd_file(tmp_path)
    gate = Gate()
    ret = pam_states(gate).pam_configured(str(path), **STATE_ARGS)
    assert ret["result"] is True, ret
    assert path.read_text() == crane_pam.place(
        DEBIAN_SSHD, DEBIAN_MODULE, "common-account", "common-session"
    )
    assert "+account    [success=ok" in ret["changes"]["diff"]
    assert path.stat().st_mode & 0o777 == 0o640
    again = pam_states(Gate(["would fail"])).pam_configured(str(path), **STATE_ARGS)
    assert again["result"] is True and again["changes"] == {}, again


def test_state_under_test_plans_and_writes_nothing(tmp_path):
    path = sshd_file(tmp_path)
    for gate in (Gate(), Gate(["cn01 is not up in cinfo: 0/1 nodes up"])):
        ret = pam_states(gate, test=True).pam_configured(str(path), **STATE_ARGS)
        assert ret["result"] is None and ret["changes"]["diff"], ret
        assert path.read_text() == DEBIAN_SSHD
    assert "cn01 is not up in cinfo" in ret["comment"]


def test_state_fails_and_leaves_the_file_while_the_node_is_not_ready(tmp_path):
    path = sshd_file(tmp_path)
    gate = Gate(["cn01: craned does not serve PAM: /s is not a socket (craned down?)"])
    ret = pam_states(gate).pam_configured(str(path), **STATE_ARGS)
    assert ret["result"] is False and ret["changes"] == {}
    assert "would refuse every user's SSH on cn01" in ret["comment"]
    assert "craned does not serve PAM" in ret["comment"]
    assert path.read_text() == DEBIAN_SSHD


def test_state_fails_naming_a_missing_include_or_file(tmp_path):
    path = sshd_file(tmp_path, DEBIAN_SSHD.replace("@include common-session\n", ""))
    ret = pam_states(Gate()).pam_configured(str(path), **STATE_ARGS)
    assert ret["result"] is False
    assert f"{path} has no session include of common-session" in ret["comment"]
    missing = pam_states(Gate()).pam_configured(str(tmp_path / "none"), **STATE_ARGS)
    assert missing["result"] is False and "does not exist on cn01" in missing["comment"]


def test_a_symlinked_pam_file_stays_a_symlink(tmp_path):
    target = sshd_file(tmp_path)
    link = tmp_path / "sshd-link"
    link.symlink_to(target)
    assert pam_states(Gate()).pam_configured(str(link), **STATE_ARGS)["result"] is True
    assert link.is_symlink() and "pam_crane" in target.read_text()


def test_absent_removes_exactly_the_formulas_lines(tmp_path):
    path = sshd_file(tmp_path)
    pam_states(Gate()).pam_configured(str(path), **STATE_ARGS)
    clean_args = {"module_path": DEBIAN_MODULE, "absolute": True}
    planned = pam_states(Gate(), test=True).pam_absent(str(path), **clean_args)
    assert planned["result"] is None and "-account    [success=ok" in planned["changes"]["diff"]
    ret = pam_states(Gate()).pam_absent(str(path), **clean_args)
    assert ret["result"] is True and ret["changes"]
    assert path.read_text() == DEBIAN_SSHD
    assert pam_states(Gate()).pam_absent(str(path), **clean_args)["changes"] == {}
    assert pam_states(Gate()).pam_absent(str(tmp_path / "none"), **clean_args)["result"] is True


# --- the module's check -------------------------------------------------------------------


def test_pam_check_reads_the_socket_module_and_cinfo(tmp_path):
    base = tmp_path / "crane"
    (base / "craned").mkdir(parents=True)
    module_file = tmp_path / "pam_crane.so"
    module = load(
        "_modules",
        __pillar__={"crane": {"config": {"CraneBaseDir": f"{base}/"}}},
        __grains__={"host": "cn01"},
    )
    module.cinfo = lambda: [{"name": "CPU", "nodes": [], "groups": []}]
    module._binary = lambda name: f"/usr/bin/{name}"
    report = module.pam_check(module_path=str(module_file))
    assert report["socket"] == f"{base}/craned/craned_pam.sock"
    assert not report["valid"] and len(report["errors"]) == 3, report
    assert report["errors"][2].startswith("cn01 is not up in cinfo")
    assert module.__context__["retcode"] == 1


def test_pam_check_without_cinfo_says_compute_nodes_need_the_frontend(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    module = load("_modules", __pillar__={"crane": {"config": {}}}, __grains__={"host": "cn01"})
    errors = module.pam_check(module_path="/nonexistent/pam_crane.so")["errors"]
    assert errors[-1] == (
        "cn01: cannot ask cranectld whether the node is up: cinfo not found (crane:bin_dir or "
        "PATH); compute nodes need the frontend: crane:role_packages:compute"
    )
