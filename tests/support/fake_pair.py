"""A fake cluster with a Keepalived control pair (``crane:ha``) instead of one control node.

keepalived is modelled the way the formula configures it: the running keepalived with the
highest priority holds the virtual IP (preemption), a failing check (cranectld stopped with its
alive file left) lowers the priority by the check weight; the new master's notify_master starts
cranectld only when no other cranectld holds the shared lock, a node that turns backup stops its
cranectld (notify_backup), and a keepalived that stops runs no script. cinfo answers only while
the VIP's holder runs cranectld; compute nodes register again after every cranectld start.
"""

from tests.support.fake_cluster import Failed, FakeCluster

PAIR = ("ctl1", "ctl2")
# (how the backup ctl2 is broken, the words naming it): a backup that cannot take over
UNREADY_BACKUPS = (
    (lambda p: p.dead.update(ctl2=False), "ctl2: no answer"),
    (lambda p: p.members["ctl2"].update(alive=True), "ctl2: its alive file exists"),
    (lambda p: p.members["ctl2"].update(cranectld=True), "ctl2: cranectld runs although"),
)
WEIGHT = 20


class FakePair(FakeCluster):
    def __init__(self, state_dir, **kwargs):
        super().__init__(state_dir, **kwargs)
        del self.roles["cranectl"], self.installed["cranectl"], self.hashes["cranectl"]
        for name in PAIR:
            self.roles[name] = ["control"]
            self.installed[name] = "1.1.2"
            self.hashes[name] = "h1"
        self.priorities = {"ctl1": 100, "ctl2": 90}
        self.preempt_delay = 0.0  # seconds before a higher priority takes the VIP from a master
        self.preempt_at = None
        self.minion_only = set()  # dead members whose node (keepalived, cranectld) still runs
        self.ctld_broken = set()  # members whose cranectld exits at once (a bad new version)
        self.backups = []  # (minion, whether any cranectld ran) per crane.backup_db
        self.grain_versions = dict.fromkeys(PAIR, "1.1.2")  # crane:version, set by the formula
        self.members = {n: {"keepalived": True, "cranectld": False, "alive": False, "vip": False}
                        for n in PAIR}  # fmt: skip
        self.elect()

    # -- keepalived
    def effective(self, name):
        member = self.members[name]
        failing = member["alive"] and not member["cranectld"]
        return self.priorities[name] - (WEIGHT if failing else 0)

    def elect(self, due=False):
        up = [n for n in PAIR if n not in self.dead or n in self.minion_only]
        running = [n for n in up if self.members[n]["keepalived"]]
        new = max(running, key=self.effective, default=None)
        old = next((n for n in PAIR if self.members[n]["vip"]), None)
        if new != old and old in running and self.preempt_delay and not due:
            self.preempt_at = self.clock + self.preempt_delay  # VRRP adverts: not at once
            return
        self.preempt_at = None
        for name in PAIR:
            self.members[name]["vip"] = name == new
        if new != old:
            if old in running:
                self.ctld_stop(old)  # notify_backup
            if new and not any(self.members[n]["cranectld"] for n in PAIR):
                self.ctld_start(new)  # notify_master: the lock is free
        self.sync()

    def ctld_start(self, name):
        if name in self.ctld_broken:
            return
        self.members[name].update(cranectld=True, alive=True)
        self.start_ctld()

    def ctld_stop(self, name):
        if self.members[name]["cranectld"]:
            self.members[name].update(cranectld=False, alive=False)  # a clean stop
            self.drained = {}

    def sync(self):
        master = next((n for n in PAIR if self.members[n]["vip"]), None)
        self.ctld_running = bool(master) and self.members[master]["cranectld"]

    def master(self):
        return next((n for n in PAIR if self.members[n]["vip"]), None)

    # -- what the pair's minions answer
    def _crane_settings(self, minion):
        ha = {"enabled": True, "nodes": list(PAIR), "vip": "10.0.0.100/24",
              "vip_name": "cranectl", "priorities": dict(self.priorities),
              "keepalived_service": "keepalived"}  # fmt: skip
        return {**super()._crane_settings(minion), "ha": ha}

    def _crane_ha_status(self, minion):
        if self.preempt_at is not None and self.clock >= self.preempt_at:
            self.elect(due=True)
        member = self.members[minion]
        return {"master": member["vip"], "keepalived": member["keepalived"],
                "cranectld": member["cranectld"], "alive_file": member["alive"]}  # fmt: skip

    def _service_stop(self, minion, unit):
        if minion not in PAIR:
            return super()._service_stop(minion, unit)
        if unit == "cranectld":
            self.ctld_stop(minion)
        else:
            self.members[minion]["keepalived"] = False
        self.elect()
        return True

    def _service_start(self, minion, unit):
        if minion not in PAIR:
            return super()._service_start(minion, unit)
        if unit == "cranectld":
            self.ctld_start(minion)
        else:
            self.members[minion]["keepalived"] = True
        self.elect()
        return True

    def stop_node(self, name):
        """The node stops: its minion is gone, the shared lock frees, the alive file stays."""
        self.dead[name] = False
        self.members[name].update(keepalived=False, cranectld=False, vip=False)
        self.elect()

    def kill_ctld(self, name):
        """cranectld dies: its alive file stays, its check fails."""
        self.members[name]["cranectld"] = False
        self.elect()

    def _grains_get(self, minion, key):
        if key == "crane:version":
            return self.grain_versions.get(minion, "")
        return super()._grains_get(minion, key)

    def _crane_backup_db(self, minion, keep=5):
        if minion not in PAIR:
            return super()._crane_backup_db(minion, keep)
        if self.members[minion]["cranectld"]:
            raise Failed("CommandExecutionError: cranectld is running: stop it before backing up")
        self.backups.append((minion, any(m["cranectld"] for m in self.members.values())))
        done = super()._crane_backup_db(minion, keep)
        return {**done, "source": "/shared/crane/cranectld/embedded.db"}

    def _state_apply(self, minion, sls, pillar=None):
        """The formula on a pair member: package and config, keepalived running (it may take
        the role: preemption), cranectld restarted on the master when its package changed,
        started there (notify_master's script) when it does not run, never on the backup."""
        if minion not in PAIR:
            return super()._state_apply(minion, sls, pillar)
        version, missing = self.apply_version(pillar)
        if missing:
            return missing
        changed = self.installed[minion] != version
        self.installed[minion] = self.grain_versions[minion] = version
        self.members[minion]["keepalived"] = True
        self.elect()
        member = self.members[minion]
        if member["vip"] and (changed or not member["cranectld"]):
            self.ctld_stop(minion)
            self.ctld_start(minion)
            self.sync()
        return {"crane_ha_|-a_|-cranectld_|-cranectld_role": {"__id__": "a", "result": True}}
