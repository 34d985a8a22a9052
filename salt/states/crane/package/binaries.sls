{#- Step 2: CraneSched's binaries at mode 0755 (its packages install them world-writable)
    and, for install method `binaries`, the binaries and unit files themselves. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- from tplroot ~ "/libtofs.jinja" import files_switch with context %}
{%- set install = crane.install %}
{%- set method = install.method %}

include:
  - {{ tplroot }}.validate
  - .install
{%- for key in crane.packages %}
{%-   for file, path in crane.binaries.get(key, {}).items() %}

crane-package-binary-{{ file }}-file-managed:
  file.managed:
    - name: {{ path }}
{%-     if method == "binaries" %}
    - source: {{ install.binaries.source.rstrip("/") }}/{{ file }}
{%-       if install.binaries.hashes.get(file) %}
    - source_hash: {{ install.binaries.hashes[file] }}
{%-       endif %}
    - makedirs: true
{%-     else %}
    {#- the packages install the binaries world-writable; only fix the mode #}
    - replace: false
    - create: false
{%-     endif %}
    - user: root
    - group: root
    - mode: "0755"
    - require:
{%-     if method == "binaries" %}
      - sls: {{ tplroot }}.validate
{%-     else %}
      - sls: {{ tplroot }}.package.install
{%-     endif %}
{%-   endfor %}
{%- endfor %}

{%- if method == "binaries" %}
{%-   for unit in crane.services %}

crane-package-unit-{{ unit }}-file-managed:
  file.managed:
    - name: {{ crane.unit_dir }}/{{ unit }}.service
    - source: {{ files_switch(unit ~ ".service.jinja") }}
    - template: jinja
    - context:
        bin_dir: {{ (crane.bin_dir or "/usr/bin") | json }}
        user: {{ crane.user | json }}
        group: {{ crane.group | json }}
    - mode: "0644"
    - require:
      - sls: {{ tplroot }}.validate
{%-   endfor %}
{%- endif %}

