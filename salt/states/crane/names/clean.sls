{#- The name gate changes nothing; with crane:names:hosts_file, remove the /etc/hosts entries
    it wrote (the same names and addresses, from the Salt mine). #}
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as crane with context %}
{%- set entries = salt["crane.hosts_entries"](crane.config, crane.login_nodes) if crane.names.hosts_file else {} %}
{%- for name, address in entries | dictsort %}

crane-names-clean-hosts-{{ name }}-host-absent:
  host.absent:
    - name: {{ name }}
    - ip: {{ address }}
{%- else %}

crane-names-clean-nothing-to-remove:
  test.succeed_without_changes:
    - name: no /etc/hosts entries to remove (crane:names:hosts_file is off or the mine is empty)
{%- endfor %}
