"""The single-member MongoDB replica set cranectld needs, brought up through ``mongosh``.

Pure Python (stdlib only). ``converge`` decides from what mongod answers; the ``crane``
execution module runs ``mongosh`` for it (``call(op)`` -> the reply as a dict) with a script
that carries the credentials in a 0600 file, never on a command line or in a return.

The order follows CraneSched's MongoDB guide: with authorization still off, ``rs.initiate``
once, wait until the member is primary, create the admin user (``DbUser``, role root on
admin); only then does the formula turn authorization on (mongod.conf with ``keyFile`` and
``security.authorization``). Later runs authenticate and change nothing.
"""

import json

#: mongosh script body: ``request`` (one JSON line before it) says what to do; one JSON reply.
SCRIPT = r"""
function reply(x) { print(EJSON.stringify(x, {relaxed: true})); }
const admin = db.getSiblingDB("admin");
let authenticated = false;
if (request.user) {
  try { admin.auth(request.user, request.password); authenticated = true; } catch (e) {}
}
if (request.op === "probe") {
  const hello = admin.runCommand({hello: 1});
  let userExists = null;
  try { userExists = admin.getUser(request.user) !== null; } catch (e) {}
  reply({authenticated: authenticated, setName: hello.setName || null,
         isWritablePrimary: !!hello.isWritablePrimary, userExists: userExists});
} else if (request.op === "initiate") {
  reply(admin.runCommand({replSetInitiate: {_id: request.replset,
                                           members: [{_id: 0, host: request.member}]}}));
} else if (request.op === "create_user") {
  reply(admin.runCommand({createUser: request.user, pwd: request.password,
                          roles: [{role: "root", db: "admin"}]}));
}
"""


def script(op, request):
    """The mongosh script for ``op`` with ``request`` (user, password, replset, member)."""
    return f"const request = {json.dumps({'op': op, **request})};\n{SCRIPT.lstrip()}"


class MongoshError(Exception):
    """mongosh failed or mongod refused; the message holds no secret."""


def _checked(reply, what):
    if not reply.get("ok"):
        raise MongoshError(f"{what} failed: {reply.get('errmsg') or reply.get('codeName')}")
    return reply


def plan(probe, replset):
    """``(steps, error)``: what is missing, in order (``initiate``, ``create_user``), or why the
    formula cannot go on; ``probe`` is mongod's answer to the probe script."""
    if probe["setName"] and probe["setName"] != replset:
        return [], f"mongod is a member of replica set {probe['setName']!r}, not {replset!r}"
    initiate = [] if probe["setName"] else ["initiate"]
    if probe["authenticated"]:
        return initiate, None
    if probe["userExists"] is None:
        return [], (
            "mongod refuses the credentials of crane:database (DbUser, DbPassword) and has "
            "authorization on, so the formula cannot create that user; create it or fix "
            "DbPassword"
        )
    if probe["userExists"]:
        return [], "the user DbUser exists but does not authenticate with DbPassword"
    return [*initiate, "create_user"], None


def _apply(call, steps, probe, wait_primary):
    """Run ``steps``: ``(done, error)``, the steps done and why the rest was not (or None)."""
    done = []
    try:
        if "initiate" in steps:
            _checked(call("initiate"), "rs.initiate")
            done.append("initiate")
        if not probe["isWritablePrimary"] and wait_primary is not None and not wait_primary():
            return done, "the member did not become primary in time"
        if "create_user" in steps:
            _checked(call("create_user"), "createUser DbUser")
            done.append("create_user")
    except MongoshError as exc:
        return done, str(exc)
    return done, None


def converge(call, replset, member, test=False, wait_primary=None):
    """``{'result', 'changes', 'comment'}`` after the steps ``plan`` finds. ``wait_primary``
    (no arguments; True once the member is primary) runs after ``rs.initiate``."""
    probe = call("probe")
    steps, error = plan(probe, replset)
    if error:
        return {"result": False, "changes": {}, "comment": error}
    words = {
        "initiate": f"replica set {replset} initiated with member {member}",
        "create_user": "admin user DbUser created (role root on admin)",
    }
    if not steps:
        comment = f"replica set {replset} is up and DbUser authenticates"
        return {"result": True, "changes": {}, "comment": comment}
    if test:
        planned = {step: words[step] for step in steps}
        return {
            "result": None,
            "changes": planned,
            "comment": "would: " + "; ".join(planned.values()),
        }
    done, error = _apply(call, steps, probe, wait_primary)
    changes = {step: words[step] for step in done}
    if error:
        return {"result": False, "changes": changes, "comment": f"replica set {replset}: {error}"}
    return {"result": True, "changes": changes, "comment": "; ".join(changes.values())}
