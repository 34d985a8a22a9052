{#- Take out the node of a minion whose key was deleted (run by salt://reactor/leave.sls):
      salt-run state.orchestrate crane.orch.leave pillar='{crane: {leave: gpu05} }' [test=True]
    Options under `crane`: drain_timeout, lock_wait; see `salt-run -d crane.leave`. #}
{%- from tpldir ~ "/membership.jinja" import run with context %}
{{ run("leave", pillar.get("crane", {})) }}
