{#- Every node: the names CraneSched connects to must resolve here (each host of Nodes,
    ControlMachine, the login hosts running cfored: craned exits when a node name does not
    resolve), and a compute node's gethostname() must equal its Nodes entry. A failure stops
    the run before config.yaml is written or any daemon restarted. With crane:names:hosts_file,
    /etc/hosts first gets those names from the Salt mine (sites without DNS). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}

include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.config
{%- if crane.roles and crane.names.hosts_file %}
{%-   for name, address in salt["crane.hosts_entries"](crane.config, crane.login_nodes) | dictsort %}

crane-names-hosts-{{ name }}-host-present:
  host.present:
    - name: {{ name }}
    - ip: {{ address }}
    - require:
      - sls: {{ tplroot }}.validate
{%-     if crane.names.check %}
    - require_in:
      - crane: crane-names-resolve
{%-     endif %}
{%-   endfor %}
{%- endif %}
{%- if crane.roles and crane.names.check %}

crane-names-resolve:
  crane.names_resolve:
    - name: {{ crane.host }}
    - require:
      - sls: {{ tplroot }}.validate
    - require_in:
      - file: crane-config-file-config-file-managed
{%- endif %}
