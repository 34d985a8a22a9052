#!/usr/bin/env python3
"""A recording stand-in for ``mongosh`` in front of a single mongod (no server needed).

It answers the formula's scripts (a first line ``const request = {...};`` saying what to do)
as mongosh and mongod would, from a state file, and records each call. Environment:

* ``MONGOSH_STANDIN_STATE``: JSON state (``setName``, ``primary``, ``users``: name ->
  sha256 of the password, ``down``: mongod does not answer), created when missing;
* ``MONGOSH_STANDIN_CONF``: mongod.conf; ``authorization: enabled`` there means access
  control is on;
* ``MONGOSH_STANDIN_LOG``: one JSON line per call (argv, op, authenticated, authorization,
  the script file's mode). Passwords are never recorded.

Stricter than mongod, never kinder: with authorization on, an unauthenticated client may
only ask ``hello`` (no localhost exception); a new member becomes primary only at the
second ``hello`` after ``rs.initiate``.
"""

import hashlib
import json
import os
import re
import stat
import sys

REQUEST = re.compile(r"^const request = (\{.*\});$")


def _digest(password):
    return hashlib.sha256(password.encode()).hexdigest()


def _load(path):
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    return {"setName": None, "primary": False, "users": {}, "down": False, "hellos": 0}


def _auth_on():
    conf = os.environ.get("MONGOSH_STANDIN_CONF", "")
    if not conf or not os.path.exists(conf):
        return False
    with open(conf, encoding="utf-8") as stream:
        return bool(re.search(r"^\s*authorization:\s*enabled", stream.read(), re.M))


UNAUTHORIZED = {"ok": 0, "codeName": "Unauthorized", "errmsg": "requires authentication"}


def _probe(state, request, authenticated, auth_on):
    if state["setName"] and not state["primary"]:
        state["hellos"] += 1
        state["primary"] = state["hellos"] >= 2
    exists = None if auth_on and not authenticated else request["user"] in state["users"]
    return {
        "authenticated": authenticated,
        "setName": state["setName"],
        "isWritablePrimary": state["primary"],
        "userExists": exists,
    }


def _initiate(state, request, authenticated, auth_on):
    if auth_on and not authenticated:
        return UNAUTHORIZED
    if state["setName"]:
        return {"ok": 0, "codeName": "AlreadyInitialized", "errmsg": "already initialized"}
    state["setName"], state["member"], state["hellos"] = request["replset"], request["member"], 0
    return {"ok": 1}


def _create_user(state, request, authenticated, auth_on):
    if auth_on and not authenticated:
        return UNAUTHORIZED
    if not state["primary"]:
        return {"ok": 0, "codeName": "NotWritablePrimary", "errmsg": "not primary"}
    if request["user"] in state["users"]:
        return {"ok": 0, "codeName": "Location51003", "errmsg": "User already exists"}
    state["users"][request["user"]] = _digest(request["password"])
    return {"ok": 1}


OPS = {"probe": _probe, "initiate": _initiate, "create_user": _create_user}


def main(argv):
    script = argv[argv.index("--file") + 1]
    with open(script, encoding="utf-8") as stream:
        request = json.loads(REQUEST.match(stream.readline().strip()).group(1))
    state_path = os.environ.get("MONGOSH_STANDIN_STATE")
    state = _load(state_path)
    auth_on = _auth_on()
    users = state["users"]
    authenticated = bool(request.get("user")) and users.get(request["user"]) == _digest(
        request.get("password", "")
    )
    record = {
        "argv": argv,
        "op": request["op"],
        "authenticated": authenticated,
        "authorization": auth_on,
        "script_mode": oct(stat.S_IMODE(os.stat(script).st_mode)),
    }
    with open(os.environ["MONGOSH_STANDIN_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")
    if state.get("down"):
        print("MongoNetworkError: connect ECONNREFUSED 127.0.0.1:27017", file=sys.stderr)
        return 1
    reply = OPS[request["op"]](state, request, authenticated, auth_on)
    with open(state_path, "w", encoding="utf-8") as stream:
        json.dump(state, stream)
    print(json.dumps(reply))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
