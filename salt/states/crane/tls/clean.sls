{#- Remove the TLS files the formula copied (crane:tls:manage), nothing else. #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- set files = salt["crane.tls_files"](crane.config, crane.services, crane.roles) if crane.roles and crane.tls.manage else {} %}
{%- for key, path in files.items() if path %}

crane-tls-clean-{{ key }}-file-absent:
  file.absent:
    - name: {{ path }}
{%- else %}

crane-tls-clean-nothing-to-remove:
  test.succeed_without_changes:
    - name: no TLS files to remove (TLS is off or crane:tls:manage is off)
{%- endfor %}
