{#- Bring in a minion that matches a node group by selector (run by salt://reactor/join.sls):
      salt-run state.orchestrate crane.orch.join pillar='{crane: {join: gpu05} }' [test=True]
    Options under `crane`: lock_wait, register_timeout; see `salt-run -d crane.join`. #}
{%- from tpldir ~ "/membership.jinja" import run with context %}
{{ run("join", pillar.get("crane", {})) }}
