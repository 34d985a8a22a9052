{#- `salt cn01 state.apply crane._mapdata`: write this minion's merged settings (defaults,
    os_family parameters, pillar, and what the formula derives from them) as YAML to
    crane:mapdata_file, secrets redacted, to see what a site's pillar gives a node (the
    template-formula convention). Not part of `state.apply crane`. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}

crane-mapdata-file-managed:
  file.managed:
    - name: {{ crane.mapdata_file }}
    - source: salt://{{ tplroot }}/_mapdata/_mapdata.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: "0600"
