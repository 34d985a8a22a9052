{#- Control node: cranectld exits when it cannot reach MongoDB, so before database.yaml or
    config.yaml change (and cranectld restarts), check that DbHost resolves, DbPort answers
    and, where pymongo is installed, that the server is in the replica set DbReplSetName. The
    database settings are read from the pillar by the module, never passed through here.
    With crane:mongodb:manage the formula runs MongoDB itself first (managed.sls). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}

include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.config
  - .managed
{%- if "control" in crane.roles and crane.mongodb.preflight and crane.has_database %}

crane-mongodb-reachable:
  crane.mongodb_reachable:
    - name: {{ crane.host }}
    - timeout: {{ crane.mongodb.timeout }}
    - managed: {{ crane.mongodb.manage | to_bool }}
    - require:
      - crane: crane-validate-config
{%-   if crane.mongodb.manage %}
      - service: crane-mongodb-service-running
{%-   endif %}
    - require_in:
      - file: crane-config-file-config-file-managed
      - crane: crane-config-file-database-file-managed
{%- endif %}
