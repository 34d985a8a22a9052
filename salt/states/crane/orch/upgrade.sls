{#- Rolling upgrade (the Salt-native entry to the crane runner's engine):
      salt-run state.orchestrate crane.orch.upgrade pillar='{crane: {version: 1.1.3, batch: 2} }'
      salt-run state.orchestrate crane.orch.upgrade pillar='{crane: {version: 1.1.3} }' test=True
    Options under `crane`: version (required), batch, canary, drain_timeout, skip_busy,
    strategy (rolling | all-at-once), allow_down, keep_backups, register_timeout,
    allow_downgrade; see `salt-run -d crane.upgrade`. #}
{%- from tpldir ~ "/engine.jinja" import run with context %}
{%- set options = pillar.get("crane", {}) %}
{%- if not options.get("version") %}

crane-orch-upgrade-version-missing:
  test.fail_without_changes:
    - name: "crane.orch.upgrade needs the target version in the pillar: crane:version"
{%- else %}
{{ run("crane.upgrade", options) }}
{%- endif %}
