{#- Rolling restart after a config change, without the package step:
      salt-run state.orchestrate crane.orch.restart pillar='{crane: {batch: 2} }' [test=True]
    Same options as crane.orch.upgrade except version; see `salt-run -d crane.restart`. #}
{%- from tpldir ~ "/engine.jinja" import run with context %}
{{ run("crane.restart", pillar.get("crane", {})) }}
