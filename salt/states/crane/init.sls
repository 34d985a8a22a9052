{#- `salt '*' state.apply crane`: converge this minion to its CraneSched roles, which come from
    the cluster config itself (control = ControlMachine, compute = Nodes, login = login_nodes). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tpldir ~ "/map.jinja" import mapdata as crane with context %}
{%- if crane.roles %}

include:
  - .validate
  - .package
  - .time
  - .names
  - .cgroup
  - .mongodb
  - .tls
  - .plugin
  - .config
  - .gres
{%- if crane.ha_facts and "control" in crane.roles %}
  - .ha
{%- endif %}
  - .service
  - .firewall
  - .verify
  - .pam
  - .grains
  - .heal
{%- else %}
{#- No role: still check the config, so a broken one is an error rather than a silent no-op. #}

include:
  - .validate

crane-no-role:
  test.succeed_without_changes:
    - name: {{ crane.no_role_comment | json }}
    - require:
      - sls: {{ tplroot }}.validate
{%- endif %}
