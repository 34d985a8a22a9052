{#- Plugins (opt-in, crane:plugin:manage): plugin.yaml from crane:plugin:config on the nodes
    of crane:plugin:roles, whose cranectld and craned read it (Enabled, PlugindSockPath) at
    start. With `Enabled: true` the package step has installed CraneSched's plugin package
    there; then the gate (every enabled plugin's .so on the node) and cplugind running. With
    plugins disabled cplugind exits at start, so it is stopped and disabled instead. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- set plugin = crane.plugin %}

include:
  - {{ tplroot }}.validate
  - {{ tplroot }}.package
  - {{ tplroot }}.service
{%- if plugin.here %}

crane-plugin-config-file-managed:
  file.managed:
    - name: {{ crane.config_dir }}/plugin.yaml
    - contents: {{ plugin.text | json }}
    - user: root
    - group: root
    - mode: "0644"
    - require:
      - file: crane-package-dirs-etc-file-directory
{%-   set readers = crane.services | select("in", ["cranectld", "craned"]) | list %}
{%-   if readers %}
    {#- cranectld and craned read plugin.yaml at start: a change makes their restart due #}
    - watch_in:
{%-     for unit in readers %}
      - crane: crane-service-{{ unit }}-restart-marked
{%-     endfor %}
{%-   endif %}
{%-   if plugin.cplugind %}

crane-plugin-ready:
  crane.plugins_ready:
    - name: {{ crane.host }}
    - plugin: {{ plugin.config | json }}
    - require:
      - pkg: crane-package-install-pkg-installed

crane-plugin-cplugind-service-running:
  service.running:
    - name: {{ plugin.service }}
    - enable: true
    - require:
      - crane: crane-plugin-ready
    - watch:
      - file: crane-plugin-config-file-managed
      - pkg: crane-package-install-pkg-installed
{%-   else %}

crane-plugin-cplugind-service-dead:
  service.dead:
    - name: {{ plugin.service }}
    - enable: false
    - require:
      - file: crane-plugin-config-file-managed
{%-   endif %}
{%- endif %}
